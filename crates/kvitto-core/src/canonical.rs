//! The canonical preimage of an event and its hash — docs/FORMAT.md §2, byte by byte.
//!
//! **Architecture invariant:** this module alone defines the hashed bytes. Changing what it
//! writes changes every golden vector and is a format version bump.

use crate::event::{Event, EventKind, Scope, SubjectLink};
use crate::field::{DecodeError, FieldCodec, Reader, put_str};
use crate::ids::{Commitment, EventHash, EventId, Id};
use crate::time::Timestamp;

/// The preimage format version (first byte of every preimage).
pub const PREIMAGE_VERSION: u8 = 1;

/// BLAKE3 `derive_key` context for event hashes.
pub const EVENT_HASH_CONTEXT: &str = "kvitto 2026-11-23 event hash v1";

/// Encodes the canonical preimage of `event`.
pub fn encode_event(event: &Event) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.push(PREIMAGE_VERSION);
    out.extend_from_slice(&event.seq.to_be_bytes());
    out.extend_from_slice(&event.prev_hash.0);
    event.recorded_at.encode(&mut out);
    event.occurred_at.encode(&mut out);
    out.extend_from_slice(event.event_id.as_bytes());
    put_str(&mut out, event.controller.as_str());
    put_str(&mut out, event.actor.as_str());
    match &event.subject {
        None => out.push(0),
        Some(link) => {
            out.push(1);
            out.extend_from_slice(&link.subject.0);
            out.extend_from_slice(&link.subject_seq.to_be_bytes());
            match &link.subject_prev {
                None => out.push(0),
                Some(h) => {
                    out.push(1);
                    out.extend_from_slice(&h.0);
                }
            }
        }
    }
    out.extend_from_slice(&event.kind.code().to_be_bytes());
    event.kind.encode_fields(&mut out);
    match &event.payload_commitment {
        None => out.push(0),
        Some(c) => {
            out.push(1);
            out.extend_from_slice(&c.0);
        }
    }
    out
}

/// The event hash of a canonical preimage: BLAKE3 in `derive_key` mode with
/// [`EVENT_HASH_CONTEXT`].
pub fn event_hash(preimage: &[u8]) -> EventHash {
    let mut h = blake3::Hasher::new_derive_key(EVENT_HASH_CONTEXT);
    h.update(preimage);
    EventHash(*h.finalize().as_bytes())
}

/// Decodes a canonical preimage strictly: unknown version, kind or enum code, invalid field,
/// subject present on a controller kind (or absent on a subject kind), `subject_prev` present
/// iff `subject_seq > 0` violated, or trailing bytes → error.
pub fn decode_event(bytes: &[u8]) -> Result<Event, DecodeError> {
    let mut r = Reader::new(bytes);
    let version = r.u8()?;
    if version != PREIMAGE_VERSION {
        return Err(DecodeError {
            offset: 0,
            what: format!("preimage version {version}; this build reads {PREIMAGE_VERSION}"),
        });
    }
    let seq = r.u64()?;
    let prev_hash = EventHash(r.array()?);
    let recorded_at = Timestamp::decode(&mut r)?;
    let occurred_at = Timestamp::decode(&mut r)?;
    let event_id = EventId(uuid::Uuid::from_bytes(r.array()?));
    let controller = Id::decode(&mut r)?;
    let actor = Id::decode(&mut r)?;
    let subject_at = r.position();
    let subject = if r.presence()? {
        let subject = crate::ids::SubjectId(r.array()?);
        let subject_seq = r.u64()?;
        let prev_at = r.position();
        let subject_prev = if r.presence()? { Some(EventHash(r.array()?)) } else { None };
        if subject_prev.is_some() != (subject_seq > 0) {
            return Err(DecodeError {
                offset: prev_at,
                what: "subject_prev must be present exactly when subject_seq > 0".into(),
            });
        }
        Some(SubjectLink { subject, subject_seq, subject_prev })
    } else {
        None
    };
    let kind_code = r.u16()?;
    let kind = EventKind::decode_fields(kind_code, &mut r)?;
    if subject.is_some() != (kind.scope() == Scope::Subject) {
        return Err(DecodeError {
            offset: subject_at,
            what: format!("{} {} a subject", kind.name(), if subject.is_some() { "must not have" } else { "requires" }),
        });
    }
    let payload_commitment = if r.presence()? { Some(Commitment(r.array()?)) } else { None };
    r.finish()?;
    Ok(Event {
        seq,
        prev_hash,
        recorded_at,
        occurred_at,
        event_id,
        controller,
        actor,
        subject,
        kind,
        payload_commitment,
    })
}

#[cfg(test)]
mod stored_rules_tests {
    use super::*;
    use crate::ids::{ExternalRef, Text};
    use crate::json::{event_from_json, event_to_json};

    /// Events written before the input rules hold text the rules now refuse (a bidi override,
    /// a trailing space, NFD, a bell): they still decode, from bytes and from sealed JSON, and
    /// hash as before; only new input is refused.
    #[test]
    fn stored_text_that_breaks_the_input_rules_still_decodes_and_hashes_the_same() {
        for reason in ["kund\u{202e}fel", "Art 17 ", "A\u{30a}sa", "ring\u{7}", "\u{feff}x\u{200b}"] {
            assert!(Text::new(reason).is_err(), "{reason:?} breaks an input rule");
            let e = Event {
                seq: 3,
                prev_hash: EventHash([7; 32]),
                recorded_at: Timestamp::from_micros(1_000).unwrap(),
                occurred_at: Timestamp::from_micros(900).unwrap(),
                event_id: EventId(uuid::Uuid::from_u128(0x0194_312a_8b00_7000_8000_0000_0000_abcd)),
                controller: Id::new("kalejdo").unwrap(),
                actor: Id::new("cli").unwrap(),
                subject: Some(SubjectLink {
                    subject: crate::ids::SubjectId([1; 16]),
                    subject_seq: 0,
                    subject_prev: None,
                }),
                kind: EventKind::ProcessingRestricted { reason: Text::stored(reason).unwrap() },
                payload_commitment: None,
            };
            let bytes = encode_event(&e);
            // The reason's bytes are in the preimage exactly as given (no normalisation).
            assert!(bytes.windows(reason.len()).any(|w| w == reason.as_bytes()));
            let back = decode_event(&bytes).unwrap_or_else(|err| panic!("{reason:?}: {err}"));
            assert_eq!(back, e);
            assert_eq!(event_hash(&encode_event(&back)), event_hash(&bytes));
            assert_eq!(event_from_json(&event_to_json(&e)).unwrap(), e);
        }
        // A reference stored before the rules is only looked up, never refused.
        assert!(ExternalRef::stored("\u{c5}sa-1 ").is_ok());
    }
}
