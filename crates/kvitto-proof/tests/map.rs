//! Subject map properties: for random sets of subjects, every member's proof gives its entry,
//! every non-member's proof proves absence, and a shortened history (a smaller count or an
//! earlier head) never verifies. Plus the golden map vectors (`docs/golden/map.json`), which
//! `docs/golden/reference.py` recomputes; regenerate (a format bump only!) with
//! `KVITTO_WRITE_GOLDEN=1`.
#![allow(clippy::unwrap_used)]

use kvitto_proof::map::{Key, MapEntry, MapProof, SubjectMap, Terminal, verify};
use proptest::prelude::*;
use serde_json::{Value, json};

fn key(b: &[u8]) -> Key {
    let mut k = [0u8; 16];
    k.copy_from_slice(&blake3::hash(b).as_bytes()[..16]);
    k
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn membership_absence_and_truncation(ids in proptest::collection::btree_set(0u32..5000, 0..300), probe in 0u32..6000, updates in 0usize..50) {
        let mut m = SubjectMap::new();
        let mut truth = std::collections::BTreeMap::new();
        for (i, id) in ids.iter().enumerate() {
            let e = MapEntry { count: (i % 9) as u64 + 1, head: *blake3::hash(&id.to_be_bytes()).as_bytes() };
            m.insert(key(&id.to_be_bytes()), e);
            truth.insert(*id, e);
        }
        // Later events of some subjects: counts grow, heads change.
        for (i, id) in ids.iter().take(updates).enumerate() {
            let e = MapEntry { count: truth[id].count + 1, head: [i as u8; 32] };
            m.insert(key(&id.to_be_bytes()), e);
            truth.insert(*id, e);
        }
        let root = m.root();
        prop_assert_eq!(m.len(), truth.len() as u64);
        let k = key(&probe.to_be_bytes());
        let p = m.prove(&k);
        prop_assert!(p.siblings.len() <= 40, "depth {} for {} keys", p.siblings.len(), truth.len());
        prop_assert_eq!(verify(&root, &k, &p).unwrap(), truth.get(&probe).copied());
        if let Some(e) = truth.get(&probe) {
            // Tail truncation: an entry one event shorter, or with another head, fails.
            let short = MapProof { terminal: Terminal::Leaf(k, MapEntry { count: e.count - 1, head: e.head }), ..p.clone() };
            prop_assert!(verify(&root, &k, &short).is_err());
            let other = MapProof { terminal: Terminal::Leaf(k, MapEntry { count: e.count, head: [0xee; 32] }), ..p.clone() };
            prop_assert!(verify(&root, &k, &other).is_err());
            prop_assert!(verify(&root, &k, &MapProof { terminal: Terminal::Empty, ..p }).is_err(), "a member cannot be shown absent");
        }
    }
}

#[test]
fn map_vectors() {
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/golden/map.json");
    let mut m = SubjectMap::new();
    let mut entries = Vec::new();
    for i in 0u8..6 {
        let k = key(&[i]);
        let e = MapEntry { count: u64::from(i) + 1, head: *blake3::hash(&[i, i]).as_bytes() };
        m.insert(k, e);
        entries.push(json!({"key": hex::encode(k), "count": e.count, "head": hex::encode(e.head)}));
    }
    let root = m.root();
    let mut proofs = Vec::new();
    for probe in [key(&[0]), key(&[3]), key(&[5]), key(b"absent-1"), key(b"absent-2"), [0u8; 16], [0xff; 16]] {
        let p = m.prove(&probe);
        let terminal = match p.terminal {
            Terminal::Empty => json!("empty"),
            Terminal::Leaf(k, e) => json!({"key": hex::encode(k), "count": e.count, "head": hex::encode(e.head)}),
        };
        let siblings: Vec<String> = p.siblings.iter().map(hex::encode).collect();
        proofs.push(json!({"key": hex::encode(probe), "siblings": siblings, "terminal": terminal, "present": verify(&root, &probe, &p).unwrap().is_some()}));
    }
    let built = json!({
        "map": "FORMAT.md §7: leaf = SHA-256(0x02 || key || u64be count || head), node = SHA-256(0x03 || left || right), empty = 32 zero bytes",
        "entries": entries,
        "root": hex::encode(root),
        "empty_root": hex::encode(SubjectMap::new().root()),
        "proofs": proofs,
    });
    if std::env::var_os("KVITTO_WRITE_GOLDEN").is_some() {
        std::fs::write(&golden, serde_json::to_string_pretty(&built).unwrap() + "\n").unwrap();
    }
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&golden).unwrap()).unwrap();
    assert_eq!(file, built, "docs/golden/map.json differs from the map the code builds");
}
