//! The audit log's Merkle tree as kept in the store (migration 0019): the roots of its perfect
//! subtrees of [`STORED_LEVEL`] and up, so that the checkpointer resumes the tree at the last
//! checkpoint and `audit prove` builds a proof with O(log n) reads instead of rebuilding the
//! tree from every event.
//!
//! Decision: the checkpointer writes the nodes as it catches up with the log (one batch per
//! page, O(log n) per event), not the transaction that appends events: the commit path, which
//! holds the chain lock, stays as it was, and only the leader writes them. A log that grew
//! without a checkpointer (an upgrade, a restore) is caught up by the next checkpoint.
//!
//! Invariant: the nodes are never trusted for verification. `audit verify` recomputes every
//! root from the events; a tree resumed from nodes must have the last signed checkpoint's root
//! (else the checkpointer rebuilds from the events); a proof made from nodes is checked against
//! its signed checkpoint before it is used (else it is rebuilt from the events). Subtrees below
//! the stored level are hashed from at most `2^STORED_LEVEL` events.

use std::collections::HashMap;
use std::ops::Range;

use crate::checkpoints::hex_hash;
use crate::merkle::{self, Hash, Subtree, Tree};
use crate::store::{Store, StoreError};

/// The smallest stored subtree: 16 leaves (a sixteenth of the tree's nodes, about 2n/16 rows).
pub const STORED_LEVEL: u32 = 4;

/// Collects the completed subtrees worth storing while a [`Tree`] grows.
#[derive(Debug, Default)]
pub struct NodeBatch(Vec<(Subtree, Hash)>);

impl NodeBatch {
    /// Appends `leaf` to `tree`, keeping the subtrees it completes.
    pub fn push(&mut self, tree: &mut Tree, leaf: Hash) {
        tree.push_reporting(leaf, |subtree, hash| {
            if subtree.level >= STORED_LEVEL {
                self.0.push((subtree, *hash));
            }
        });
    }

    /// Writes what was collected, and empties the batch.
    pub async fn flush<S: Store>(&mut self, store: &S) -> Result<(), StoreError> {
        if self.0.is_empty() {
            return Ok(());
        }
        store.put_merkle_nodes(std::mem::take(&mut self.0)).await
    }
}

/// The roots of `subtrees`: stored ones from the node table, smaller ones hashed from the
/// events. `None` when a stored one is missing (nodes not written yet) or the log is short.
async fn subtree_roots<S: Store>(
    store: &S,
    subtrees: &[Subtree],
) -> Result<Option<HashMap<Subtree, Hash>>, StoreError> {
    let (stored, small): (Vec<Subtree>, Vec<Subtree>) =
        subtrees.iter().partition(|t| t.level >= STORED_LEVEL);
    let wanted = stored.len();
    let mut roots: HashMap<Subtree, Hash> = store.merkle_nodes(stored).await?.into_iter().collect();
    if roots.len() < wanted {
        return Ok(None);
    }
    for block in blocks(&small) {
        let Some(leaves) = leaf_hashes(store, block.clone()).await? else {
            return Ok(None);
        };
        for subtree in small.iter().filter(|t| t.leaves().start >= block.start) {
            let range = subtree.leaves();
            if range.end <= block.end {
                let at = (range.start - block.start) as usize;
                let len = (range.end - range.start) as usize;
                roots.insert(*subtree, merkle::root_of(&leaves[at..at + len]));
            }
        }
    }
    Ok(Some(roots))
}

/// The aligned blocks of `2^STORED_LEVEL` leaves the small subtrees lie in, each once.
fn blocks(small: &[Subtree]) -> Vec<Range<u64>> {
    let mut starts: Vec<u64> = small
        .iter()
        .map(|t| t.leaves().start >> STORED_LEVEL << STORED_LEVEL)
        .collect();
    starts.sort_unstable();
    starts.dedup();
    starts
        .into_iter()
        .map(|start| {
            let end = small
                .iter()
                .map(|t| t.leaves())
                .filter(|r| r.start >> STORED_LEVEL << STORED_LEVEL == start)
                .map(|r| r.end)
                .max()
                .unwrap_or(start);
            start..end
        })
        .collect()
}

/// The leaf hashes of the events `range` (leaf i is event i + 1); `None` if the log is shorter.
async fn leaf_hashes<S: Store>(
    store: &S,
    range: Range<u64>,
) -> Result<Option<Vec<Hash>>, StoreError> {
    let want = range.end - range.start;
    let page = store.event_hashes(range.start as i64, want as u32).await?;
    if page.len() as u64 != want {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(page.len());
    for (_, hash) in page {
        let Some(raw) = hex_hash(&hash) else {
            return Ok(None);
        };
        out.push(merkle::leaf_hash(&raw));
    }
    Ok(Some(out))
}

/// The Merkle tree hashes of each of `ranges` (ranges of a proof, or `0..n`), in order.
async fn range_roots<S: Store>(
    store: &S,
    ranges: &[Range<u64>],
) -> Result<Option<Vec<Hash>>, StoreError> {
    let parts: Vec<Vec<Subtree>> = ranges
        .iter()
        .map(|r| merkle::perfect_subtrees(r.clone()))
        .collect();
    let all: Vec<Subtree> = parts.iter().flatten().copied().collect();
    let Some(roots) = subtree_roots(store, &all).await? else {
        return Ok(None);
    };
    let root_of = |part: &Vec<Subtree>| -> Option<Hash> {
        let hashes = part
            .iter()
            .map(|t| roots.get(t).copied())
            .collect::<Option<Vec<_>>>()?;
        Some(merkle::root_of_subtrees(&hashes))
    };
    Ok(parts.iter().map(root_of).collect())
}

/// The tree of the first `size` events from stored nodes, or `None` if they are missing.
pub async fn tree_at<S: Store>(store: &S, size: u64) -> Result<Option<Tree>, StoreError> {
    let peaks = merkle::perfect_subtrees(0..size);
    let Some(roots) = subtree_roots(store, &peaks).await? else {
        return Ok(None);
    };
    let hashes = peaks
        .iter()
        .map(|t| roots.get(t).copied())
        .collect::<Option<Vec<_>>>();
    Ok(hashes.and_then(|h| Tree::from_peaks(size, h)))
}

/// The audit path of leaf `index` in the tree of `size` from stored nodes (unchecked: the
/// caller checks it against a signed root), or `None` if they are missing.
pub async fn inclusion_path<S: Store>(
    store: &S,
    index: u64,
    size: u64,
) -> Result<Option<Vec<Hash>>, StoreError> {
    range_roots(store, &merkle::inclusion_ranges(index, size)).await
}

/// The consistency path between sizes `old_size` and `size` from stored nodes (unchecked), or
/// `None` if they are missing.
pub async fn consistency_path<S: Store>(
    store: &S,
    old_size: u64,
    size: u64,
) -> Result<Option<Vec<Hash>>, StoreError> {
    range_roots(store, &merkle::consistency_ranges(old_size, size)).await
}
