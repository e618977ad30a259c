//! What an erasure covers (docs/FORMAT.md §5.2): the one rule the writer, every read path,
//! `verify` and the offline bundle verifier share.
//!
//! An event's details are sealed under one key slot of its subject: the register its kind
//! names, or `""` (subject-wide) for kinds without one. A `data_erased` with a register
//! destroys that slot's key; one without a register destroys every key of the subject and its
//! external reference. It covers the events of its subject sealed at or before its own seq
//! (its own details, if any, included); details sealed after it are under a new key.

use crate::{EventKind, Id};

/// The key slot an event's details are sealed under.
pub fn key_slot(kind: &EventKind) -> &str {
    kind.register().map_or("", Id::as_str)
}

/// Whether an erasure of `register` (`None`: everything) destroys the key of `slot`.
pub fn scope_covers(register: Option<&str>, slot: &str) -> bool {
    register.is_none_or(|r| r == slot)
}

/// The erasures recorded for one subject, as (seq of the `data_erased`, register).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Erasures(Vec<(u64, Option<Id>)>);

impl Erasures {
    /// From (seq, register) pairs in any order.
    pub fn new(mut marks: Vec<(u64, Option<Id>)>) -> Self {
        marks.sort_by_key(|(seq, _)| *seq);
        Self(marks)
    }

    /// Adds one erasure.
    pub fn push(&mut self, seq: u64, register: Option<Id>) {
        let at = self.0.partition_point(|(s, _)| *s <= seq);
        self.0.insert(at, (seq, register));
    }

    /// The seq of the first erasure that destroyed the key of details sealed at `seq` in
    /// `slot`, if any.
    pub fn covering(&self, seq: u64, slot: &str) -> Option<u64> {
        let from = self.0.partition_point(|(s, _)| *s < seq);
        self.0[from..].iter().find(|(_, r)| scope_covers(r.as_ref().map(Id::as_str), slot)).map(|(s, _)| *s)
    }

    /// Whether any erasure is recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The erasures, by seq.
    pub fn as_slice(&self) -> &[(u64, Option<Id>)] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Id {
        Id::new(s).unwrap()
    }

    #[test]
    fn a_register_erasure_covers_that_slot_at_or_before_it_and_nothing_else() {
        let e = Erasures::new(vec![(10, Some(id("kundregister")))]);
        assert_eq!(e.covering(3, "kundregister"), Some(10));
        assert_eq!(e.covering(10, "kundregister"), Some(10));
        assert_eq!(e.covering(11, "kundregister"), None, "sealed after the erasure: a new key");
        assert_eq!(e.covering(3, "bokforing"), None);
        assert_eq!(e.covering(3, ""), None, "subject-wide details survive a register erasure");
    }

    #[test]
    fn a_full_erasure_covers_every_slot_and_the_first_covering_one_is_named() {
        let mut e = Erasures::default();
        e.push(20, None);
        e.push(10, Some(id("kundregister")));
        assert_eq!(e.covering(3, "kundregister"), Some(10));
        assert_eq!(e.covering(3, "bokforing"), Some(20));
        assert_eq!(e.covering(15, ""), Some(20));
        assert_eq!(e.covering(21, ""), None);
    }
}
