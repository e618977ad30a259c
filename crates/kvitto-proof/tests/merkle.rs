//! Merkle tree properties: roots match the CT test tree; for random n ≤ 3000 every inclusion
//! proof verifies and any mutation fails; consistency proofs verify for random m ≤ n and fail
//! when mutated — for SHA-256 and BLAKE3.
#![allow(clippy::unwrap_used)]

use kvitto_proof::merkle::{consistency_proof, inclusion_proof, root, verify_consistency, verify_inclusion};
use kvitto_proof::{Blake3, Hash, MemoryTree, Sha256, TreeHash};
use proptest::prelude::*;

fn leaves<H: TreeHash>(n: u64) -> Vec<Hash> {
    (0..n).map(|i| H::leaf(&i.to_be_bytes())).collect()
}

fn v(proof: &[Hash]) -> Vec<Vec<u8>> {
    proof.iter().map(|h| h.to_vec()).collect()
}

#[test]
fn ct_test_tree_roots() {
    let data: [&[u8]; 8] = [
        b"",
        &[0x00],
        &[0x10],
        &[0x20, 0x21],
        &[0x30, 0x31],
        &[0x40, 0x41, 0x42, 0x43],
        &[0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
        &[0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f],
    ];
    let expected = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    let tree = MemoryTree::<Sha256>::new(data.iter().map(|d| Sha256::leaf(d)).collect());
    for (n, want) in expected.iter().enumerate() {
        let r = root::<Sha256>(&tree, n as u64 + 1).unwrap();
        assert_eq!(&kvitto_proof::merkle::HexHash(r).to_string(), want, "root of {} leaves", n + 1);
    }
    assert_eq!(root::<Sha256>(&tree, 0).unwrap(), Sha256::empty());
}

fn all_inclusions_verify<H: TreeHash>(n: u64) {
    let tree = MemoryTree::<H>::new(leaves::<H>(n));
    let r = root::<H>(&tree, n).unwrap();
    for i in 0..n {
        let p = inclusion_proof::<H>(&tree, i, n).unwrap();
        verify_inclusion::<H>(i, n, &H::leaf(&i.to_be_bytes()), &v(&p), &r)
            .unwrap_or_else(|e| panic!("n {n} i {i}: {e}"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn every_inclusion_proof_verifies(n in 1u64..=3000) {
        all_inclusions_verify::<Blake3>(n);
        if n < 600 {
            all_inclusions_verify::<Sha256>(n);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_mutation_of_an_inclusion_proof_fails(n in 1u64..=3000, i in any::<prop::sample::Index>(), what in 0u8..6, pick in any::<prop::sample::Index>(), flip in 1u8..=255) {
        // Extra leaves so a claimed larger size has a real root to be checked against.
        let tree = MemoryTree::<Blake3>::new(leaves::<Blake3>(n + 8));
        let i = i.index(n as usize) as u64;
        let r = root::<Blake3>(&tree, n).unwrap();
        let mut p = v(&inclusion_proof::<Blake3>(&tree, i, n).unwrap());
        let mut leaf = Blake3::leaf(&i.to_be_bytes()).to_vec();
        let (mut idx, mut size, mut root_b) = (i, n, r.to_vec());
        match what {
            0 if !p.is_empty() => { let k = pick.index(p.len()); p[k][pick.index(32)] ^= flip; }
            0 | 1 => leaf[pick.index(32)] ^= flip,
            2 => idx ^= 1 + pick.index(8) as u64,
            // A size is only meaningful with its own root (a checkpoint signs both): claim
            // the proof for a different size, against that size's real root.
            3 => {
                size = if pick.index(2) == 0 || n <= i + 1 { n + 1 + pick.index(5) as u64 } else { n - 1 };
                root_b = root::<Blake3>(&tree, size).unwrap().to_vec();
            }
            4 => root_b[pick.index(32)] ^= flip,
            _ => { if p.is_empty() { p.push(vec![0; 32]) } else { p.pop(); } }
        }
        prop_assert!(verify_inclusion::<Blake3>(idx, size, &leaf, &p, &root_b).is_err());
    }

    #[test]
    fn consistency_proofs_verify_and_mutations_fail(n in 1u64..=3000, m in any::<prop::sample::Index>(), pick in any::<prop::sample::Index>(), flip in 1u8..=255, what in 0u8..4) {
        let tree = MemoryTree::<Blake3>::new(leaves::<Blake3>(n));
        let m = 1 + m.index(n as usize) as u64;
        let (r1, r2) = (root::<Blake3>(&tree, m).unwrap(), root::<Blake3>(&tree, n).unwrap());
        let p = v(&consistency_proof::<Blake3>(&tree, m, n).unwrap());
        prop_assert!(verify_consistency::<Blake3>(m, n, &p, &r1, &r2).is_ok());
        let (mut p2, mut a, mut b, mut s1) = (p.clone(), r1.to_vec(), r2.to_vec(), m);
        match what {
            0 if !p2.is_empty() => { let k = pick.index(p2.len()); p2[k][pick.index(32)] ^= flip; }
            0 | 1 => a[pick.index(32)] ^= flip,
            2 => b[pick.index(32)] ^= flip,
            _ => s1 = if m > 1 { m - 1 } else { m + 1 },
        }
        prop_assert!(verify_consistency::<Blake3>(s1, n, &p2, &a, &b).is_err());
    }
}
