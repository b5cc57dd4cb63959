//! Signed checkpoints of the audit log (DESIGN §6): C2SP signed notes with Ed25519 keys, and
//! C2SP `tlog-checkpoint` bodies. Pure functions, no I/O.
//!
//! # Keys
//!
//! - verifier key (`FILE.pub`, shareable): `NAME+<key id, 8 hex digits>+<base64(0x01 || 32-byte
//!   public key)>`, the key id being the first 4 bytes (big-endian) of
//!   `SHA-256(NAME || 0x0A || 0x01 || public key)`;
//! - signing key (`FILE`, mode 0600): `PRIVATE+KEY+NAME+<key id>+<base64(0x01 || 32-byte seed)>`
//!   (the layout Go's `golang.org/x/mod/sumdb/note` uses).
//!
//! # A checkpoint
//!
//! ```text
//! patchday/prod                      origin
//! 1234                               tree size: the number of events, seq 1..=1234
//! <base64 of the 32-byte RFC 6962 root over the events' hashes>
//! time 2026-12-08T14:00:00.000000Z   extension: when it was signed (the engine clock)
//! prev <base64 SHA-256 of the previous checkpoint file>   extension: absent on the first
//!
//! — NAME <base64(4-byte key id || 64-byte Ed25519 signature over the text above the blank line)>
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, Verifier as _};
use sha2::{Digest, Sha256};

use crate::merkle::Hash;

/// The signature type byte of Ed25519 in C2SP signed notes.
const ED25519: u8 = 0x01;
/// The em dash and space that start a signature line.
const SIG_PREFIX: &str = "\u{2014} ";

/// What is wrong with a key, a note or a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("key name `{0}` must be non-empty, without spaces or `+`")]
    BadName(String),
    #[error("not a {what}: {why}")]
    BadKey { what: &'static str, why: String },
    #[error("not a signed note: {0}")]
    Malformed(String),
    #[error("no signature by key {0} (signed by: {1})")]
    NotSigned(String, String),
    #[error("the signature by key {0} does not verify: the note was altered or forged")]
    BadSignature(String),
    #[error("not a checkpoint: {0}")]
    BadCheckpoint(String),
}

fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        return Err(NoteError::BadName(name.to_string()));
    }
    Ok(())
}

fn key_id(name: &str, public: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ED25519]);
    h.update(public);
    let digest = h.finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// An Ed25519 signing key with its note name.
#[derive(Clone)]
pub struct SigningKey {
    name: String,
    key: ed25519_dalek::SigningKey,
}

impl SigningKey {
    /// A key from a 32-byte seed (the caller draws it from the OS).
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        check_name(name)?;
        Ok(Self {
            name: name.to_string(),
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The text of the signing key file.
    pub fn to_text(&self) -> String {
        let mut bytes = vec![ED25519];
        bytes.extend_from_slice(self.key.as_bytes());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}\n",
            self.name,
            self.verifier().id,
            B64.encode(bytes)
        )
    }

    /// Reads a signing key file's text.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let bad = |why: &str| NoteError::BadKey {
            what: "signing key",
            why: why.to_string(),
        };
        let rest = text
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| bad("it does not start with PRIVATE+KEY+"))?;
        let (name, id, bytes) = split_key(rest).ok_or_else(|| bad("expected NAME+ID+KEY"))?;
        let seed: [u8; 32] = key_bytes(&bytes).ok_or_else(|| bad("expected 0x01 and 32 bytes"))?;
        let key = Self::from_seed(name, seed)?;
        if key.verifier().id != id {
            return Err(bad("the key id does not match the key"));
        }
        Ok(key)
    }

    /// The matching verifier key.
    pub fn verifier(&self) -> VerifierKey {
        let public = self.key.verifying_key();
        VerifierKey {
            id: key_id(&self.name, public.as_bytes()),
            name: self.name.clone(),
            key: public,
        }
    }

    /// Signs `text` (which must end in a newline) as a C2SP signed note.
    pub fn sign(&self, text: &str) -> String {
        debug_assert!(text.ends_with('\n'));
        let signature = self.key.sign(text.as_bytes());
        let mut blob = self.verifier().id.to_be_bytes().to_vec();
        blob.extend_from_slice(&signature.to_bytes());
        format!("{text}\n{SIG_PREFIX}{} {}\n", self.name, B64.encode(blob))
    }
}

/// `NAME+ID+BASE64` split into its parts.
fn split_key(text: &str) -> Option<(&str, u32, Vec<u8>)> {
    let mut parts = text.split('+');
    let name = parts.next()?;
    let id = parts.next()?;
    // Base64 may itself contain `+`: the rest of the text is the key.
    let key = &text[name.len() + id.len() + 2..];
    if id.len() != 8 {
        return None;
    }
    let id = u32::from_str_radix(id, 16).ok()?;
    Some((name, id, B64.decode(key).ok()?))
}

fn key_bytes(bytes: &[u8]) -> Option<[u8; 32]> {
    match bytes.split_first() {
        Some((&ED25519, rest)) => rest.try_into().ok(),
        _ => None,
    }
}

/// An Ed25519 verifier key with its note name and key id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    id: u32,
    key: ed25519_dalek::VerifyingKey,
}

impl VerifierKey {
    /// `NAME+ID+BASE64`.
    pub fn to_text(&self) -> String {
        let mut bytes = vec![ED25519];
        bytes.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.id, B64.encode(bytes))
    }

    /// `NAME+ID+BASE64`, as [`to_text`](Self::to_text) writes it.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let bad = |why: &str| NoteError::BadKey {
            what: "verifier key",
            why: why.to_string(),
        };
        let (name, id, bytes) =
            split_key(text.trim()).ok_or_else(|| bad("expected NAME+ID+KEY"))?;
        check_name(name)?;
        let public = key_bytes(&bytes).ok_or_else(|| bad("expected 0x01 and 32 bytes"))?;
        if key_id(name, &public) != id {
            return Err(bad("the key id does not match the key"));
        }
        let key = ed25519_dalek::VerifyingKey::from_bytes(&public)
            .map_err(|_| bad("not an Ed25519 public key"))?;
        Ok(Self {
            name: name.to_string(),
            id,
            key,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The text of a signed note, if this key signed it. Signatures by other keys are ignored
    /// (C2SP signed-note); one by this key that does not verify rejects the note.
    pub fn open<'n>(&self, note: &'n str) -> Result<&'n str, NoteError> {
        let (text, signatures) = split_note(note)?;
        let mut signers = Vec::new();
        for line in signatures.lines() {
            let (name, blob) = line
                .strip_prefix(SIG_PREFIX)
                .and_then(|l| l.split_once(' '))
                .ok_or_else(|| NoteError::Malformed(format!("bad signature line `{line}`")))?;
            let blob = B64
                .decode(blob)
                .map_err(|_| NoteError::Malformed(format!("signature of {name} is not base64")))?;
            if blob.len() < 4 {
                return Err(NoteError::Malformed(format!(
                    "signature of {name} too short"
                )));
            }
            let id = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]);
            if name != self.name || id != self.id {
                signers.push(format!("{name}+{id:08x}"));
                continue;
            }
            let signature = ed25519_dalek::Signature::from_slice(&blob[4..])
                .map_err(|_| NoteError::BadSignature(self.label()))?;
            return self
                .key
                .verify(text.as_bytes(), &signature)
                .map(|()| text)
                .map_err(|_| NoteError::BadSignature(self.label()));
        }
        Err(NoteError::NotSigned(self.label(), signers.join(", ")))
    }

    fn label(&self) -> String {
        format!("{}+{:08x}", self.name, self.id)
    }
}

/// The text of a signed note, signatures not checked (to read a checkpoint one will check later).
pub fn unverified_text(note: &str) -> Result<&str, NoteError> {
    split_note(note).map(|(text, _)| text)
}

/// The note text (with its final newline) and the signature lines.
fn split_note(note: &str) -> Result<(&str, &str), NoteError> {
    if note.chars().any(|c| c < ' ' && c != '\n') {
        return Err(NoteError::Malformed("control characters".into()));
    }
    let at = note
        .rfind("\n\n")
        .ok_or_else(|| NoteError::Malformed("no blank line before the signatures".into()))?;
    let (text, signatures) = (&note[..=at], &note[at + 2..]);
    if signatures.is_empty() || !signatures.ends_with('\n') {
        return Err(NoteError::Malformed("no signature lines".into()));
    }
    Ok((text, signatures))
}

/// A tlog checkpoint: what a signed note about the audit log says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    /// `time <RFC 3339>`: when it was signed.
    pub time: Option<String>,
    /// `prev <base64 SHA-256>`: the hash of the previous checkpoint note.
    pub prev: Option<Hash>,
}

impl Checkpoint {
    /// The note text (before signing).
    pub fn body(&self) -> String {
        let mut text = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        );
        if let Some(time) = &self.time {
            text.push_str(&format!("time {time}\n"));
        }
        if let Some(prev) = &self.prev {
            text.push_str(&format!("prev {}\n", B64.encode(prev)));
        }
        text
    }

    /// Reads a note text (as [`VerifierKey::open`] returns it).
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let bad = |why: String| NoteError::BadCheckpoint(why);
        let mut lines = text.lines();
        let origin = lines.next().filter(|l| !l.is_empty());
        let origin = origin.ok_or_else(|| bad("no origin line".into()))?;
        let size = lines.next().and_then(|l| l.parse::<u64>().ok());
        let size = size.ok_or_else(|| bad("the second line is not a tree size".into()))?;
        let root = lines.next().and_then(decode_hash);
        let root = root.ok_or_else(|| bad("the third line is not a base64 SHA-256 root".into()))?;
        let mut checkpoint = Self {
            origin: origin.to_string(),
            size,
            root,
            time: None,
            prev: None,
        };
        for line in lines {
            if let Some(time) = line.strip_prefix("time ") {
                checkpoint.time = Some(time.to_string());
            } else if let Some(prev) = line.strip_prefix("prev ") {
                let prev = decode_hash(prev).ok_or_else(|| bad(format!("bad line `{line}`")))?;
                checkpoint.prev = Some(prev);
            }
        }
        Ok(checkpoint)
    }
}

/// A base64 SHA-256.
pub fn decode_hash(text: &str) -> Option<Hash> {
    B64.decode(text.trim()).ok()?.try_into().ok()
}

/// Base64 of a hash, as checkpoints and proofs write it.
pub fn encode_hash(hash: &Hash) -> String {
    B64.encode(hash)
}

/// SHA-256 of a note's bytes: what the next checkpoint's `prev` line carries.
pub fn note_hash(note: &str) -> Hash {
    Sha256::digest(note.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, byte: u8) -> SigningKey {
        SigningKey::from_seed(name, [byte; 32]).unwrap()
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            origin: "patchday/test".into(),
            size: 42,
            root: [7; 32],
            time: Some("2026-12-08T14:00:00.000000Z".into()),
            prev: Some([9; 32]),
        }
    }

    #[test]
    fn keys_round_trip_through_their_text() {
        let k = key("patchday.example/prod", 1);
        let again = SigningKey::parse(&k.to_text()).unwrap();
        assert_eq!(again.verifier(), k.verifier());
        let v = VerifierKey::parse(&k.verifier().to_text()).unwrap();
        assert_eq!(v, k.verifier());
        let text = v.to_text();
        assert!(text.starts_with("patchday.example/prod+"), "{text}");
        assert_eq!(text.split('+').nth(1).unwrap().len(), 8);
        assert!(SigningKey::from_seed("a b", [0; 32]).is_err());
        assert!(SigningKey::from_seed("a+b", [0; 32]).is_err());
        let mut wrong_id = text.clone();
        wrong_id.replace_range(
            text.find('+').unwrap() + 1..text.find('+').unwrap() + 9,
            "00000000",
        );
        assert!(VerifierKey::parse(&wrong_id).is_err());
    }

    /// The example of the C2SP signed-note spec (and Go's note package tests): verifier key
    /// `PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW`.
    #[test]
    fn the_spec_key_id_is_reproduced() {
        let v = VerifierKey::parse(
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        )
        .unwrap();
        let note = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
        assert!(v.open(note).unwrap().starts_with("If you think"));
        let forged = note.replace("answer", "ANSWER");
        assert!(matches!(v.open(&forged), Err(NoteError::BadSignature(_))));
    }

    #[test]
    fn a_signed_checkpoint_opens_with_its_key_only() {
        let k = key("patchday/prod", 1);
        let note = k.sign(&checkpoint().body());
        let text = k.verifier().open(&note).unwrap();
        assert_eq!(Checkpoint::parse(text).unwrap(), checkpoint());

        let other = key("patchday/prod", 2);
        assert!(matches!(
            other.verifier().open(&note),
            Err(NoteError::NotSigned(..))
        ));
        let tampered = note.replace("\n42\n", "\n43\n");
        assert!(matches!(
            k.verifier().open(&tampered),
            Err(NoteError::BadSignature(_))
        ));
        assert!(matches!(
            k.verifier().open("x\n"),
            Err(NoteError::Malformed(_))
        ));
    }
}
