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

    /// Appends a leaf given its leaf hash ([`leaf_hash`] of the leaf data).
    pub fn push_leaf_hash(&mut self, leaf: Hash) {
        let mut hash = leaf;
        let mut size = self.size;
        while size & 1 == 1 {
            let left = self.peaks.pop().expect("one peak per set bit");
            hash = node_hash(&left, &hash);
            size >>= 1;
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
        let mut peaks = self.peaks.iter().rev();
        let Some(last) = peaks.next() else {
            return empty_root();
        };
        peaks.fold(*last, |right, left| node_hash(left, &right))
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

/// The largest power of two smaller than `n` (n ≥ 2).
fn split(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// The audit path of leaf `index` in the tree of `leaves` (RFC 6962 §2.1.1), leaf to root.
pub fn inclusion_proof(index: usize, leaves: &[Hash]) -> Vec<Hash> {
    assert!(
        index < leaves.len(),
        "leaf {index} is not in a tree of {}",
        leaves.len()
    );
    let mut proof = Vec::new();
    inclusion_path(index, leaves, &mut proof);
    proof
}

fn inclusion_path(index: usize, leaves: &[Hash], proof: &mut Vec<Hash>) {
    if leaves.len() <= 1 {
        return;
    }
    let k = split(leaves.len());
    if index < k {
        inclusion_path(index, &leaves[..k], proof);
        proof.push(root_of(&leaves[k..]));
    } else {
        inclusion_path(index - k, &leaves[k..], proof);
        proof.push(root_of(&leaves[..k]));
    }
}

/// The consistency proof between the first `old_size` leaves and all of `leaves`
/// (RFC 6962 §2.1.2). Empty when the sizes are equal or `old_size` is 0.
pub fn consistency_proof(old_size: usize, leaves: &[Hash]) -> Vec<Hash> {
    assert!(old_size <= leaves.len(), "old size past the tree");
    let mut proof = Vec::new();
    if old_size > 0 {
        subproof(old_size, leaves, true, &mut proof);
    }
    proof
}

fn subproof(m: usize, leaves: &[Hash], complete: bool, proof: &mut Vec<Hash>) {
    let n = leaves.len();
    if m == n {
        if !complete {
            proof.push(root_of(leaves));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(m, &leaves[..k], complete, proof);
        proof.push(root_of(&leaves[k..]));
    } else {
        subproof(m - k, &leaves[k..], false, proof);
        proof.push(root_of(&leaves[..k]));
    }
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
                let k = split(n);
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
}
