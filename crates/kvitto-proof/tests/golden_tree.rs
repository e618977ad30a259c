//! Golden vectors of the ledger's Merkle tree (docs/FORMAT.md §6, tree v2: RFC 6962 with
//! SHA-256 over the 32-byte event hashes of `docs/golden/events.json`): the root of every
//! prefix, every inclusion proof and every consistency proof of the small trees.
//! `docs/golden/reference.py` recomputes them independently. Regenerate (a deliberate format
//! version bump only!) with `KVITTO_WRITE_GOLDEN=1`.
#![allow(clippy::unwrap_used)]

use kvitto_proof::merkle::{consistency_proof, inclusion_proof, root, verify_consistency, verify_inclusion};
use kvitto_proof::{Hash, LogHash, MemoryTree, TreeHash};
use serde_json::{Value, json};

fn golden(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/golden").join(name)
}

fn hexes(hs: &[Hash]) -> Vec<String> {
    hs.iter().map(hex::encode).collect()
}

fn build(event_hashes: &[Hash]) -> Value {
    let n = event_hashes.len() as u64;
    let tree = MemoryTree::<LogHash>::new(event_hashes.iter().map(|h| LogHash::leaf(h)).collect());
    let roots: Vec<Value> =
        (0..=n).map(|s| json!({"size": s, "root": hex::encode(root::<LogHash>(&tree, s).unwrap())})).collect();
    let sizes: Vec<u64> = (1..=8).chain([n]).collect();
    let mut inclusion = Vec::new();
    for &size in &sizes {
        for index in 0..size {
            let p = inclusion_proof::<LogHash>(&tree, index, size).unwrap();
            inclusion.push(json!({"index": index, "size": size, "proof": hexes(&p)}));
        }
    }
    let mut consistency = Vec::new();
    for &size2 in &sizes {
        for size1 in 1..=size2 {
            let p = consistency_proof::<LogHash>(&tree, size1, size2).unwrap();
            consistency.push(json!({"size1": size1, "size2": size2, "proof": hexes(&p)}));
        }
    }
    json!({
        "tree": "RFC 6962, SHA-256; leaf = SHA-256(0x00 || event_hash), node = SHA-256(0x01 || left || right)",
        "leaves": "hash_hex of docs/golden/events.json, in order",
        "roots": roots,
        "inclusion": inclusion,
        "consistency": consistency,
    })
}

fn h(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

#[test]
fn tree_vectors() {
    let events: Value = serde_json::from_str(&std::fs::read_to_string(golden("events.json")).unwrap()).unwrap();
    let hashes: Vec<Hash> =
        events["vectors"].as_array().unwrap().iter().map(|v| h(&v["hash_hex"]).try_into().unwrap()).collect();
    let built = build(&hashes);
    if std::env::var_os("KVITTO_WRITE_GOLDEN").is_some() {
        std::fs::write(golden("tree.json"), serde_json::to_string_pretty(&built).unwrap() + "\n").unwrap();
    }
    let file: Value = serde_json::from_str(&std::fs::read_to_string(golden("tree.json")).unwrap()).unwrap();
    assert_eq!(file, built, "docs/golden/tree.json differs from the tree the code builds");
    // Every stored proof verifies against the stored root, and fails for a neighbour leaf.
    let roots: Vec<Vec<u8>> = file["roots"].as_array().unwrap().iter().map(|r| h(&r["root"])).collect();
    assert_eq!(roots[0], LogHash::empty().to_vec(), "the empty tree's root is SHA-256(\"\")");
    assert_eq!(hex::encode(&roots[0]), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    for p in file["inclusion"].as_array().unwrap() {
        let (index, size) = (p["index"].as_u64().unwrap(), p["size"].as_u64().unwrap());
        let proof: Vec<Vec<u8>> = p["proof"].as_array().unwrap().iter().map(h).collect();
        let leaf = LogHash::leaf(&hashes[index as usize]);
        verify_inclusion::<LogHash>(index, size, &leaf, &proof, &roots[size as usize]).unwrap();
        let other = LogHash::leaf(&hashes[(index as usize + 1) % hashes.len()]);
        assert!(verify_inclusion::<LogHash>(index, size, &other, &proof, &roots[size as usize]).is_err());
    }
    for p in file["consistency"].as_array().unwrap() {
        let (s1, s2) = (p["size1"].as_u64().unwrap(), p["size2"].as_u64().unwrap());
        let proof: Vec<Vec<u8>> = p["proof"].as_array().unwrap().iter().map(h).collect();
        verify_consistency::<LogHash>(s1, s2, &proof, &roots[s1 as usize], &roots[s2 as usize]).unwrap();
        if s1 < s2 {
            assert!(
                verify_consistency::<LogHash>(s1, s2, &proof, &roots[s1 as usize - 1], &roots[s2 as usize]).is_err()
            );
        }
    }
}
