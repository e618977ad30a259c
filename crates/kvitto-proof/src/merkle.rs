//! The RFC 6962 / RFC 9162 Merkle tree, generic over the hash: leaf = H(0x00 ‖ data),
//! node = H(0x01 ‖ left ‖ right), split at the largest power of two below n. Proofs are
//! generated from any [`NodeSource`] (all leaves in memory, or persisted complete subtrees,
//! O(log n) reads) and verified by the rules of RFC 9162 §2.1.3.2 / §2.1.4.2 with the
//! reference verifier's special cases (transparency-dev/merkle, `proof/verify.go`).

use std::fmt;

/// A 32-byte tree hash.
pub type Hash = [u8; 32];

/// A hash function for the tree.
pub trait TreeHash {
    /// Name, for messages and checkpoints.
    const NAME: &'static str;
    /// Hash of arbitrary bytes.
    fn hash(parts: &[&[u8]]) -> Hash;
    /// The root of the empty tree: H("").
    fn empty() -> Hash {
        Self::hash(&[])
    }
    /// Leaf hash: H(0x00 ‖ data).
    fn leaf(data: &[u8]) -> Hash {
        Self::hash(&[&[0x00], data])
    }
    /// Interior node: H(0x01 ‖ left ‖ right).
    fn node(left: &Hash, right: &Hash) -> Hash {
        Self::hash(&[&[0x01], left, right])
    }
}

/// SHA-256, as in RFC 6962: the ledger's tree hash ([`crate::LogHash`]).
#[derive(Debug, Clone, Copy)]
pub struct Sha256;

impl TreeHash for Sha256 {
    const NAME: &'static str = "SHA-256";
    fn hash(parts: &[&[u8]]) -> Hash {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for p in parts {
            h.update(p);
        }
        h.finalize().into()
    }
}

/// BLAKE3 (plain hash mode): the tree hash of tree v1, kept to verify checkpoints and bundles
/// made before tree v2.
#[derive(Debug, Clone, Copy)]
pub struct Blake3;

impl TreeHash for Blake3 {
    const NAME: &'static str = "BLAKE3";
    fn hash(parts: &[&[u8]]) -> Hash {
        let mut h = blake3::Hasher::new();
        for p in parts {
            h.update(p);
        }
        *h.finalize().as_bytes()
    }
}

/// Why a proof does not verify (or cannot be made).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The index is not inside the tree.
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange {
        /// Leaf index.
        index: u64,
        /// Tree size.
        size: u64,
    },
    /// Sizes are impossible (size2 < size1, or size1 == 0 for consistency).
    #[error("invalid sizes: {0}")]
    BadSizes(String),
    /// A hash in the input is not 32 bytes.
    #[error("{what} is {len} bytes, not 32")]
    BadHashLength {
        /// Which hash.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// The proof has the wrong number of hashes.
    #[error("proof has {got} hashes, expected {expected}")]
    WrongProofLength {
        /// Given.
        got: usize,
        /// Needed.
        expected: usize,
    },
    /// The recomputed root differs.
    #[error("recomputed root {computed} does not match the expected root")]
    RootMismatch {
        /// Hex of the recomputed root.
        computed: HexHash,
    },
    /// The recomputed old root differs (consistency).
    #[error("recomputed old root {computed} does not match root1")]
    OldRootMismatch {
        /// Hex of the recomputed old root.
        computed: HexHash,
    },
    /// The node source failed.
    #[error("tree storage: {0}")]
    Source(String),
}

/// A hash displayed as hex.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HexHash(pub Hash);

impl fmt::Display for HexHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for HexHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Largest power of two strictly below `n` (n ≥ 2).
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

fn bit_length(x: u64) -> u32 {
    64 - x.leading_zeros()
}

/// Where proof generation reads complete subtrees: the root of leaves
/// `[index·2^level, (index+1)·2^level)`.
pub trait NodeSource {
    /// Root of a complete, aligned subtree.
    fn node(&self, level: u32, index: u64) -> Result<Hash, ProofError>;
}

/// All leaf hashes in memory (tests, small trees, bundles).
#[derive(Debug, Clone, Default)]
pub struct MemoryTree<H> {
    levels: Vec<Vec<Hash>>,
    _h: std::marker::PhantomData<H>,
}

impl<H: TreeHash> MemoryTree<H> {
    /// A tree over leaf hashes.
    pub fn new(leaf_hashes: Vec<Hash>) -> Self {
        let mut levels = vec![leaf_hashes];
        while levels.last().is_some_and(|l| l.len() > 1) {
            let prev = levels.last().map(Vec::as_slice).unwrap_or_default();
            let next = prev.chunks_exact(2).map(|p| H::node(&p[0], &p[1])).collect();
            levels.push(next);
        }
        Self { levels, _h: std::marker::PhantomData }
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }
}

impl<H: TreeHash> NodeSource for MemoryTree<H> {
    fn node(&self, level: u32, index: u64) -> Result<Hash, ProofError> {
        self.levels
            .get(level as usize)
            .and_then(|l| l.get(index as usize))
            .copied()
            .ok_or_else(|| ProofError::Source(format!("no complete subtree at level {level} index {index}")))
    }
}

/// Root of leaves `[start, end)` from complete subtrees (RFC 6962 MTH); `start` is aligned
/// to the largest power of two the recursion needs, as it always is from the top.
fn range_root<H: TreeHash>(src: &dyn NodeSource, start: u64, end: u64) -> Result<Hash, ProofError> {
    let n = end - start;
    if n == 0 {
        return Ok(H::empty());
    }
    if n.is_power_of_two() && start.is_multiple_of(n) {
        return src.node(n.trailing_zeros(), start / n);
    }
    let k = split(n);
    Ok(H::node(&range_root::<H>(src, start, start + k)?, &range_root::<H>(src, start + k, end)?))
}

/// Root of the first `size` leaves.
pub fn root<H: TreeHash>(src: &dyn NodeSource, size: u64) -> Result<Hash, ProofError> {
    range_root::<H>(src, 0, size)
}

/// Audit path of leaf `index` in the tree of the first `size` leaves (RFC 6962 PATH).
pub fn inclusion_proof<H: TreeHash>(src: &dyn NodeSource, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut proof = Vec::new();
    path::<H>(src, index, 0, size, &mut proof)?;
    Ok(proof)
}

fn path<H: TreeHash>(
    src: &dyn NodeSource,
    m: u64,
    start: u64,
    end: u64,
    out: &mut Vec<Hash>,
) -> Result<(), ProofError> {
    let n = end - start;
    if n <= 1 {
        return Ok(());
    }
    let k = split(n);
    if m < k {
        path::<H>(src, m, start, start + k, out)?;
        out.push(range_root::<H>(src, start + k, end)?);
    } else {
        path::<H>(src, m - k, start + k, end, out)?;
        out.push(range_root::<H>(src, start, start + k)?);
    }
    Ok(())
}

/// Consistency proof from the tree of `size1` leaves to the tree of `size2` (RFC 6962 PROOF).
pub fn consistency_proof<H: TreeHash>(src: &dyn NodeSource, size1: u64, size2: u64) -> Result<Vec<Hash>, ProofError> {
    if size1 == 0 || size1 > size2 {
        return Err(ProofError::BadSizes(format!("cannot prove {size1} → {size2}")));
    }
    let mut proof = Vec::new();
    if size1 < size2 {
        subproof::<H>(src, size1, 0, size2, true, &mut proof)?;
    }
    Ok(proof)
}

fn subproof<H: TreeHash>(
    src: &dyn NodeSource,
    m: u64,
    start: u64,
    end: u64,
    whole: bool,
    out: &mut Vec<Hash>,
) -> Result<(), ProofError> {
    let n = end - start;
    if m == n {
        if !whole {
            out.push(range_root::<H>(src, start, end)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof::<H>(src, m, start, start + k, whole, out)?;
        out.push(range_root::<H>(src, start + k, end)?);
    } else {
        subproof::<H>(src, m - k, start + k, end, false, out)?;
        out.push(range_root::<H>(src, start, start + k)?);
    }
    Ok(())
}

fn as_hash(what: &'static str, b: &[u8]) -> Result<Hash, ProofError> {
    <Hash>::try_from(b).map_err(|_| ProofError::BadHashLength { what, len: b.len() })
}

/// Verifies an inclusion proof (RFC 9162 §2.1.3.2). Inputs are byte strings so that
/// malformed lengths are rejected rather than impossible to express.
pub fn verify_inclusion<H: TreeHash>(
    index: u64,
    size: u64,
    leaf_hash: &[u8],
    proof: &[Vec<u8>],
    root: &[u8],
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let leaf = as_hash("leaf hash", leaf_hash)?;
    let inner = bit_length(index ^ (size - 1));
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    let expected = (inner + border) as usize;
    if proof.len() != expected {
        return Err(ProofError::WrongProofLength { got: proof.len(), expected });
    }
    let mut h = leaf;
    for (i, p) in proof.iter().enumerate() {
        let p = as_hash("proof hash", p)?;
        h = if (i as u32) < inner && (index >> i) & 1 == 0 { H::node(&h, &p) } else { H::node(&p, &h) };
    }
    if h.as_slice() == root { Ok(()) } else { Err(ProofError::RootMismatch { computed: HexHash(h) }) }
}

/// Verifies a consistency proof (RFC 9162 §2.1.4.2, with the reference verifier's rules for
/// equal and zero sizes).
pub fn verify_consistency<H: TreeHash>(
    size1: u64,
    size2: u64,
    proof: &[Vec<u8>],
    root1: &[u8],
    root2: &[u8],
) -> Result<(), ProofError> {
    if size2 < size1 {
        return Err(ProofError::BadSizes(format!("size2 {size2} < size1 {size1}")));
    }
    if size1 == 0 {
        return Err(ProofError::BadSizes("consistency from the empty tree proves nothing".into()));
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(ProofError::WrongProofLength { got: proof.len(), expected: 0 });
        }
        // Compared as byte strings: equal sizes need equal roots, whatever their length.
        return if root1 == root2 { Ok(()) } else { Err(ProofError::RootMismatch { computed: HexHash([0; 32]) }) };
    }
    if proof.is_empty() {
        return Err(ProofError::WrongProofLength { got: 0, expected: 1 });
    }
    let k = bit_length((size1 - 1) ^ (size2 - 1));
    let shift = size1.trailing_zeros();
    let mut expected = (k - shift) as usize + (size1 - 1).checked_shr(k).unwrap_or(0).count_ones() as usize;
    let pow2 = size1.is_power_of_two();
    if !pow2 {
        expected += 1;
    }
    if proof.len() != expected {
        return Err(ProofError::WrongProofLength { got: proof.len(), expected });
    }
    let hashes = proof.iter().map(|p| as_hash("proof hash", p)).collect::<Result<Vec<_>, _>>()?;
    let (seed, rest) = if pow2 { (as_hash("root1", root1)?, &hashes[..]) } else { (hashes[0], &hashes[1..]) };
    // RFC 9162 2.1.4.2: walk from the seed with fn = size1 - 1 >> shift, sn = size2 - 1 >> shift.
    // Trailing ones of size1 - 1 are trailing zeros of size1: step 4 of the RFC.
    let mut fn_ = (size1 - 1) >> shift;
    let mut sn = (size2 - 1) >> shift;
    let (mut fr, mut sr) = (seed, seed);
    for c in rest {
        if sn == 0 {
            return Err(ProofError::WrongProofLength { got: proof.len(), expected });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = H::node(c, &fr);
            sr = H::node(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = H::node(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::WrongProofLength { got: proof.len(), expected });
    }
    if fr.as_slice() != root1 {
        return Err(ProofError::OldRootMismatch { computed: HexHash(fr) });
    }
    if sr.as_slice() != root2 {
        return Err(ProofError::RootMismatch { computed: HexHash(sr) });
    }
    Ok(())
}
