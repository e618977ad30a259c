//! kvitto-projections: pure folds over events — consent state as of any instant, processing
//! register, processor registry, retention schedule, rights requests.
//!
//! Reserved in the foundation; the projections issue fills it.
//!
//! **Architecture invariant:** every projection is `apply(&mut self, &Event)` over events in
//! seq order; a rebuild from seq 0 equals the incrementally maintained state.
#![forbid(unsafe_code)]
