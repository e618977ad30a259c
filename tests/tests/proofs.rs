//! Merkle proofs from the stored tree: roots equal an in-memory tree over the event hashes,
//! inclusion and consistency proofs verify for any sizes, survive reopen and index loss,
//! and a tampered stored node is caught by `verify`.
#![allow(clippy::unwrap_used)]

use kvitto::Ledger;
use kvitto_integration::*;
use kvitto_proof::merkle::root;
use kvitto_proof::{LogHash, MemoryTree, TreeHash};

async fn leaves(ledger: &Ledger) -> Vec<[u8; 32]> {
    ledger.log(0..u64::MAX).await.unwrap().iter().map(|e| LogHash::leaf(&e.hash.0)).collect()
}

async fn check_all(ledger: &Ledger) {
    let n = ledger.len();
    let mem = MemoryTree::<LogHash>::new(leaves(ledger).await);
    for size in [1, 2, 3, 7, 8, 9, 64, 100, n / 2, n - 1, n] {
        if size == 0 || size > n {
            continue;
        }
        assert_eq!(ledger.root(size).await.unwrap().0, root::<LogHash>(&mem, size).unwrap(), "root of {size}");
        for seq in [0, size / 3, size / 2, size - 1] {
            let p = ledger.inclusion_proof(seq, size).await.unwrap();
            p.verify().unwrap_or_else(|e| panic!("inclusion {seq}/{size}: {e}"));
            let mut bad = p.clone();
            bad.event_hash.0[0] ^= 1;
            assert!(bad.verify().is_err());
        }
        for from in [1, size / 2, size] {
            if from == 0 {
                continue;
            }
            let c = ledger.consistency_proof(from, n).await.unwrap();
            c.verify().unwrap_or_else(|e| panic!("consistency {from}→{n}: {e}"));
            if let Some(first) = c.proof.first() {
                let mut bad = c.clone();
                bad.proof[0].0[5] ^= 0x10;
                assert!(bad.verify().is_err(), "mutated consistency proof {from}→{n} with first {first:?}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_tree_proofs_match_an_in_memory_tree() {
    let (_d, path, ledger) = fresh_ledger().await;
    let s = kvitto::scenario::generate(60, 4);
    ledger.append_batch(s.declarations.clone()).await.unwrap();
    for c in &s.customers {
        for chunk in c.events.chunks(3) {
            ledger.append_batch(chunk.to_vec()).await.unwrap();
        }
    }
    check_all(&ledger).await;
    assert!(ledger.inclusion_proof(5, 3).await.is_err());
    assert!(ledger.consistency_proof(0, 3).await.is_err());
    assert!(ledger.root(ledger.len() + 1).await.is_err());
    ledger.close().await.expect("ledger closes cleanly");

    let ledger = reopen(&path).await;
    let before = ledger.root(ledger.len()).await.unwrap();
    // Appends after a reopen continue the tree from the stored frontier.
    ledger.append(consent("kalejdo", "KAL-999", "marketing")).await.unwrap();
    check_all(&ledger).await;
    assert_ne!(ledger.root(ledger.len()).await.unwrap(), before);
    ledger.close().await.expect("ledger closes cleanly");
    {
        let (store, _, _) = kvitto_store::Store::open(&path).unwrap();
        store.clear_index().unwrap();
        store.flush_all().unwrap();
    }
    let ledger = reopen(&path).await;
    check_all(&ledger).await;
    assert!(ledger.verify().await.unwrap().is_ok());
}

/// The stored Merkle nodes per level, 0 to 7.
fn stored_levels(path: &std::path::Path) -> Vec<usize> {
    let (store, _, _) = kvitto_store::Store::open(path).unwrap();
    (0..8).map(|level| store.merkle_level(level).inspect(|n| assert!(n.is_ok(), "{n:?}")).count()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_stores_no_merkle_level_below_the_floor_and_drops_one_stored_before() {
    let (_d, path, ledger) = fresh_ledger().await;
    for i in 0..100 {
        ledger.append(consent("kazoom", &format!("c{}", i % 7), "product-news")).await.unwrap();
    }
    let all = leaves(&ledger).await;
    ledger.close().await.expect("ledger closes cleanly");
    // 100 leaves: 6 complete subtrees of 16, 3 of 32, 1 of 64; nothing below level 4.
    assert_eq!(stored_levels(&path), [0, 0, 0, 0, 6, 3, 1, 0]);
    {
        // The layout from before the floor: every level, leaves included.
        let (store, _, _) = kvitto_store::Store::open(&path).unwrap();
        let mem = MemoryTree::<LogHash>::new(all.clone());
        let nodes = (0..4u8)
            .flat_map(|level| (0..100u64 >> level).map(move |i| (level, i)))
            .map(|(level, i)| (level, i, kvitto_proof::merkle::NodeSource::node(&mem, level.into(), i).unwrap()))
            .collect();
        let watermark = store.index_watermark().unwrap();
        assert_eq!(watermark, 100);
        store.apply_index(&kvitto_store::IndexBatch { nodes, watermark, ..Default::default() }).unwrap();
        store.flush_all().unwrap();
    }
    assert_eq!(stored_levels(&path), [100, 50, 25, 12, 6, 3, 1, 0]);
    let ledger = reopen(&path).await;
    check_all(&ledger).await;
    assert!(ledger.verify().await.unwrap().is_ok());
    ledger.close().await.expect("ledger closes cleanly");
    assert_eq!(stored_levels(&path), [0, 0, 0, 0, 6, 3, 1, 0], "the open rebuilt the index without them");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_merkle_node_fails_verify() {
    let (_d, path, ledger) = fresh_ledger().await;
    for i in 0..37 {
        ledger.append(consent("kazoom", &format!("c{}", i % 5), "product-news")).await.unwrap();
    }
    ledger.close().await.expect("ledger closes cleanly");
    {
        let (store, _, _) = kvitto_store::Store::open(&path).unwrap();
        // Level 4, index 1: the subtree of leaves 16..32 (the lowest stored level).
        assert!(store.merkle_node(4, 1).unwrap().is_some_and(|h| h != [7u8; 32]));
        kvitto_store::tamper::set_merkle_node(&store, 4, 1, &[7u8; 32]).unwrap();
        assert_eq!(store.merkle_node(4, 1).unwrap(), Some([7u8; 32]));
    }
    let ledger = reopen(&path).await;
    let r = ledger.verify().await.unwrap();
    let f = r.failure.expect("a changed merkle node must fail verify");
    assert!(f.reason.to_string().contains("merkle"), "{f}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_are_signed_notes_that_verify_checks() {
    let (_d, path, ledger) = fresh_ledger().await;
    assert!(ledger.checkpoint().await.is_err(), "an empty ledger has nothing to checkpoint");
    for i in 0..20 {
        ledger.append(consent("kazoom", &format!("c{}", i % 4), "product-news")).await.unwrap();
    }
    // 20 events and the subject map commitment the checkpoint covers.
    let note21 = ledger.checkpoint().await.unwrap();
    for i in 0..13 {
        ledger.append(consent("kazoom", &format!("c{}", i % 4), "newsletter")).await.unwrap();
    }
    let note35 = ledger.checkpoint().await.unwrap();
    let vkey = ledger.verifier_key().unwrap();
    let (name, key) = kvitto_proof::checkpoint::parse_vkey(&vkey).unwrap();
    assert_eq!(name, "test.kvitto/ledger");
    let c = kvitto_proof::checkpoint::open(&note35, &name, &key).unwrap();
    assert_eq!((c.size, c.root), (35, ledger.root(35).await.unwrap().0));
    assert_eq!(ledger.checkpoint_note(Some(21)).unwrap().unwrap().1, note21);
    assert_eq!(ledger.checkpoint_note(None).unwrap().unwrap(), (35, note35.clone()));
    assert!(ledger.verify().await.unwrap().is_ok());
    ledger.close().await.expect("ledger closes cleanly");

    // A note whose root was changed and re-signed by another key: the signature fails.
    let forged = {
        let other = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        kvitto_proof::checkpoint::sign(
            &kvitto_proof::checkpoint::TreeHead { origin: "test.kvitto/ledger", size: 21, root: [1; 32] },
            &other,
        )
        .unwrap()
    };
    {
        let (store, _, _) = kvitto_store::Store::open(&path).unwrap();
        kvitto_store::tamper::put_checkpoint_raw(&store, 21, &forged).unwrap();
    }
    let ledger = reopen(&path).await;
    let f = ledger.verify().await.unwrap().failure.expect("forged checkpoint");
    assert!(
        f.reason.to_string().contains("checkpoint of size 21") && f.reason.to_string().contains("no signature"),
        "{f}"
    );
    ledger.close().await.expect("ledger closes cleanly");

    // A genuine note put under the wrong size.
    {
        let (store, _, _) = kvitto_store::Store::open(&path).unwrap();
        kvitto_store::tamper::put_checkpoint_raw(&store, 21, &note35).unwrap();
    }
    let ledger = reopen(&path).await;
    let f = ledger.verify().await.unwrap().failure.expect("misfiled checkpoint");
    assert!(f.reason.to_string().contains("the note says size 35"), "{f}");
    assert!(
        matches!(
            f.reason,
            kvitto::FailureReason::Checkpoint { problem: kvitto::CheckpointProblem::Size { note: 35 }, .. }
        ),
        "{f:?}"
    );
    ledger.close().await.expect("ledger closes cleanly");

    // Validly signed with the ledger's own key but for other events (as when history under
    // a published checkpoint was rewritten): the signed root differs from the events' root.
    {
        let (store, _, _) = kvitto_store::Store::open(&path).unwrap();
        let own =
            ed25519_dalek::SigningKey::from_bytes(&kvitto_vault::keyfiles::signing_seed(store.dir()).unwrap().unwrap());
        let head = kvitto_proof::checkpoint::TreeHead { origin: "test.kvitto/ledger", size: 21, root: [2; 32] };
        kvitto_store::tamper::put_checkpoint_raw(&store, 21, &kvitto_proof::checkpoint::sign(&head, &own).unwrap())
            .unwrap();
    }
    let ledger = reopen(&path).await;
    let f = ledger.verify().await.unwrap().failure.expect("wrong signed root");
    assert!(f.reason.to_string().contains("differs from the root the events give"), "{f}");
    ledger.close().await.expect("ledger closes cleanly");

    // Restored, the ledger verifies again.
    {
        let (store, _, _) = kvitto_store::Store::open(&path).unwrap();
        kvitto_store::tamper::put_checkpoint_raw(&store, 21, &note21).unwrap();
    }
    assert!(reopen(&path).await.verify().await.unwrap().is_ok());
}

/// A ledger made before tree v2: BLAKE3 node pages (`N`) and checkpoints signed over BLAKE3
/// roots. The open rebuilds the nodes with SHA-256 (derived data); the old checkpoints stay
/// and verify under tree v1; a forged old one fails; new checkpoints are SHA-256.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_from_tree_v1_migrates() {
    use kvitto_proof::Blake3;
    let (_d, path, ledger) = fresh_ledger().await;
    for i in 0..37 {
        ledger.append(consent("kazoom", &format!("c{}", i % 5), "product-news")).await.unwrap();
    }
    let sha_root = ledger.root(37).await.unwrap().0;
    let blake_leaves: Vec<_> = ledger.log(0..u64::MAX).await.unwrap().iter().map(|e| Blake3::leaf(&e.hash.0)).collect();
    ledger.close().await.expect("ledger closes cleanly");
    let blake_root = root::<Blake3>(&MemoryTree::<Blake3>::new(blake_leaves), 37).unwrap();
    assert_ne!(blake_root, sha_root);
    let v1_note = {
        let (store, _, _) = kvitto_store::Store::open(&path).unwrap();
        let own =
            ed25519_dalek::SigningKey::from_bytes(&kvitto_vault::keyfiles::signing_seed(store.dir()).unwrap().unwrap());
        let head = kvitto_proof::checkpoint::TreeHead { origin: "test.kvitto/ledger", size: 37, root: blake_root };
        let note = kvitto_proof::checkpoint::sign(&head, &own).unwrap();
        kvitto_store::tamper::put_legacy_checkpoint_raw(&store, 37, &note).unwrap();
        assert!(kvitto_store::tamper::remove_index_prefix(&store, b"T").unwrap() > 0);
        kvitto_store::tamper::put_index_raw(&store, &[b'N', 0, 0, 0, 0, 0, 0, 0, 0, 0], &[7; 64]).unwrap();
        note
    };
    let ledger = reopen(&path).await;
    assert_eq!(ledger.root(37).await.unwrap().0, sha_root, "the SHA-256 nodes were rebuilt");
    let report = ledger.verify().await.unwrap();
    assert!(report.is_ok(), "{:?}", report.failure);
    // A v1 checkpoint someone kept is of this history, not a fork.
    let r = ledger.verify_against(Some(&v1_note), |_, _| {}).await.unwrap();
    assert!(r.is_ok(), "{:?}", r.failure);
    assert!(ledger.checkpoint_note(None).unwrap().is_none(), "old checkpoints are not served as v2 ones");
    let note = ledger.checkpoint().await.unwrap();
    let (name, key) = kvitto_proof::checkpoint::parse_vkey(&ledger.verifier_key().unwrap()).unwrap();
    let c = kvitto_proof::checkpoint::open(&note, &name, &key).unwrap();
    assert_eq!((c.size, c.root), (38, ledger.root(38).await.unwrap().0), "SHA-256, over the commitment too");
    ledger.close().await.expect("ledger closes cleanly");
    {
        let (store, _, _) = kvitto_store::Store::open(&path).unwrap();
        let own =
            ed25519_dalek::SigningKey::from_bytes(&kvitto_vault::keyfiles::signing_seed(store.dir()).unwrap().unwrap());
        let head = kvitto_proof::checkpoint::TreeHead { origin: "test.kvitto/ledger", size: 37, root: sha_root };
        let note = kvitto_proof::checkpoint::sign(&head, &own).unwrap();
        kvitto_store::tamper::put_legacy_checkpoint_raw(&store, 37, &note).unwrap();
    }
    let f = reopen(&path).await.verify().await.unwrap().failure.expect("a v1 checkpoint with a SHA-256 root");
    assert!(f.reason.to_string().contains("tree v1 (BLAKE3) checkpoint of size 37"), "{f}");
    assert!(
        matches!(f.reason, kvitto::FailureReason::Checkpoint { size: 37, tree: kvitto::TreeVersion::V1Blake3, .. }),
        "{f:?}"
    );
    // With v1 checkpoints present, the stored Merkle nodes are still checked.
    {
        let (store, _, _) = kvitto_store::Store::open(&path).unwrap();
        kvitto_store::tamper::put_legacy_checkpoint_raw(&store, 37, &v1_note).unwrap();
        kvitto_store::tamper::set_merkle_node(&store, 5, 0, &[9; 32]).unwrap();
    }
    let f = reopen(&path).await.verify().await.unwrap().failure.expect("a tampered node");
    assert!(f.reason.to_string().contains("merkle node 5/0"), "{f}");
}
