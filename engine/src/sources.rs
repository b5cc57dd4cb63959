//! Reading runbooks and the files they refer to from disk: the only I/O on the way to a
//! checked runbook. Everything after this (loading, validation, planning) is pure.

use crate::yaml::Limits;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::diagnostic::Diagnostic;
use crate::runbook::{InventoryRef, LoadedRunbook, load_runbook};
use crate::validate::{self, CheckedRunbook, Sources};

/// How Ansible inventories (`inventory: { ansible: SRC }`) are read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AnsibleInventories {
    /// INI and YAML files, parsed by patchday itself (no Ansible needed).
    #[default]
    Native,
    /// Any source Ansible reads (plugins, scripts, folders with `group_vars/`), through
    /// `ansible-inventory -i SRC --list` run with this program (`--ansible-inventory`,
    /// `[ansible] inventory = "ansible-inventory"`).
    List(PathBuf),
}

/// Longest `ansible-inventory --list` may take (dynamic inventories ask remote APIs).
const LIST_TIMEOUT: Duration = Duration::from_secs(120);
/// Largest `ansible-inventory --list` output accepted.
const LIST_LIMIT: usize = 64 * 1024 * 1024;

/// The runbook files named on the command line: files as given, folders expanded to the
/// `*.yaml` / `*.yml` files directly inside them, sorted by name.
pub fn expand(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
                })
                .collect();
            found.sort();
            out.extend(found);
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

/// What a YAML file in a runbooks folder holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Runbook,
    /// A patchday inventory: its top-level keys are `hosts` and only `groups` and `exceptions`
    /// besides. Checked as an inventory, never as a runbook.
    Inventory,
}

/// Tells an inventory from a runbook by the top-level keys in the first 64 KiB of `path` (a
/// runbook always has `name` and `steps`; an inventory has `hosts`). Unreadable files are
/// runbooks, so that reading them reports the error.
pub fn kind_of(path: &Path) -> FileKind {
    use std::io::Read as _;
    let mut head = Vec::new();
    let read = open_without_waiting(path).and_then(|f| f.take(64 * 1024).read_to_end(&mut head));
    if read.is_err() {
        return FileKind::Runbook;
    }
    kind_of_text(&String::from_utf8_lossy(&head))
}

fn kind_of_text(text: &str) -> FileKind {
    let keys: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_'))
        .filter_map(|line| line.split_once(':').map(|(key, _)| key.trim()))
        .collect();
    let inventory_keys = ["hosts", "groups", "exceptions"];
    if keys.contains(&"hosts") && keys.iter().all(|k| inventory_keys.contains(k)) {
        FileKind::Inventory
    } else {
        FileKind::Runbook
    }
}

/// The result of checking a set of runbooks together.
pub struct Checked {
    pub runbooks: Vec<(LoadedRunbook, Option<CheckedRunbook>)>,
    /// Inventory files given or found among the runbooks, checked on their own.
    pub inventories: Vec<PathBuf>,
    pub diagnostics: Vec<Diagnostic>,
    /// Texts of every file read, for rendering snippets.
    pub sources: Sources,
}

impl Checked {
    pub fn is_valid(&self) -> bool {
        !self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// The source text of `file`, for snippets.
    pub fn text(&self, file: &str) -> Option<&str> {
        match self.sources.get(Path::new(file)) {
            Some(Ok(text)) => Some(text),
            _ => None,
        }
    }
}

/// Reads, loads and checks runbook files as one set (names must be unique across it), Ansible
/// inventories natively.
pub fn check_files(files: &[PathBuf]) -> Checked {
    check_files_with(files, &AnsibleInventories::Native)
}

/// [`check_files`], reading Ansible inventories as `ansible` says.
pub fn check_files_with(files: &[PathBuf], ansible: &AnsibleInventories) -> Checked {
    let mut sources = Sources::default();
    let mut loaded = Vec::new();
    let mut inventory_diagnostics = Vec::new();
    let mut inventories = Vec::new();
    for file in files {
        let shown = file.display().to_string();
        if kind_of(file) == FileKind::Inventory {
            let text = read(file, Limits::INVENTORY.max_bytes);
            inventory_diagnostics.extend(match &text {
                Ok(text) => validate::check_inventory_file(&shown, text),
                Err(e) => unreadable(&shown, e).diagnostics,
            });
            sources.insert(file.clone(), text);
            inventories.push(file.clone());
            continue;
        }
        let text = read(file, Limits::RUNBOOK.max_bytes);
        sources.insert(file.clone(), text.clone());
        let loaded_one = match text {
            Ok(text) => load_runbook(&shown, &text),
            Err(e) => unreadable(&shown, &e),
        };
        read_references(&loaded_one, file, ansible, &mut sources);
        loaded.push(loaded_one);
    }
    let mut diagnostics = validate::check_unique_names(&loaded.iter().collect::<Vec<_>>());
    diagnostics.extend(inventory_diagnostics);
    let runbook_files = files.iter().filter(|f| kind_of(f) == FileKind::Runbook);
    let mut runbooks = Vec::new();
    for (one, file) in loaded.into_iter().zip(runbook_files) {
        let (checked, diags) = validate::check(&one, &dir_of(file), &sources);
        diagnostics.extend(diags);
        runbooks.push((one, checked));
    }
    crate::diagnostic::sort(&mut diagnostics);
    diagnostics.dedup();
    Checked {
        runbooks,
        inventories,
        diagnostics,
        sources,
    }
}

fn dir_of(file: &Path) -> PathBuf {
    file.parent().map(Path::to_path_buf).unwrap_or_default()
}

fn unreadable(file: &str, error: &str) -> LoadedRunbook {
    let mut loaded = load_runbook(file, "");
    loaded.diagnostics = vec![Diagnostic::error(
        file,
        crate::yaml::Loc::default(),
        format!("cannot read the file: {error}"),
    )];
    loaded
}

fn read_references(
    loaded: &LoadedRunbook,
    file: &Path,
    ansible: &AnsibleInventories,
    sources: &mut Sources,
) {
    let Some(runbook) = &loaded.runbook else {
        return;
    };
    if let (AnsibleInventories::List(program), Some(InventoryRef::Ansible(a))) =
        (ansible, &runbook.inventory)
    {
        let source = dir_of(file).join(&a.ansible.value);
        if !sources.contains(&source) {
            let listed = list_inventory(program, &source, &dir_of(file));
            sources.insert_listed(source, listed);
        }
    }
    for path in validate::references(runbook, &dir_of(file)) {
        if !sources.contains(&path) && path.exists() {
            sources.insert(path.clone(), read(&path, Limits::INVENTORY.max_bytes));
        }
    }
}

/// `ansible-inventory -i SOURCE --list` in the runbook's folder (where Ansible finds its
/// `ansible.cfg`): its JSON, or why there is none. Stopped after [`LIST_TIMEOUT`].
fn list_inventory(program: &Path, source: &Path, dir: &Path) -> Result<String, String> {
    use std::io::Read as _;
    use std::process::{Command, Stdio};
    // The child runs in the runbook's folder: a source relative to ours would point elsewhere.
    let source = std::path::absolute(source).unwrap_or_else(|_| source.to_path_buf());
    let mut child = Command::new(program)
        .arg("-i")
        .arg(&source)
        .arg("--list")
        .current_dir(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
        .env("ANSIBLE_NOCOLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start `{}`: {e}", program.display()))?;
    let drain = |stream: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(stream) = stream {
                let _ = stream.take(LIST_LIMIT as u64 + 1).read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(child.stdout.take().map(|s| Box::new(s) as _));
    let stderr = drain(child.stderr.take().map(|s| Box::new(s) as _));
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > LIST_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("it took longer than {}s", LIST_TIMEOUT.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    };
    let out = stdout.join().unwrap_or_default();
    let err = String::from_utf8_lossy(&stderr.join().unwrap_or_default()).into_owned();
    if !status.success() {
        let last: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        return Err(format!(
            "{status}: {}",
            last[last.len().saturating_sub(3)..].join(" | ")
        ));
    }
    if out.len() > LIST_LIMIT {
        return Err(format!("its output is larger than {LIST_LIMIT} bytes"));
    }
    String::from_utf8(out).map_err(|_| "its output is not UTF-8".to_string())
}

/// Reads a text file, never blocking and never reading more than `limit` bytes (a runbook's
/// limit for runbook files, the largest, an inventory's, for the files they refer to, each of
/// which is held to its own kind's limit when it is parsed): the file is opened without
/// waiting (`O_NONBLOCK`: a FIFO does not hold the reader up), must be a regular file by the
/// open handle (a folder, a FIFO, a device such as `/dev/zero` behind a symlink, or a socket
/// is refused), and is read through that handle up to the limit (a file that grows after the
/// check is still cut off there).
fn read(path: &Path, limit: usize) -> Result<String, String> {
    use std::io::Read as _;
    let limit = limit as u64;
    let file = open_without_waiting(path).map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if meta.is_dir() {
        return Err("it is a folder, not a file".into());
    }
    if !meta.is_file() {
        return Err("not a regular file (a FIFO, a device or a socket): refused".into());
    }
    let too_big = |size: u64| format!("the file is {size} bytes; the limit is {limit} bytes");
    if meta.len() > limit {
        return Err(too_big(meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > limit {
        return Err(too_big(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "the file is not UTF-8 text (byte {})",
            e.utf8_error().valid_up_to()
        )
    })
}

/// Opens `path` for reading without waiting for a writer (a FIFO would block an open).
fn open_without_waiting(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits());
    }
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inventories_are_told_from_runbooks_by_their_top_level_keys() {
        let inventory = "# comment\nhosts:\n  a: { address: x }\ngroups:\n  g: [a]\n";
        assert_eq!(kind_of_text(inventory), FileKind::Inventory);
        let runbook = "name: x\nsteps:\n  hosts: { uses: noop }\n";
        assert_eq!(kind_of_text(runbook), FileKind::Runbook);
        // A runbook with a stray `hosts` key stays a runbook (and gets its error as one).
        assert_eq!(kind_of_text("name: x\nhosts: {}\n"), FileKind::Runbook);
        assert_eq!(kind_of_text(""), FileKind::Runbook);
    }

    const LIMIT: usize = crate::yaml::Limits::RUNBOOK.max_bytes;

    #[test]
    fn a_regular_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.yaml");
        std::fs::write(&file, "name: a\n").unwrap();
        assert_eq!(read(&file, LIMIT).unwrap(), "name: a\n");
    }

    /// A FIFO nobody writes to: refused at once, not waited on.
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("hosts.yaml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let err = read(&fifo, LIMIT).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
    }

    /// A symlink to `/dev/zero` (endless): refused, nothing read.
    #[test]
    fn a_device_behind_a_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("hosts.yaml");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let err = read(&link, LIMIT).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
    }

    #[test]
    fn a_file_over_the_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("big.yaml");
        std::fs::write(&file, vec![b'#'; LIMIT + 1]).unwrap();
        let err = read(&file, LIMIT).unwrap_err();
        assert!(err.contains("the limit is"), "{err}");
    }
}
