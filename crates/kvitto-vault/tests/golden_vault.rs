//! The vault's golden vector (docs/golden/vault.json, recomputed by docs/golden/reference.py):
//! the frame key derived from a known secret, the exact segment bytes a fresh vault writes for
//! two subjects, and the same segment once the first is erased (its frame zeroed in place).
#![allow(clippy::unwrap_used)]

use kvitto_core::{ExternalRef, Id, LedgerSecret, SubjectId};
use kvitto_vault::{OlderSegments, SubjectKeys, Vault, frame_key};

fn golden() -> serde_json::Value {
    let text = include_str!("../../../docs/golden/vault.json");
    serde_json::from_str(text).unwrap()
}

fn hex32(v: &serde_json::Value) -> [u8; 32] {
    hex::decode(v.as_str().unwrap()).unwrap().try_into().unwrap()
}

#[test]
fn a_fresh_vault_writes_the_golden_segment() {
    let g = golden();
    let secret = LedgerSecret(hex32(&g["secret_hex"]));
    assert_eq!(frame_key(&secret), hex32(&g["frame_key_hex"]));
    assert_eq!(g["frame_key_context"], kvitto_vault::FRAME_KEY_CONTEXT);

    let mut items = Vec::new();
    for f in g["frames"].as_array().unwrap() {
        let controller = f["controller"].as_str().unwrap();
        let reference = f["external_ref"].as_str().unwrap();
        let subject = secret.subject_id(&Id::new(controller).unwrap(), &ExternalRef::new(reference).unwrap());
        assert_eq!(subject, SubjectId(hex::decode(f["subject_id_hex"].as_str().unwrap()).unwrap().try_into().unwrap()));
        let slots = f["slots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["register"].as_str().unwrap().to_string(), hex32(&s["key_hex"])))
            .collect();
        items.push((subject, SubjectKeys { controller: controller.into(), external_ref: reference.into(), slots }));
    }
    let dir = tempfile::tempdir().unwrap();
    let vault = Vault::open(dir.path(), &secret, OlderSegments::Refuse).unwrap();
    vault.put_all(&items).unwrap();
    let written = std::fs::read(dir.path().join("seg-00000001.keys")).unwrap();
    assert_eq!(hex::encode(&written), g["segment_hex"].as_str().unwrap());
    assert_eq!(vault.check_files().unwrap(), None);
    drop(vault);
    let reopened = Vault::open(dir.path(), &secret, OlderSegments::Refuse).unwrap();
    for (subject, keys) in &items {
        assert_eq!(reopened.get(subject).as_ref(), Some(keys));
    }
    // Erasing the first subject zeroes its frame where it lies: same length, keys gone.
    assert!(reopened.erase(&items[0].0, None).unwrap());
    let erased = std::fs::read(dir.path().join("seg-00000001.keys")).unwrap();
    assert_eq!(hex::encode(&erased), g["segment_after_erasing_first_hex"].as_str().unwrap());
    assert_eq!(erased.len(), written.len());
    assert_eq!(reopened.check_files().unwrap(), None);
    drop(reopened);
    let again = Vault::open(dir.path(), &secret, OlderSegments::Refuse).unwrap();
    assert_eq!(again.get(&items[0].0), None);
    assert_eq!(again.get(&items[1].0).as_ref(), Some(&items[1].1));
    assert_eq!(again.check_files().unwrap(), None);
}
