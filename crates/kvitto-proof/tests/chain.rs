//! Property tests: a well-formed chain verifies; any single-byte change to any stored
//! preimage, any reordering, and any wrong back-link is detected.
#![allow(clippy::unwrap_used)]

use kvitto_core::*;
use kvitto_proof::ChainVerifier;
use proptest::prelude::*;

/// Builds a valid chain over `subjects` interleaved as `pattern` says (None = declaration).
fn chain(pattern: &[Option<u8>]) -> Vec<(Vec<u8>, Option<u64>)> {
    let mut prev = EventHash::default();
    let mut tips: std::collections::HashMap<u8, (u64, u64, EventHash)> = Default::default();
    let mut out = Vec::new();
    for (seq, who) in pattern.iter().enumerate() {
        let seq = seq as u64;
        let (subject, kind, back) = match who {
            None => (None, EventKind::ObjectionRecorded { purpose: Id::new("x").unwrap() }, None),
            Some(s) => {
                let tip = tips.get(s).copied();
                let link = SubjectLink {
                    subject: SubjectId([*s; 16]),
                    subject_seq: tip.map_or(0, |t| t.1),
                    subject_prev: tip.map(|t| t.2),
                };
                (
                    Some(link),
                    EventKind::ConsentGiven {
                        purpose: Id::new("marketing").unwrap(),
                        notice_version: None,
                        channel: None,
                    },
                    tip.map(|t| t.0),
                )
            }
        };
        let kind = if subject.is_none() {
            EventKind::NoticePublished { version: Id::new("v1").unwrap(), text_hash: TextHash([seq as u8; 32]) }
        } else {
            kind
        };
        let e = Event {
            seq,
            prev_hash: prev,
            recorded_at: Timestamp::from_micros(1_000 + seq as i64).unwrap(),
            occurred_at: Timestamp::from_micros(7).unwrap(),
            event_id: EventId(uuid::Uuid::from_u128(seq as u128 + 1)),
            controller: Id::new("kalejdo").unwrap(),
            actor: Id::new("cli").unwrap(),
            subject,
            kind,
            payload_commitment: None,
        };
        let bytes = encode_event(&e);
        let h = event_hash(&bytes);
        if let (Some(s), Some(link)) = (who, subject) {
            tips.insert(*s, (seq, link.subject_seq + 1, h));
        }
        prev = h;
        out.push((bytes, back));
    }
    out
}

/// Runs the verifier; `expected_head` is what a stored head (or checkpoint) says.
fn verifies(records: &[(Vec<u8>, Option<u64>)], expected_head: EventHash) -> bool {
    let mut v = ChainVerifier::new(true);
    records.iter().all(|(b, back)| v.push(b, *back).is_ok()) && v.head() == expected_head
}

fn pattern() -> impl Strategy<Value = Vec<Option<u8>>> {
    proptest::collection::vec(proptest::option::weighted(0.85, 0u8..5), 2..40)
}

proptest! {
    #[test]
    fn well_formed_chains_verify(p in pattern()) {
        let c = chain(&p);
        let head = event_hash(&c.last().unwrap().0);
        prop_assert!(verifies(&c, head));
    }

    #[test]
    fn any_byte_change_is_detected(p in pattern(), which in any::<prop::sample::Index>(), pos in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let mut c = chain(&p);
        let head = event_hash(&c.last().unwrap().0);
        let i = which.index(c.len());
        let j = pos.index(c[i].0.len());
        c[i].0[j] ^= flip;
        prop_assert!(!verifies(&c, head));
    }

    #[test]
    fn reordering_or_dropping_is_detected(p in pattern(), a in any::<prop::sample::Index>(), b in any::<prop::sample::Index>()) {
        let c = chain(&p);
        let head = event_hash(&c.last().unwrap().0);
        let (i, j) = (a.index(c.len()), b.index(c.len()));
        let mut swapped = c.clone();
        swapped.swap(i, j);
        prop_assert_eq!(verifies(&swapped, head), i == j);
        let mut dropped = c.clone();
        dropped.remove(i);
        prop_assert!(!verifies(&dropped, head));
    }

    #[test]
    fn room_made_up_front_changes_no_outcome(p in pattern(), which in any::<prop::sample::Index>(), flip in 1u8..=255, events in any::<u64>(), subjects in any::<u64>()) {
        // Size hints (a ledger's head and index, outside data) may be anything; the verdicts,
        // event by event, are those of a verifier without them.
        let mut c = chain(&p);
        let i = which.index(c.len());
        let last = c[i].0.len() - 1;
        c[i].0[last] ^= flip;
        let mut plain = ChainVerifier::new(true);
        let mut sized = ChainVerifier::with_capacity(true, events, subjects);
        for (b, back) in &c {
            prop_assert_eq!(plain.push(b, *back).map(|(_, h)| h), sized.push(b, *back).map(|(_, h)| h));
        }
        prop_assert_eq!(plain.head(), sized.head());
        prop_assert_eq!(plain.count(), sized.count());
    }

    #[test]
    fn wrong_back_link_is_detected(p in pattern(), which in any::<prop::sample::Index>(), to in any::<u64>()) {
        let mut c = chain(&p);
        let head = event_hash(&c.last().unwrap().0);
        let i = which.index(c.len());
        let new = if c[i].1 == Some(to) { None } else { Some(to) };
        c[i].1 = new;
        prop_assert!(!verifies(&c, head));
    }
}
