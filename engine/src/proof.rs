//! Inclusion and consistency proofs of the audit log against signed checkpoints (DESIGN §6), as
//! self-contained JSON documents an auditor checks offline with the verifier key alone
//! (`patchday audit check-proof`, or docs/verify_audit.py).
//!
//! An inclusion proof (`"format": "patchday-inclusion-proof/1"`):
//! `{"event": {seq, at, actor, action, run_id, step_id, details, prev_hash, hash}, "leaf_index":
//! seq - 1, "tree_size": N, "path": [base64 hashes, leaf to root], "checkpoint": "<signed note>"}`.
//! Checking it: the event's hash is the SHA-256 of its canonical form ([`crate::audit`]); the
//! leaf is `SHA-256(0x00 || 32 raw bytes of that hash)`; the path leads from it to the root of
//! the checkpoint (RFC 9162 §2.1.3.2), whose size is `tree_size` and whose signature verifies.
//!
//! A consistency proof (`"format": "patchday-consistency-proof/1"`): `{"old_checkpoint",
//! "new_checkpoint", "path"}`: the old tree is a prefix of the new one (RFC 9162 §2.1.4.2).

use serde_json::{Value, json};

use crate::audit;
use crate::checkpoint::{Checkpoint, NoteError, VerifierKey, decode_hash, encode_hash};
use crate::checkpoints::{PAGE, hex_hash};
use crate::merkle::{self, Hash, ProofError};
use crate::merkle_nodes;
use crate::store::{Store, StoreError};

pub const INCLUSION: &str = "patchday-inclusion-proof/1";
pub const CONSISTENCY: &str = "patchday-consistency-proof/1";

/// Why a proof cannot be made or does not hold.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Note(#[from] NoteError),
    #[error("{0}")]
    Proof(#[from] ProofError),
    #[error("{0}")]
    Invalid(String),
}

/// The leaf hashes of the first `size` events.
async fn leaves<S: Store>(store: &S, size: u64) -> Result<Vec<Hash>, Error> {
    let mut out = Vec::with_capacity(size as usize);
    while (out.len() as u64) < size {
        let limit = (size - out.len() as u64).min(PAGE as u64) as u32;
        let page = store.event_hashes(out.len() as i64, limit).await?;
        if page.is_empty() {
            return Err(Error::Invalid(format!(
                "the log has {} events, the checkpoint signs {size}",
                out.len()
            )));
        }
        for (_, hash) in page {
            let raw = hex_hash(&hash)
                .ok_or_else(|| Error::Invalid(format!("stored hash `{hash}` is not hex")))?;
            out.push(merkle::leaf_hash(&raw));
        }
    }
    Ok(out)
}

/// The leaves of a checkpoint's tree, checked against its root.
async fn checked_leaves<S: Store>(store: &S, checkpoint: &Checkpoint) -> Result<Vec<Hash>, Error> {
    let leaves = leaves(store, checkpoint.size).await?;
    if merkle::root_of(&leaves) != checkpoint.root {
        return Err(Error::Invalid(format!(
            "the log's first {} events do not have the checkpoint's root: history was rewritten",
            checkpoint.size
        )));
    }
    Ok(leaves)
}

fn read_checkpoint(note: &str) -> Result<Checkpoint, Error> {
    Ok(Checkpoint::parse(crate::checkpoint::unverified_text(
        note,
    )?)?)
}

/// An inclusion proof of event `seq` against the checkpoint `note`.
pub async fn prove_inclusion<S: Store>(store: &S, seq: i64, note: &str) -> Result<Value, Error> {
    let checkpoint = read_checkpoint(note)?;
    if seq < 1 || seq as u64 > checkpoint.size {
        return Err(Error::Invalid(format!(
            "seq {seq} is not covered by the checkpoint (events 1..={})",
            checkpoint.size
        )));
    }
    let event = store
        .events_after(seq - 1, 1)
        .await?
        .pop()
        .filter(|e| e.seq == seq)
        .ok_or_else(|| Error::Invalid(format!("no event {seq}")))?;
    let path = match stored_inclusion_path(store, &event, &checkpoint).await? {
        Some(path) => path,
        None => {
            let leaves = checked_leaves(store, &checkpoint).await?;
            merkle::inclusion_proof(seq as usize - 1, &leaves)
        }
    };
    Ok(inclusion_json(&event, &path, &checkpoint, note))
}

/// The leaf hash of an event as stored.
fn event_leaf(event: &crate::store::EventRow) -> Result<Hash, Error> {
    let raw = hex_hash(&event.hash)
        .ok_or_else(|| Error::Invalid(format!("event {}: stored hash is not hex", event.seq)))?;
    Ok(merkle::leaf_hash(&raw))
}

/// The audit path of `event` from the stored Merkle nodes, if they are there and the path
/// leads to the checkpoint's root (the nodes are never trusted: [`crate::merkle_nodes`]).
async fn stored_inclusion_path<S: Store>(
    store: &S,
    event: &crate::store::EventRow,
    checkpoint: &Checkpoint,
) -> Result<Option<Vec<Hash>>, Error> {
    let index = event.seq as u64 - 1;
    let Some(path) = merkle_nodes::inclusion_path(store, index, checkpoint.size).await? else {
        return Ok(None);
    };
    let leaf = event_leaf(event)?;
    let holds = merkle::verify_inclusion(&leaf, index, checkpoint.size, &path, &checkpoint.root);
    Ok(holds.is_ok().then_some(path))
}

/// Inclusion proofs of each of `events` against the checkpoint `note`, reading the log once.
pub async fn prove_inclusions<S: Store>(
    store: &S,
    events: &[crate::store::EventRow],
    note: &str,
) -> Result<Vec<Value>, Error> {
    let checkpoint = read_checkpoint(note)?;
    if let Some(late) = events
        .iter()
        .find(|e| e.seq < 1 || e.seq as u64 > checkpoint.size)
    {
        return Err(Error::Invalid(format!(
            "event {} is not covered by the checkpoint (events 1..={}): sign a newer one              (patchday audit checkpoint)",
            late.seq, checkpoint.size
        )));
    }
    let mut stored = Vec::with_capacity(events.len());
    for event in events {
        match stored_inclusion_path(store, event, &checkpoint).await? {
            Some(path) => stored.push(path),
            None => break,
        }
    }
    if stored.len() < events.len() {
        let leaves = checked_leaves(store, &checkpoint).await?;
        stored = events
            .iter()
            .map(|e| merkle::inclusion_proof(e.seq as usize - 1, &leaves))
            .collect();
    }
    Ok(events
        .iter()
        .zip(&stored)
        .map(|(event, path)| inclusion_json(event, path, &checkpoint, note))
        .collect())
}

fn inclusion_json(
    event: &crate::store::EventRow,
    path: &[Hash],
    checkpoint: &Checkpoint,
    note: &str,
) -> Value {
    json!({
        "format": INCLUSION,
        "event": audit::event_json(event),
        "leaf_index": event.seq - 1,
        "tree_size": checkpoint.size,
        "path": path.iter().map(encode_hash).collect::<Vec<_>>(),
        "checkpoint": note,
    })
}

/// A consistency proof between two checkpoints (old first).
pub async fn prove_consistency<S: Store>(
    store: &S,
    old_note: &str,
    new_note: &str,
) -> Result<Value, Error> {
    let old = read_checkpoint(old_note)?;
    let new = read_checkpoint(new_note)?;
    if old.size > new.size {
        return Err(Error::Invalid(format!(
            "the old checkpoint signs {} events, more than the new one's {}",
            old.size, new.size
        )));
    }
    let stored = merkle_nodes::consistency_path(store, old.size, new.size)
        .await?
        .filter(|path| {
            merkle::verify_consistency(old.size, &old.root, new.size, &new.root, path).is_ok()
        });
    let path = match stored {
        Some(path) => path,
        None => {
            let leaves = checked_leaves(store, &new).await?;
            merkle::consistency_proof(old.size as usize, &leaves)
        }
    };
    Ok(json!({
        "format": CONSISTENCY,
        "old_checkpoint": old_note,
        "new_checkpoint": new_note,
        "path": path.iter().map(encode_hash).collect::<Vec<_>>(),
    }))
}

/// What a proof that holds proves, in one line.
pub fn check(proof: &Value, key: &VerifierKey) -> Result<String, Error> {
    match proof.get("format").and_then(Value::as_str) {
        Some(INCLUSION) => check_inclusion(proof, key),
        Some(CONSISTENCY) => check_consistency(proof, key),
        other => Err(Error::Invalid(format!("unknown proof format {other:?}"))),
    }
}

fn field<'a>(proof: &'a Value, key: &str) -> Result<&'a Value, Error> {
    proof
        .get(key)
        .ok_or_else(|| Error::Invalid(format!("the proof has no `{key}`")))
}

fn signed_checkpoint(proof: &Value, name: &str, key: &VerifierKey) -> Result<Checkpoint, Error> {
    let note = field(proof, name)?
        .as_str()
        .ok_or_else(|| Error::Invalid(format!("`{name}` is not a string")))?;
    Ok(Checkpoint::parse(key.open(note)?)?)
}

fn path(proof: &Value) -> Result<Vec<Hash>, Error> {
    let bad = || Error::Invalid("`path` is not a list of base64 SHA-256 hashes".into());
    field(proof, "path")?
        .as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|h| h.as_str().and_then(decode_hash).ok_or_else(bad))
        .collect()
}

fn check_inclusion(proof: &Value, key: &VerifierKey) -> Result<String, Error> {
    let checkpoint = signed_checkpoint(proof, "checkpoint", key)?;
    let event = audit::event_from_json(field(proof, "event")?)
        .ok_or_else(|| Error::Invalid("`event` is not an audit event".into()))?;
    if audit::row_hash(&event) != event.hash {
        return Err(Error::Invalid(format!(
            "event {}: its hash is not the hash of its content",
            event.seq
        )));
    }
    let size = field(proof, "tree_size")?.as_u64();
    if size != Some(checkpoint.size) {
        return Err(Error::Invalid(
            "`tree_size` is not the checkpoint's size".into(),
        ));
    }
    let raw = hex_hash(&event.hash).ok_or_else(|| Error::Invalid("bad event hash".into()))?;
    merkle::verify_inclusion(
        &merkle::leaf_hash(&raw),
        event.seq as u64 - 1,
        checkpoint.size,
        &path(proof)?,
        &checkpoint.root,
    )?;
    Ok(format!(
        "event {} ({} by {}) is in the audit log of {} events signed by {}",
        event.seq,
        event.action,
        event.actor,
        checkpoint.size,
        key.name()
    ))
}

fn check_consistency(proof: &Value, key: &VerifierKey) -> Result<String, Error> {
    let old = signed_checkpoint(proof, "old_checkpoint", key)?;
    let new = signed_checkpoint(proof, "new_checkpoint", key)?;
    merkle::verify_consistency(old.size, &old.root, new.size, &new.root, &path(proof)?)?;
    Ok(format!(
        "the log of {} events extends the log of {} events unchanged (signed by {})",
        new.size,
        old.size,
        key.name()
    ))
}
