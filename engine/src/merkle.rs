//! The RFC 6962 Merkle tree over the audit log (DESIGN §6): leaf `i` is the 32 raw bytes of the
//! hash of the event with `seq = i + 1`. Pure functions, no I/O.
//!
//! - leaf hash: `SHA-256(0x00 || leaf data)`; interior node: `SHA-256(0x01 || left || right)`;
//!   the root of the empty tree is `SHA-256("")` (RFC 6962 §2.1).
//! - [`Tree`] appends leaves in O(log n) time and memory (it keeps the roots of the perfect
//!   subtrees that make up the first n leaves), so the daemon and `audit verify` follow a log
//!   of millions of events without holding it.
//! - [`inclusion_proof`] / [`consistency_proof`] build the audit paths of RFC 6962 §2.1.1 and
//!   §2.1.2 from the leaf hashes; [`verify_inclusion`] / [`verify_consistency`] check them as
//!   RFC 9162 §2.1.3.2 and §2.1.4.2 describe.
//! - [`inclusion_ranges`] / [`consistency_ranges`] say which leaf ranges those paths hash, and
//!   [`perfect_subtrees`] splits a range into the perfect subtrees whose roots the store keeps
//!   ([`crate::merkle_nodes`]), so a proof over millions of leaves reads O(log n) hashes.

use std::ops::Range;

use sha2::{Digest, Sha256};

/// A SHA-256 output.
pub type Hash = [u8; 32];

/// `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// A tree that grows one leaf at a time, keeping only O(log n) hashes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    size: u64,
    /// Roots of the perfect subtrees covering leaves `0..size`, largest (leftmost) first: one
    /// per set bit of `size`.
    peaks: Vec<Hash>,
}

impl Tree {
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The tree of `size` leaves whose perfect subtrees ([`perfect_subtrees`]`(0, size)`) have
    /// the roots `peaks`, largest first; `None` when their number does not fit the size.
    pub fn from_peaks(size: u64, peaks: Vec<Hash>) -> Option<Self> {
        (peaks.len() == size.count_ones() as usize).then_some(Self { size, peaks })
    }

    /// Appends a leaf given its leaf hash ([`leaf_hash`] of the leaf data).
    pub fn push_leaf_hash(&mut self, leaf: Hash) {
        self.push_reporting(leaf, |_, _| {});
    }

    /// Appends a leaf hash and tells `completed` about every perfect subtree it completes
    /// (the leaf itself first, then each larger one up to the new peak).
    pub fn push_reporting(&mut self, leaf: Hash, mut completed: impl FnMut(Subtree, &Hash)) {
        let mut hash = leaf;
        let mut size = self.size;
        let mut level = 0;
        completed(Subtree::new(0, self.size), &hash);
        while size & 1 == 1 {
            let left = self.peaks.pop().expect("one peak per set bit");
            hash = node_hash(&left, &hash);
            size >>= 1;
            level += 1;
            completed(Subtree::new(level, self.size >> level), &hash);
        }
        self.peaks.push(hash);
        self.size += 1;
    }

    /// Appends a leaf given its data.
    pub fn push(&mut self, data: &[u8]) {
        self.push_leaf_hash(leaf_hash(data));
    }

    /// The Merkle tree hash of the leaves so far (RFC 6962 MTH).
    pub fn root(&self) -> Hash {
        root_of_subtrees(&self.peaks)
    }
}

/// The Merkle tree hash of a slice of leaf hashes.
pub fn root_of(leaves: &[Hash]) -> Hash {
    let mut tree = Tree::new();
    for leaf in leaves {
        tree.push_leaf_hash(*leaf);
    }
    tree.root()
}

/// A perfect subtree: the `2^level` leaves from `index * 2^level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subtree {
    pub level: u32,
    pub index: u64,
}

impl Subtree {
    pub fn new(level: u32, index: u64) -> Self {
        Self { level, index }
    }

    /// Its leaves.
    pub fn leaves(&self) -> Range<u64> {
        let start = self.index << self.level;
        start..start + (1 << self.level)
    }
}

/// The perfect subtrees that make up the leaves `range`, left to right, each as large as the
/// alignment allows. For the ranges of a proof (and `0..n`) the range's Merkle tree hash is
/// [`root_of_subtrees`] of their roots.
pub fn perfect_subtrees(range: Range<u64>) -> Vec<Subtree> {
    let mut out = Vec::new();
    let mut at = range.start;
    while at < range.end {
        let aligned = if at == 0 { 63 } else { at.trailing_zeros() };
        let fits = 63 - (range.end - at).leading_zeros();
        let level = aligned.min(fits);
        out.push(Subtree::new(level, at >> level));
        at += 1 << level;
    }
    out
}

/// The Merkle tree hash of consecutive perfect subtrees' roots, left to right.
pub fn root_of_subtrees(roots: &[Hash]) -> Hash {
    let mut roots = roots.iter().rev();
    let Some(last) = roots.next() else {
        return empty_root();
    };
    roots.fold(*last, |right, left| node_hash(left, &right))
}

/// The largest power of two smaller than `n` (n ≥ 2).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (u64::BITS - 1 - (n - 1).leading_zeros())
}

/// The leaf ranges whose Merkle tree hashes make the audit path of leaf `index` in a tree of
/// `size` leaves (RFC 6962 §2.1.1), leaf to root.
pub fn inclusion_ranges(index: u64, size: u64) -> Vec<Range<u64>> {
    assert!(index < size, "leaf {index} is not in a tree of {size}");
    let mut ranges = Vec::new();
    inclusion_path(index, 0..size, &mut ranges);
    ranges
}

fn inclusion_path(index: u64, tree: Range<u64>, ranges: &mut Vec<Range<u64>>) {
    let n = tree.end - tree.start;
    if n <= 1 {
        return;
    }
    let mid = tree.start + split(n);
    if index < mid {
        inclusion_path(index, tree.start..mid, ranges);
        ranges.push(mid..tree.end);
    } else {
        inclusion_path(index, mid..tree.end, ranges);
        ranges.push(tree.start..mid);
    }
}

/// The leaf ranges whose Merkle tree hashes make the consistency proof between the first
/// `old_size` leaves and `size` leaves (RFC 6962 §2.1.2). Empty when the sizes are equal or
/// `old_size` is 0.
pub fn consistency_ranges(old_size: u64, size: u64) -> Vec<Range<u64>> {
    assert!(old_size <= size, "old size past the tree");
    let mut ranges = Vec::new();
    if old_size > 0 {
        subproof(old_size, 0..size, true, &mut ranges);
    }
    ranges
}

fn subproof(m: u64, tree: Range<u64>, complete: bool, ranges: &mut Vec<Range<u64>>) {
    let n = tree.end - tree.start;
    if m == n {
        if !complete {
            ranges.push(tree);
        }
        return;
    }
    let mid = tree.start + split(n);
    if m <= mid - tree.start {
        subproof(m, tree.start..mid, complete, ranges);
        ranges.push(mid..tree.end);
    } else {
        subproof(m - (mid - tree.start), mid..tree.end, false, ranges);
        ranges.push(tree.start..mid);
    }
}

fn slice(leaves: &[Hash], range: Range<u64>) -> &[Hash] {
    &leaves[range.start as usize..range.end as usize]
}

/// The audit path of leaf `index` in the tree of `leaves` (RFC 6962 §2.1.1), leaf to root.
pub fn inclusion_proof(index: usize, leaves: &[Hash]) -> Vec<Hash> {
    inclusion_ranges(index as u64, leaves.len() as u64)
        .into_iter()
        .map(|r| root_of(slice(leaves, r)))
        .collect()
}

/// The consistency proof between the first `old_size` leaves and all of `leaves`
/// (RFC 6962 §2.1.2). Empty when the sizes are equal or `old_size` is 0.
pub fn consistency_proof(old_size: usize, leaves: &[Hash]) -> Vec<Hash> {
    consistency_ranges(old_size as u64, leaves.len() as u64)
        .into_iter()
        .map(|r| root_of(slice(leaves, r)))
        .collect()
}

/// Why a proof does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("leaf {index} is not in a tree of size {size}")]
    OutOfRange { index: u64, size: u64 },
    #[error("the proof has the wrong number of hashes")]
    WrongLength,
    #[error("the proof does not lead to the root")]
    RootMismatch,
}

/// Checks that `leaf` (a leaf hash) is leaf `index` of the tree of `size` leaves with `root`.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::OutOfRange { index, size });
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(ProofError::WrongLength);
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength);
    }
    if &r != root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Checks that the tree of `old_size` leaves with `old_root` is a prefix of the tree of
/// `new_size` leaves with `new_root`.
pub fn verify_consistency(
    old_size: u64,
    old_root: &Hash,
    new_size: u64,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::OutOfRange {
            index: old_size,
            size: new_size,
        });
    }
    if old_size == new_size || old_size == 0 {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        let same = (old_size == 0 && old_root == &empty_root()) || old_root == new_root;
        return if same {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return Err(ProofError::WrongLength);
    };
    let (mut f, mut s) = (old_size - 1, new_size - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s == 0 {
            return Err(ProofError::WrongLength);
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength);
    }
    if &fr != old_root || &sr != new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&[i as u8; 32])).collect()
    }

    /// RFC 6962 MTH, straight from its recursive definition.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split(n as u64) as usize;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    #[test]
    fn incremental_root_is_the_recursive_one() {
        let all = leaves(70);
        let mut tree = Tree::new();
        assert_eq!(tree.root(), mth(&[]));
        for (i, leaf) in all.iter().enumerate() {
            tree.push_leaf_hash(*leaf);
            assert_eq!(tree.root(), mth(&all[..=i]), "size {}", i + 1);
            assert!(tree.peaks.len() <= 7);
        }
    }

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(
            empty_root()[..4],
            [0xe3, 0xb0, 0xc4, 0x42],
            "SHA-256(\"\") starts e3b0c442"
        );
    }

    #[test]
    fn every_inclusion_proof_verifies_and_a_wrong_one_does_not() {
        let all = leaves(40);
        for n in 1..=all.len() {
            let root = mth(&all[..n]);
            for i in 0..n {
                let proof = inclusion_proof(i, &all[..n]);
                assert_eq!(
                    verify_inclusion(&all[i], i as u64, n as u64, &proof, &root),
                    Ok(())
                );
                let other = all[(i + 1) % all.len()];
                assert!(verify_inclusion(&other, i as u64, n as u64, &proof, &root).is_err());
                if n > 1 {
                    assert!(
                        verify_inclusion(&all[i], ((i + 1) % n) as u64, n as u64, &proof, &root)
                            .is_err()
                    );
                }
            }
        }
    }

    #[test]
    fn every_consistency_proof_verifies_and_a_fork_does_not() {
        let all = leaves(40);
        let mut forked = all.clone();
        forked[3] = leaf_hash(b"rewritten");
        for n in 1..=all.len() {
            let new_root = mth(&all[..n]);
            for m in 0..=n {
                let proof = consistency_proof(m, &all[..n]);
                let old_root = mth(&all[..m]);
                assert_eq!(
                    verify_consistency(m as u64, &old_root, n as u64, &new_root, &proof),
                    Ok(()),
                    "{m} -> {n}"
                );
                if m > 3 && m < n {
                    let forked_root = mth(&forked[..m]);
                    assert!(
                        verify_consistency(m as u64, &forked_root, n as u64, &new_root, &proof)
                            .is_err()
                    );
                }
            }
        }
    }

    #[test]
    fn proof_ranges_are_made_of_perfect_subtrees_with_the_same_root() {
        let all = leaves(45);
        let subtree_root = |t: Subtree| mth(slice(&all, t.leaves()));
        for n in 1..=all.len() as u64 {
            let peaks: Vec<Hash> = perfect_subtrees(0..n)
                .into_iter()
                .map(subtree_root)
                .collect();
            assert_eq!(root_of_subtrees(&peaks), mth(slice(&all, 0..n)));
            let from_peaks = Tree::from_peaks(n, peaks).expect("one peak per set bit");
            assert_eq!(from_peaks.root(), root_of(slice(&all, 0..n)));
            let ranges = (0..n)
                .flat_map(|i| inclusion_ranges(i, n))
                .chain((0..=n).flat_map(|m| consistency_ranges(m, n)));
            for range in ranges {
                let roots: Vec<Hash> = perfect_subtrees(range.clone())
                    .into_iter()
                    .map(subtree_root)
                    .collect();
                assert_eq!(
                    root_of_subtrees(&roots),
                    mth(slice(&all, range.clone())),
                    "{range:?}"
                );
            }
        }
    }

    #[test]
    fn pushing_reports_every_completed_subtree() {
        let all = leaves(37);
        let mut tree = Tree::new();
        let mut reported = Vec::new();
        for leaf in &all {
            tree.push_reporting(*leaf, |t, h| reported.push((t, *h)));
        }
        let expected: usize = (0..6).map(|level| 37 >> level).sum();
        assert_eq!(reported.len(), expected);
        for (subtree, hash) in reported {
            assert_eq!(hash, mth(slice(&all, subtree.leaves())), "{subtree:?}");
        }
    }
}
