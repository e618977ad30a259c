//! Re-derives and checks the global chain and every subject chain, event by event.

use std::collections::HashMap;

use kvitto_core::{Event, EventHash, EventId, SubjectId, SubjectMap, Timestamp, decode_event, event_hash};

/// The first thing wrong with a ledger, at a precise seq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainFault {
    /// The stored bytes are not a valid canonical event.
    Undecodable {
        /// Position in the log where the bad bytes were found.
        seq: u64,
        /// Decoder message.
        reason: String,
    },
    /// An event is missing, duplicated or out of order.
    SeqMismatch {
        /// The seq the chain needs next.
        expected: u64,
        /// The seq the record carries.
        found: u64,
    },
    /// `prev_hash` does not equal the hash of the previous event.
    PrevHashMismatch {
        /// The event.
        seq: u64,
        /// Re-derived hash of seq - 1.
        expected: EventHash,
        /// What the event says.
        found: EventHash,
    },
    /// The ledger clock went backwards.
    RecordedAtDecreased {
        /// The event.
        seq: u64,
        /// Previous recorded_at.
        previous: Timestamp,
        /// This event's recorded_at.
        found: Timestamp,
    },
    /// The subject chain skips, repeats or forks.
    SubjectSeqMismatch {
        /// The event.
        seq: u64,
        /// Pseudonym.
        subject: SubjectId,
        /// Next subject_seq of that subject.
        expected: u64,
        /// What the event says.
        found: u64,
    },
    /// `subject_prev` does not equal the hash of the subject's previous event.
    SubjectPrevMismatch {
        /// The event.
        seq: u64,
        /// Pseudonym.
        subject: SubjectId,
    },
    /// The stored back-link (not hashed; used to walk history) points elsewhere.
    BackLinkMismatch {
        /// The event.
        seq: u64,
        /// Seq of the subject's previous event.
        expected: Option<u64>,
        /// What the record says.
        found: Option<u64>,
    },
    /// Two events share an event_id.
    DuplicateEventId {
        /// The later event.
        seq: u64,
        /// The earlier event.
        first: u64,
        /// The id.
        event_id: EventId,
    },
}

/// What is wrong, without the seq (which [`ChainFault::seq`] gives).
#[derive(Debug)]
pub struct FaultReason<'a>(&'a ChainFault);

impl std::fmt::Display for FaultReason<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            ChainFault::Undecodable { reason, .. } => write!(f, "canonical bytes do not decode: {reason}"),
            ChainFault::SeqMismatch { expected, found, .. } => write!(
                f,
                "expected the event with seq {expected}, found seq {found} (missing, duplicated or reordered)"
            ),
            ChainFault::PrevHashMismatch { expected, found, .. } => {
                write!(f, "prev_hash {found} does not match the previous event's hash {expected}")
            }
            ChainFault::RecordedAtDecreased { found, previous, .. } => {
                write!(f, "recorded_at {found} is before the previous event's {previous}")
            }
            ChainFault::SubjectSeqMismatch { expected, found, subject, .. } => {
                write!(f, "subject {subject} has subject_seq {found}, expected {expected}")
            }
            ChainFault::SubjectPrevMismatch { subject, .. } => {
                write!(f, "subject_prev does not match the hash of subject {subject}'s previous event")
            }
            ChainFault::BackLinkMismatch { expected, found, .. } => {
                write!(f, "stored subject back-link is {found:?}, the subject's previous event is {expected:?}")
            }
            ChainFault::DuplicateEventId { event_id, first, .. } => {
                write!(f, "event_id {event_id} was already used by seq {first}")
            }
        }
    }
}

impl std::fmt::Display for ChainFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "seq {}: {}", self.seq(), self.reason())
    }
}

impl std::error::Error for ChainFault {}

impl ChainFault {
    /// What is wrong, without the seq.
    pub fn reason(&self) -> FaultReason<'_> {
        FaultReason(self)
    }

    /// The seq the fault is reported at.
    pub fn seq(&self) -> u64 {
        match self {
            ChainFault::SeqMismatch { expected, .. } => *expected,
            ChainFault::Undecodable { seq, .. }
            | ChainFault::PrevHashMismatch { seq, .. }
            | ChainFault::RecordedAtDecreased { seq, .. }
            | ChainFault::SubjectSeqMismatch { seq, .. }
            | ChainFault::SubjectPrevMismatch { seq, .. }
            | ChainFault::BackLinkMismatch { seq, .. }
            | ChainFault::DuplicateEventId { seq, .. } => *seq,
        }
    }
}

/// Where a subject's chain ends so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubjectTip {
    /// Global seq of the subject's last event.
    pub last_seq: u64,
    /// Number of the subject's events (its next subject_seq).
    pub count: u64,
    /// Hash of its last event.
    pub last_hash: EventHash,
}

/// Consumes events in seq order and checks both chains. Feed it with [`ChainVerifier::push`].
#[derive(Debug, Default)]
pub struct ChainVerifier {
    next_seq: u64,
    prev_hash: EventHash,
    last_recorded: Timestamp,
    subjects: SubjectMap<SubjectTip>,
    event_ids: HashMap<EventId, u64>,
    check_ids: bool,
}

impl ChainVerifier {
    /// A verifier for a chain that starts at seq 0. With `check_event_ids`, it also remembers
    /// every event_id (16 bytes + seq per event) to reject duplicates.
    pub fn new(check_event_ids: bool) -> Self {
        Self { check_ids: check_event_ids, ..Self::default() }
    }

    /// [`ChainVerifier::new`] with room for `events` and `subjects` up front (a caller that
    /// knows the ledger's size spares the maps their growth; the hints are capped at 2^20,
    /// so a wrong one costs no more than that).
    pub fn with_capacity(check_event_ids: bool, events: u64, subjects: u64) -> Self {
        const CAP: u64 = 1 << 20;
        let ids = if check_event_ids { events.min(CAP) as usize } else { 0 };
        let mut v = Self::new(check_event_ids);
        v.event_ids.reserve(ids);
        v.subjects.reserve(subjects.min(CAP) as usize);
        v
    }

    /// Checks the next event from its canonical bytes and its stored subject back-link.
    /// Returns the decoded event and its re-derived hash.
    pub fn push(&mut self, canonical: &[u8], back_link: Option<u64>) -> Result<(Event, EventHash), ChainFault> {
        let decoded = decode_event(canonical).map_err(|e| e.to_string());
        self.push_decoded(decoded, event_hash(canonical), back_link)
    }

    /// [`ChainVerifier::push`] with the decoding and hashing done by the caller (e.g. on
    /// another thread): `decoded` and `hash` must come from the same canonical bytes.
    pub fn push_decoded(
        &mut self,
        decoded: Result<Event, String>,
        hash: EventHash,
        back_link: Option<u64>,
    ) -> Result<(Event, EventHash), ChainFault> {
        let event = decoded.map_err(|reason| ChainFault::Undecodable { seq: self.next_seq, reason })?;
        let seq = event.seq;
        if seq != self.next_seq {
            return Err(ChainFault::SeqMismatch { expected: self.next_seq, found: seq });
        }
        if event.prev_hash != self.prev_hash {
            return Err(ChainFault::PrevHashMismatch { seq, expected: self.prev_hash, found: event.prev_hash });
        }
        if event.recorded_at < self.last_recorded {
            return Err(ChainFault::RecordedAtDecreased {
                seq,
                previous: self.last_recorded,
                found: event.recorded_at,
            });
        }
        if self.check_ids
            && let Some(first) = self.event_ids.insert(event.event_id, seq)
        {
            return Err(ChainFault::DuplicateEventId { seq, first, event_id: event.event_id });
        }
        if let Some(link) = &event.subject {
            let tip = self.subjects.get(&link.subject);
            let expected_seq = tip.map_or(0, |t| t.count);
            if link.subject_seq != expected_seq {
                return Err(ChainFault::SubjectSeqMismatch {
                    seq,
                    subject: link.subject,
                    expected: expected_seq,
                    found: link.subject_seq,
                });
            }
            if link.subject_prev != tip.map(|t| t.last_hash) {
                return Err(ChainFault::SubjectPrevMismatch { seq, subject: link.subject });
            }
            let expected_back = tip.map(|t| t.last_seq);
            if back_link != expected_back {
                return Err(ChainFault::BackLinkMismatch { seq, expected: expected_back, found: back_link });
            }
            self.subjects.insert(link.subject, SubjectTip { last_seq: seq, count: expected_seq + 1, last_hash: hash });
        } else if back_link.is_some() {
            return Err(ChainFault::BackLinkMismatch { seq, expected: None, found: back_link });
        }
        self.next_seq += 1;
        self.prev_hash = hash;
        self.last_recorded = event.recorded_at;
        Ok((event, hash))
    }

    /// Events checked so far.
    pub fn count(&self) -> u64 {
        self.next_seq
    }

    /// Hash of the last event checked (zeros before the first).
    pub fn head(&self) -> EventHash {
        self.prev_hash
    }

    /// Where each subject's chain ends so far.
    pub fn subjects(&self) -> &SubjectMap<SubjectTip> {
        &self.subjects
    }

    /// Seq of an event_id seen so far (only with `check_event_ids`).
    pub fn event_id_seq(&self, id: &EventId) -> Option<u64> {
        self.event_ids.get(id).copied()
    }
}
