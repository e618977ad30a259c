//! What `verify` found wrong, as data: a [`VerifyFailure`] is the seq at fault (when one
//! applies) and a [`FailureReason`] a caller can match on — an HTTP layer or an auditor's
//! tooling maps the variant, a person reads its `Display`. docs/VERIFY.md lists every check
//! and the reason each one reports.

use std::fmt;

use kvitto_core::{EventHash, EventId, SubjectId};
use kvitto_proof::ChainFault;

/// The first thing wrong, with the seq where it was found (when one applies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyFailure {
    /// The event at fault, if the fault is tied to one.
    pub seq: Option<u64>,
    /// What is wrong.
    pub reason: FailureReason,
}

impl VerifyFailure {
    pub(crate) fn at(seq: u64, reason: FailureReason) -> Self {
        Self { seq: Some(seq), reason }
    }

    pub(crate) fn ledger(reason: FailureReason) -> Self {
        Self { seq: None, reason }
    }

    /// Which check failed (a stable short name, e.g. `chain`, `checkpoint`, `index`).
    pub fn check(&self) -> &'static str {
        self.reason.check()
    }
}

impl fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.seq {
            Some(seq) => write!(f, "seq {seq}: {}", self.reason),
            None => write!(f, "{}", self.reason),
        }
    }
}

/// Whose projection state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateOwner {
    /// A data subject (pseudonym).
    Subject(SubjectId),
    /// A controller.
    Controller(kvitto_core::Id),
}

impl fmt::Display for StateOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Subject(s) => write!(f, "subject {s}"),
            Self::Controller(c) => write!(f, "controller {c}"),
        }
    }
}

/// Which tree a checkpoint was signed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeVersion {
    /// RFC 6962 SHA-256 (tree v2, docs/FORMAT.md §6).
    V2,
    /// BLAKE3 (tree v1, before the migration).
    V1Blake3,
}

/// What is wrong with a stored checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointProblem {
    /// The ledger has no checkpoint key.
    NoKey,
    /// The note does not open (signature, syntax) under the ledger's key and origin.
    Note(String),
    /// The note names another size than the one it is stored under.
    Size {
        /// What the note says.
        note: u64,
    },
    /// The signed root is not the root the events give.
    Root {
        /// Signed.
        signed: EventHash,
        /// Re-derived.
        derived: EventHash,
    },
    /// Another origin.
    Origin {
        /// The note's origin.
        found: String,
        /// The ledger's.
        expected: String,
    },
    /// No consistency proof from the previous checkpoint verifies.
    Inconsistent {
        /// The previous checkpoint's size.
        previous: u64,
        /// Why.
        error: String,
    },
}

impl fmt::Display for CheckpointProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoKey => f.write_str("the ledger has no checkpoint key to check it with"),
            Self::Note(e) => f.write_str(e),
            Self::Size { note } => write!(f, "the note says size {note}"),
            Self::Root { signed, derived } => {
                write!(f, "signed root {signed} differs from the root the events give, {derived}")
            }
            Self::Origin { found, expected } => write!(f, "origin {found:?} is not this ledger's {expected:?}"),
            Self::Inconsistent { previous, error } => {
                write!(f, "not consistent with the checkpoint of size {previous}: {error}")
            }
        }
    }
}

/// What is wrong with a stored Merkle node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeProblem {
    /// Its hash is not the one the events give.
    Mismatch,
    /// The stored level jumps to another index.
    Skips(u64),
    /// Not stored.
    Missing,
    /// Could not be read.
    Unreadable(String),
}

/// What is wrong with the derived index (subject heads, event ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexProblem {
    /// A subject's stored head is not where its chain ends.
    Head {
        /// Pseudonym.
        subject: SubjectId,
        /// Stored (last seq, count).
        stored: (u64, u64),
        /// The chain's.
        chain: (u64, u64),
    },
    /// A subject is indexed that has no events.
    UnknownSubject(SubjectId),
    /// Subject head count differs.
    HeadCount {
        /// Indexed.
        indexed: u64,
        /// In the chain.
        chain: u64,
    },
    /// An event id points to another seq than the chain has it at.
    EventId {
        /// The id.
        id: EventId,
        /// Where the index says.
        indexed: u64,
        /// Where the chain has it.
        chain: Option<u64>,
    },
    /// Event id count differs.
    EventIdCount {
        /// Indexed.
        indexed: u64,
        /// Events.
        events: u64,
    },
    /// The index could not be read.
    Unreadable(String),
}

impl fmt::Display for IndexProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Head { subject, stored, chain } => write!(
                f,
                "subject {subject} head says seq {} (#{}) but the chain ends at seq {} (#{})",
                stored.0, stored.1, chain.0, chain.1
            ),
            Self::UnknownSubject(s) => write!(f, "subject {s} is indexed but has no events"),
            Self::HeadCount { indexed, chain } => {
                write!(f, "{indexed} subject heads indexed, the chain has {chain} subjects")
            }
            Self::EventId { id, indexed, chain } => {
                write!(f, "event_id {id} points to seq {indexed}, the chain has it at {chain:?}")
            }
            Self::EventIdCount { indexed, events } => write!(f, "{indexed} event ids indexed for {events} events"),
            Self::Unreadable(e) => write!(f, "unreadable: {e}"),
        }
    }
}

/// Why verification failed. `#[non_exhaustive]`: checks are added over time.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureReason {
    /// A stored chunk does not decode.
    ChunkUndecodable(String),
    /// No record is stored for this seq.
    RecordMissing {
        /// The next seq that is stored.
        next_stored: u64,
    },
    /// The chunk layout places an earlier seq again here.
    RecordDuplicated {
        /// The seq stored again.
        stored: u64,
    },
    /// A chain check failed (global or subject chain, order, ids, back-links).
    Chain(ChainFault),
    /// This event's bytes changed after the next event sealed its hash.
    Altered {
        /// The event whose `prev_hash` no longer matches.
        sealed_into: u64,
    },
    /// Encrypted details are stored but the event commits to none.
    UncommittedDetails,
    /// The event commits to details but none are stored.
    DetailsMissing,
    /// The stored head names more events than the log holds.
    HeadBeyondLog {
        /// The head's count.
        head: u64,
        /// The log's.
        log: u64,
    },
    /// The stored head hash is not the re-derived hash of the last event.
    HeadHash {
        /// Re-derived.
        derived: EventHash,
        /// Stored.
        stored: EventHash,
    },
    /// More events were acknowledged than the log holds.
    AckedBeyondLog {
        /// Acknowledged.
        acked: u64,
        /// In the log.
        log: u64,
    },
    /// The acknowledged hash of this event differs from its re-derived hash.
    AckedHash {
        /// What was acknowledged.
        acked: EventHash,
    },
    /// The index watermark is beyond the log.
    WatermarkBeyondLog {
        /// Watermark.
        watermark: u64,
        /// Events in the log.
        log: u64,
    },
    /// A stored Merkle node.
    MerkleNode {
        /// Level (0 = leaves).
        level: u8,
        /// Index in the level.
        index: u64,
        /// What is wrong.
        problem: NodeProblem,
    },
    /// The derived index at its watermark.
    Index {
        /// The watermark.
        watermark: u64,
        /// What is wrong.
        problem: IndexProblem,
    },
    /// A stored signed checkpoint.
    Checkpoint {
        /// Its size.
        size: u64,
        /// The tree it was signed over.
        tree: TreeVersion,
        /// What is wrong.
        problem: CheckpointProblem,
    },
    /// A checkpoint is stored for more events than the log holds.
    CheckpointBeyondLog {
        /// Its size.
        size: u64,
        /// Events in the log.
        log: u64,
    },
    /// A held checkpoint's root is not the root of the ledger's first `size` events.
    Fork {
        /// The held checkpoint's size.
        size: u64,
        /// Root the events give.
        derived: EventHash,
        /// Root the held checkpoint signs.
        held: EventHash,
    },
    /// The ledger holds fewer events than a held checkpoint proves existed.
    Rollback {
        /// Events in the ledger.
        log: u64,
        /// The held checkpoint's size.
        held: u64,
    },
    /// A `subject_map_committed` covers more events than precede it.
    MapCoversTooMuch {
        /// Its tree_size.
        tree_size: u64,
    },
    /// A `subject_map_committed` covers fewer events than the previous one.
    MapGoesBack {
        /// Its tree_size.
        tree_size: u64,
        /// The previous one's.
        previous: u64,
    },
    /// A `subject_map_committed` root or count is not what the events give.
    MapRoot {
        /// Its tree_size.
        tree_size: u64,
        /// Its root.
        root: EventHash,
        /// Its subject count.
        subjects: u64,
        /// Re-derived root.
        derived: EventHash,
        /// Re-derived count.
        derived_subjects: u64,
    },
    /// Details sealed under a key the vault does not hold, and no erasure covers them.
    KeyMissing {
        /// The key slot ("" = subject-wide).
        slot: String,
    },
    /// Sealed details do not open under the slot's key (AEAD tag or commitment).
    SealedDetailsDamaged {
        /// The key slot.
        slot: String,
    },
    /// An erasure covers these details, yet they still decrypt.
    ErasureNotCarriedOut {
        /// The `data_erased`.
        erased_by: u64,
    },
    /// The projections' erasures differ from the `data_erased` events in the log.
    ProjectionErasures,
    /// A projection state (what answers `may_process`, `consent`, reports) differs from a
    /// fresh fold of the verified events.
    Projection {
        /// Whose state: a subject's pseudonym, or a controller.
        owner: StateOwner,
        /// The first part that differs (`consent`, `erasure`, …; `missing`, `not in the log`).
        part: &'static str,
    },
    /// A key vault file (docs/FORMAT.md §5): a frame's tag, its pseudonym, or the keys in
    /// use differ from the files.
    VaultFrame {
        /// The segment's file name.
        segment: String,
        /// Byte offset of the frame in it.
        offset: u64,
        /// What is wrong.
        problem: kvitto_vault::FrameProblem,
    },
    /// sled failed reading the store (its files are damaged).
    DamagedStore(String),
}

impl FailureReason {
    /// A stable short name of the check that failed.
    pub fn check(&self) -> &'static str {
        match self {
            Self::ChunkUndecodable(_) | Self::RecordMissing { .. } | Self::RecordDuplicated { .. } => "records",
            Self::Chain(_) | Self::Altered { .. } => "chain",
            Self::UncommittedDetails | Self::DetailsMissing => "details",
            Self::HeadBeyondLog { .. } | Self::HeadHash { .. } => "head",
            Self::AckedBeyondLog { .. } | Self::AckedHash { .. } => "acknowledged",
            Self::WatermarkBeyondLog { .. } | Self::Index { .. } => "index",
            Self::MerkleNode { .. } => "merkle",
            Self::Checkpoint { .. } | Self::CheckpointBeyondLog { .. } => "checkpoint",
            Self::Fork { .. } | Self::Rollback { .. } => "held-checkpoint",
            Self::MapCoversTooMuch { .. } | Self::MapGoesBack { .. } | Self::MapRoot { .. } => "subject-map",
            Self::KeyMissing { .. } | Self::SealedDetailsDamaged { .. } => "sealed-details",
            Self::ErasureNotCarriedOut { .. } | Self::ProjectionErasures => "erasure",
            Self::Projection { .. } => "projections",
            Self::VaultFrame { .. } => "vault",
            Self::DamagedStore(_) => "store",
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ChunkUndecodable(e) => write!(f, "stored chunk does not decode: {e}"),
            Self::RecordMissing { next_stored } => {
                write!(f, "missing: no stored record for this seq; the next stored one is seq {next_stored}")
            }
            Self::RecordDuplicated { stored } => write!(f, "stored twice: the chunk layout places seq {stored} again"),
            Self::Chain(fault) => write!(f, "{}", fault.reason()),
            Self::Altered { sealed_into } => {
                write!(f, "altered: its re-derived hash no longer matches the prev_hash sealed into seq {sealed_into}")
            }
            Self::UncommittedDetails => f.write_str("stored encrypted details but the event commits to none"),
            Self::DetailsMissing => f.write_str("the event commits to details but none are stored"),
            Self::HeadBeyondLog { head, log } => {
                write!(f, "missing: the stored head says {head} events, the log ends after {log}")
            }
            Self::HeadHash { derived, stored } => {
                write!(f, "altered: the re-derived hash {derived} does not match the stored head hash {stored}")
            }
            Self::AckedBeyondLog { acked, log } => {
                write!(f, "missing: {acked} events were acknowledged, the log ends after {log}")
            }
            Self::AckedHash { acked } => {
                write!(f, "altered: this event's hash differs from the one acknowledged ({acked})")
            }
            Self::WatermarkBeyondLog { watermark, log } => {
                write!(f, "index watermark {watermark} is beyond the log's {log} events")
            }
            Self::MerkleNode { level, index, problem } => {
                write!(f, "merkle node {level}/{index}: ")?;
                match problem {
                    NodeProblem::Mismatch => f.write_str("stored hash does not match the events"),
                    NodeProblem::Skips(i) => write!(f, "stored nodes skip to index {i}"),
                    NodeProblem::Missing => f.write_str("missing"),
                    NodeProblem::Unreadable(e) => f.write_str(e),
                }
            }
            Self::Index { watermark, problem } => write!(f, "index (watermark {watermark}): {problem}"),
            Self::Checkpoint { size, tree, problem } => {
                if *tree == TreeVersion::V1Blake3 {
                    f.write_str("tree v1 (BLAKE3) ")?;
                }
                write!(f, "checkpoint of size {size}: {problem}")
            }
            Self::CheckpointBeyondLog { size, log } => {
                write!(f, "checkpoint of size {size} is beyond the {log} events of the log")
            }
            Self::Fork { size, derived, held } => write!(
                f,
                "fork or rewrite: the ledger's first {size} events give root {derived}, the held checkpoint of size \
                 {size} says {held} (nor is it this history's tree v1 root)"
            ),
            Self::Rollback { log, held } => {
                write!(f, "rollback: the ledger holds {log} events, but the held checkpoint proves {held} existed")
            }
            Self::MapCoversTooMuch { tree_size } => {
                write!(f, "subject map commitment covers {tree_size} events, more than precede it")
            }
            Self::MapGoesBack { tree_size, previous } => {
                write!(f, "subject map commitment of {tree_size} events goes back from {previous}")
            }
            Self::MapRoot { tree_size, root, subjects, derived, derived_subjects } => write!(
                f,
                "subject map commitment over {tree_size} events says root {root} for {subjects} subjects; the events \
                 give {derived} for {derived_subjects}"
            ),
            Self::KeyMissing { slot } => write!(
                f,
                "its details are sealed under the subject's `{slot}` key, which the key vault does not hold, and no \
                 data_erased covers them (a vault segment file is missing or damaged)"
            ),
            Self::SealedDetailsDamaged { slot } => write!(
                f,
                "its sealed details do not open with the subject's `{slot}` key (AEAD tag or commitment fails): the \
                 stored ciphertext or the key was altered"
            ),
            Self::ErasureNotCarriedOut { erased_by } => write!(
                f,
                "data_erased seq {erased_by} covers its details, yet they still decrypt: the erasure was not carried out"
            ),
            Self::ProjectionErasures => f.write_str(
                "the projections' erasures differ from the data_erased events in the log; run `kvitto rebuild`",
            ),
            Self::Projection { owner, part } => write!(
                f,
                "projections: the state of {owner} that answers queries differs from a fresh fold of the log in \
                 `{part}`; run `kvitto rebuild`"
            ),
            Self::VaultFrame { segment, offset, problem } => write!(
                f,
                "key vault vault/{segment}, frame at byte {offset}: {problem} — restore the vault directory from a backup"
            ),
            Self::DamagedStore(e) => write!(
                f,
                "damaged store: sled failed reading it ({e}) — corrupted data; restore the store directory from a backup"
            ),
        }
    }
}
