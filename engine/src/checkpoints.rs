//! The checkpoint directory and what is checked against it (DESIGN §6): signed checkpoints of
//! the audit log kept outside the database, one file each, never rewritten; the [`Checkpointer`]
//! that writes the next one; and [`verify_log`], which walks the whole log page by page (constant
//! memory) checking the hash chain and the Merkle root at every checkpoint's size.
//!
//! Files are named `NNNNNNNN.checkpoint` (a counter from 1) and hold a C2SP signed note
//! ([`crate::checkpoint`]); each one's `prev` line is the SHA-256 of the file before it, so
//! removing, replacing or reordering a file breaks the chain of checkpoints.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::audit::{self, ChainBroken, ChainVerifier};
use crate::checkpoint::{Checkpoint, NoteError, SigningKey, VerifierKey, encode_hash, note_hash};
use crate::merkle::{Hash, Tree};
use crate::merkle_nodes::{self, NodeBatch};
use crate::store::{ChainHead, EventText, Store, StoreError};

/// Events read per page while walking the log.
pub const PAGE: u32 = 2_000;
/// The file name suffix of checkpoints.
const SUFFIX: &str = ".checkpoint";

/// A checkpoint as read from its file, signature checked.
#[derive(Debug, Clone)]
pub struct StoredCheckpoint {
    pub file: PathBuf,
    /// The counter in the file name.
    pub number: u64,
    pub note: String,
    pub checkpoint: Checkpoint,
}

impl StoredCheckpoint {
    fn name(&self) -> String {
        self.file.file_name().map_or_else(
            || self.file.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }
}

/// The first problem found, as `audit verify` names it.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("{0}")]
    Chain(ChainBroken),
    #[error("checkpoint {file}: {error}")]
    Note { file: String, error: NoteError },
    #[error(
        "checkpoint {file}: its prev line is not the hash of {previous}: a checkpoint was removed, replaced or reordered"
    )]
    BrokenCheckpointChain { file: String, previous: String },
    #[error("checkpoint {file}: origin `{found}` is not `{expected}`")]
    Origin {
        file: String,
        found: String,
        expected: String,
    },
    #[error(
        "fork: checkpoints {first} and {second} cannot both be true (sizes {first_size} and {second_size}, the later one {what})"
    )]
    Fork {
        first: String,
        second: String,
        first_size: u64,
        second_size: u64,
        what: &'static str,
    },
    #[error(
        "truncated: checkpoint {file} signs {size} events but the log has only {events}: events after seq {events} were deleted or the database was rolled back"
    )]
    Truncated {
        file: String,
        size: u64,
        events: u64,
    },
    #[error(
        "rewritten: the first {size} events have Merkle root {found} but checkpoint {file} signed {signed}: history was rewritten"
    )]
    Rewritten {
        file: String,
        size: u64,
        found: String,
        signed: String,
    },
    #[error("reading checkpoints: {0}")]
    Io(String),
    #[error("reading the audit log: {0}")]
    Store(#[from] StoreError),
}

/// Reads and checks every checkpoint in `dir`: signatures by `key`, one origin, the `prev`
/// chain, sizes that never shrink and roots that agree at equal sizes. In file order.
pub fn read_dir(dir: &Path, key: &VerifierKey) -> Result<Vec<StoredCheckpoint>, Problem> {
    let io = |e: std::io::Error| Problem::Io(format!("{}: {e}", dir.display()));
    let mut files: Vec<(u64, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let number = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(SUFFIX))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(number) = number {
            files.push((number, path));
        }
    }
    files.sort();
    let mut read: Vec<StoredCheckpoint> = Vec::with_capacity(files.len());
    for (number, file) in files {
        let stored = read_one(number, file, key)?;
        if let Some(previous) = read.last() {
            check_follows(previous, &stored)?;
        } else if stored.number != 1 || stored.checkpoint.prev.is_some() {
            return Err(Problem::BrokenCheckpointChain {
                file: stored.name(),
                previous: format!("00000001{SUFFIX}, which is missing or altered"),
            });
        }
        read.push(stored);
    }
    Ok(read)
}

fn read_one(number: u64, file: PathBuf, key: &VerifierKey) -> Result<StoredCheckpoint, Problem> {
    let name = file.display().to_string();
    let note = std::fs::read_to_string(&file).map_err(|e| Problem::Io(format!("{name}: {e}")))?;
    let note_error = |error| Problem::Note {
        file: name.clone(),
        error,
    };
    let text = key.open(&note).map_err(note_error)?;
    let checkpoint = Checkpoint::parse(text).map_err(note_error)?;
    Ok(StoredCheckpoint {
        file,
        number,
        note,
        checkpoint,
    })
}

fn check_follows(previous: &StoredCheckpoint, next: &StoredCheckpoint) -> Result<(), Problem> {
    if next.checkpoint.prev != Some(note_hash(&previous.note)) {
        return Err(Problem::BrokenCheckpointChain {
            file: next.name(),
            previous: previous.name(),
        });
    }
    if next.checkpoint.origin != previous.checkpoint.origin {
        return Err(Problem::Origin {
            file: next.name(),
            found: next.checkpoint.origin.clone(),
            expected: previous.checkpoint.origin.clone(),
        });
    }
    let (a, b) = (&previous.checkpoint, &next.checkpoint);
    let what = if b.size < a.size {
        "smaller: the log shrank between them"
    } else if b.size == a.size && b.root != a.root {
        "a different root at the same size"
    } else {
        return Ok(());
    };
    Err(Problem::Fork {
        first: previous.name(),
        second: next.name(),
        first_size: a.size,
        second_size: b.size,
        what,
    })
}

/// What [`verify_log`] found when all is well.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub events: u64,
    pub head: Option<ChainHead>,
    pub root: Hash,
    /// Checkpoints whose root was recomputed and matched.
    pub checkpoints: usize,
}

/// Walks the whole log in pages of [`PAGE`] events: the hash chain, the recorded head, and the
/// Merkle root at each checkpoint's size. Memory stays constant in the log's length (the
/// checkpoints' sizes and roots are kept: 40 bytes each).
pub async fn verify_log<S: Store>(
    store: &S,
    checkpoints: &[StoredCheckpoint],
) -> Result<Verified, Problem> {
    let mut due: Vec<&StoredCheckpoint> = checkpoints.iter().collect();
    due.sort_by_key(|c| std::cmp::Reverse(c.checkpoint.size));
    let mut chain = ChainVerifier::new();
    let mut tree = Tree::new();
    check_due(&mut due, &tree)?;
    // From the lowest seq there is, so that an event forged below 1 is seen (and refused).
    let mut page = store.event_texts_after(i64::MIN, PAGE).await?;
    while let Some(last) = page.last() {
        // The next page is read (by the database's thread) while this one is hashed.
        let (next, checked) = tokio::join!(biased; store.event_texts_after(last.seq, PAGE), async {
            check_page(&page, &mut chain, &mut tree, &mut due)
        });
        checked?;
        page = next?;
    }
    let head = store.chain_head().await?;
    chain.finish(head.as_ref()).map_err(Problem::Chain)?;
    if let Some(beyond) = due.last() {
        return Err(Problem::Truncated {
            file: beyond.name(),
            size: beyond.checkpoint.size,
            events: tree.size(),
        });
    }
    Ok(Verified {
        events: tree.size(),
        head,
        root: tree.root(),
        checkpoints: checkpoints.len(),
    })
}

/// Adds a page of events to the chain and the tree, checking each checkpoint the tree reaches.
fn check_page(
    page: &[EventText],
    chain: &mut ChainVerifier,
    tree: &mut Tree,
    due: &mut Vec<&StoredCheckpoint>,
) -> Result<(), Problem> {
    for event in page {
        chain.push_text(event).map_err(Problem::Chain)?;
        tree.push(&hex_hash(&event.hash).expect("a hash the chain accepted is hex"));
        check_due(due, tree)?;
    }
    Ok(())
}

/// Checks the checkpoints (sorted by size, largest first) whose size the tree has reached.
fn check_due(due: &mut Vec<&StoredCheckpoint>, tree: &Tree) -> Result<(), Problem> {
    while let Some(next) = due.last().filter(|c| c.checkpoint.size == tree.size()) {
        let root = tree.root();
        if root != next.checkpoint.root {
            return Err(Problem::Rewritten {
                file: next.name(),
                size: next.checkpoint.size,
                found: encode_hash(&root),
                signed: encode_hash(&next.checkpoint.root),
            });
        }
        due.pop();
    }
    Ok(())
}

/// The 32 raw bytes of a lowercase hex SHA-256 (an event's `hash`).
pub fn hex_hash(text: &str) -> Option<Hash> {
    let digits = text.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Why the next checkpoint cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{0}")]
    Dir(#[from] Problem),
    #[error(
        "the audit log no longer matches the last checkpoint {file} ({reason}): refusing to sign it; run `patchday audit verify --checkpoints`"
    )]
    Diverged { file: String, reason: String },
    #[error("writing {file}: {error}")]
    Write { file: String, error: String },
}

/// Follows the log and signs checkpoints of it into a directory. Holds O(log n) state; reads
/// only the events appended since it last looked.
pub struct Checkpointer {
    dir: PathBuf,
    key: SigningKey,
    origin: String,
    tree: Tree,
    last: Option<StoredCheckpoint>,
}

impl Checkpointer {
    /// Reads the directory (checking every signature and the chain of checkpoints), resumes the
    /// tree at the last checkpoint from the stored Merkle nodes when they lead to its signed
    /// root, else rebuilds it from the log's hashes (storing the nodes) and refuses if the log
    /// does not extend the last checkpoint; then reads the events appended since.
    pub async fn open<S: Store>(
        store: &S,
        dir: &Path,
        key: SigningKey,
        origin: &str,
    ) -> Result<Self, CheckpointError> {
        std::fs::create_dir_all(dir).map_err(|e| Problem::Io(format!("{}: {e}", dir.display())))?;
        let last = read_dir(dir, &key.verifier())?.pop();
        let mut this = Self {
            dir: dir.to_path_buf(),
            key,
            origin: origin.to_string(),
            tree: Tree::new(),
            last,
        };
        if this.resume_from_nodes(store).await? {
            this.catch_up(store, None).await?;
            return Ok(this);
        }
        let target = this.last.as_ref().map_or(0, |l| l.checkpoint.size);
        this.catch_up(store, Some(target)).await?;
        if let Some(last) = &this.last {
            let diverged = |reason: String| CheckpointError::Diverged {
                file: last.name(),
                reason,
            };
            if this.tree.size() < last.checkpoint.size {
                return Err(diverged(format!(
                    "it signs {} events, the log has {}",
                    last.checkpoint.size,
                    this.tree.size()
                )));
            }
            if this.tree.root() != last.checkpoint.root {
                return Err(diverged("a different Merkle root".into()));
            }
            this.catch_up(store, None).await?;
        }
        Ok(this)
    }

    /// Resumes the tree at the last checkpoint from the stored Merkle nodes, in O(log n) reads,
    /// if they are there and lead to its signed root ([`crate::merkle_nodes`]: never trusted
    /// otherwise). False when the tree must be rebuilt from the events.
    async fn resume_from_nodes<S: Store>(&mut self, store: &S) -> Result<bool, Problem> {
        let Some(last) = &self.last else {
            return Ok(false);
        };
        match merkle_nodes::tree_at(store, last.checkpoint.size).await? {
            Some(tree) if tree.root() == last.checkpoint.root => {
                self.tree = tree;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Appends the hashes of events past the tree, up to `until` events if given, storing the
    /// Merkle nodes they complete.
    async fn catch_up<S: Store>(&mut self, store: &S, until: Option<u64>) -> Result<(), Problem> {
        loop {
            let wanted = until.map_or(PAGE as u64, |u| u.saturating_sub(self.tree.size()));
            if wanted == 0 {
                return Ok(());
            }
            let limit = wanted.min(PAGE as u64) as u32;
            let page = store.event_hashes(self.tree.size() as i64, limit).await?;
            let mut nodes = NodeBatch::default();
            for (seq, hash) in &page {
                if *seq != self.tree.size() as i64 + 1 {
                    return Err(Problem::Chain(ChainBroken {
                        seq: *seq,
                        reason: format!("expected seq {}: event(s) missing", self.tree.size() + 1),
                    }));
                }
                let leaf = hex_hash(hash).ok_or_else(|| {
                    Problem::Chain(ChainBroken {
                        seq: *seq,
                        reason: "the stored hash is not 64 hex digits".into(),
                    })
                })?;
                nodes.push(&mut self.tree, crate::merkle::leaf_hash(&leaf));
            }
            nodes.flush(store).await?;
            if (page.len() as u32) < limit {
                return Ok(());
            }
        }
    }

    /// Events covered by the tree.
    pub fn size(&self) -> u64 {
        self.tree.size()
    }

    /// Reads what was appended and writes a checkpoint if the log grew since the last one (or
    /// if `always`). Returns the file written.
    pub async fn checkpoint<S: Store>(
        &mut self,
        store: &S,
        now: DateTime<Utc>,
        always: bool,
    ) -> Result<Option<PathBuf>, CheckpointError> {
        self.catch_up(store, None).await?;
        let last_size = self.last.as_ref().map(|l| l.checkpoint.size);
        if !always && last_size == Some(self.tree.size()) {
            return Ok(None);
        }
        let checkpoint = Checkpoint {
            origin: self.origin.clone(),
            size: self.tree.size(),
            root: self.tree.root(),
            time: Some(audit::format_instant(now)),
            prev: self.last.as_ref().map(|l| note_hash(&l.note)),
        };
        let note = self.key.sign(&checkpoint.body());
        let number = self.last.as_ref().map_or(1, |l| l.number + 1);
        let file = self.dir.join(format!("{number:08}{SUFFIX}"));
        write_new(&file, &note).map_err(|error| CheckpointError::Write {
            file: file.display().to_string(),
            error: error.to_string(),
        })?;
        self.last = Some(StoredCheckpoint {
            file: file.clone(),
            number,
            note,
            checkpoint,
        });
        Ok(Some(file))
    }

    /// The last checkpoint written or found.
    pub fn last(&self) -> Option<&StoredCheckpoint> {
        self.last.as_ref()
    }
}

/// Writes a new file (never replacing one), synced to disk.
fn write_new(file: &Path, text: &str) -> std::io::Result<()> {
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(file)?;
    out.write_all(text.as_bytes())?;
    out.sync_all()
}

/// Reads a signing key file, refusing one that others may read.
pub fn read_signing_key(file: &Path) -> Result<SigningKey, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(file)
            .map_err(|e| format!("{}: {e}", file.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "{}: the signing key is readable by others (mode {:o}); chmod 600 it",
                file.display(),
                mode & 0o777
            ));
        }
    }
    SigningKey::parse(&text).map_err(|e| format!("{}: {e}", file.display()))
}

/// Reads a verifier key file (`FILE.pub`).
pub fn read_verifier_key(file: &Path) -> Result<VerifierKey, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    VerifierKey::parse(&text).map_err(|e| format!("{}: {e}", file.display()))
}

/// Writes a new key pair: `file` (mode 0600) and `file.pub`. Never replaces either.
pub fn write_key_pair(name: &str, file: &Path) -> Result<VerifierKey, String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("OS randomness: {e}"))?;
    let key = SigningKey::from_seed(name, seed).map_err(|e| e.to_string())?;
    let public = pub_file(file);
    for path in [file, public.as_path()] {
        if path.exists() {
            return Err(format!("{} exists: not replacing a key", path.display()));
        }
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut out = options
        .open(file)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    out.write_all(key.to_text().as_bytes())
        .and_then(|()| out.sync_all())
        .map_err(|e| format!("{}: {e}", file.display()))?;
    let verifier = key.verifier();
    write_new(&public, &format!("{}\n", verifier.to_text()))
        .map_err(|e| format!("{}: {e}", public.display()))?;
    Ok(verifier)
}

/// `FILE.pub`.
pub fn pub_file(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}
