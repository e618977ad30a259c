//! Bitemporal marks: every fact a projection keeps carries when it occurred, when the ledger
//! recorded it, and its seq. A query [`AsOf`] sees the marks with `occurred ≤ at` and
//! `recorded ≤ known_at`; among them the latest by `(occurred, seq)` decides.

use kvitto_core::{Event, Timestamp};
use serde::{Deserialize, Serialize};

/// When a fact happened and when the ledger learnt it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Stamp {
    /// Caller's time of the event.
    pub occurred: Timestamp,
    /// Global position of the event.
    pub seq: u64,
    /// Ledger time of the event.
    pub recorded: Timestamp,
}

impl Stamp {
    /// The stamp of an event.
    pub fn of(e: &Event) -> Self {
        Self { occurred: e.occurred_at, seq: e.seq, recorded: e.recorded_at }
    }

    /// Whether a query as of `q` sees this mark.
    pub fn visible(&self, q: &AsOf) -> bool {
        self.occurred <= q.at && self.recorded <= q.known_at
    }
}

/// A bitemporal point of view: what had *occurred* by `at`, as the ledger *knew* it at `known_at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AsOf {
    /// Occurred-time horizon.
    pub at: Timestamp,
    /// Recorded-time horizon.
    pub known_at: Timestamp,
}

impl AsOf {
    /// Everything the ledger holds, whenever it occurred.
    pub const ALL: AsOf = AsOf { at: Timestamp::MAX, known_at: Timestamp::MAX };

    /// What has occurred by now, as known now (the default point of view).
    pub fn now() -> Self {
        let now = Timestamp::now();
        Self { at: now, known_at: now }
    }

    /// What had occurred by `at`, as known now.
    pub fn at(at: Timestamp) -> Self {
        Self { at, known_at: Timestamp::MAX }
    }
}

/// Marks ordered by `(occurred, seq)`; inserting a seq twice keeps one (folds are idempotent).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeline<T> {
    items: Vec<(Stamp, T)>,
}

impl<T> Default for Timeline<T> {
    fn default() -> Self {
        Self { items: Vec::new() }
    }
}

impl<T> Timeline<T> {
    /// Inserts a mark in `(occurred, seq)` order.
    pub fn insert(&mut self, stamp: Stamp, value: T) {
        let key = (stamp.occurred, stamp.seq);
        // Events mostly arrive in occurred order: check the end first.
        let pos = match self.items.last() {
            Some((last, _)) if (last.occurred, last.seq) < key => self.items.len(),
            None => 0,
            _ => match self.items.binary_search_by(|(s, _)| (s.occurred, s.seq).cmp(&key)) {
                Ok(_) => return,
                Err(p) => p,
            },
        };
        self.items.insert(pos, (stamp, value));
    }

    /// Visible marks in order.
    pub fn visible(&self, q: &AsOf) -> impl DoubleEndedIterator<Item = &(Stamp, T)> + '_ {
        let q = *q;
        self.items.iter().filter(move |(s, _)| s.visible(&q))
    }

    /// The deciding (latest visible) mark.
    pub fn latest(&self, q: &AsOf) -> Option<&(Stamp, T)> {
        self.visible(q).next_back()
    }

    /// Whether there is no mark at all.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Every mark, in order.
    pub fn all(&self) -> &[(Stamp, T)] {
        &self.items
    }
}

/// The earliest sightings of a fact that only accumulates ("category C was collected for
/// purpose P"): the Pareto frontier of `(occurred, recorded)`, so a query can tell whether
/// any sighting is visible without keeping every one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirstSeen {
    points: Vec<Stamp>,
}

impl FirstSeen {
    /// Records a sighting (kept only if no earlier one dominates it).
    pub fn see(&mut self, s: Stamp) {
        if self.points.iter().any(|p| p.occurred <= s.occurred && p.recorded <= s.recorded) {
            return;
        }
        self.points.retain(|p| !(s.occurred <= p.occurred && s.recorded <= p.recorded));
        self.points.push(s);
    }

    /// The first visible sighting, if any.
    pub fn first_visible(&self, q: &AsOf) -> Option<Stamp> {
        self.points.iter().filter(|p| p.visible(q)).min_by_key(|p| (p.occurred, p.seq)).copied()
    }
}
