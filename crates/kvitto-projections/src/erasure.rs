//! What stops an erasure (docs/DECISIONS.md, "Erasure"): an active legal hold on the subject,
//! or an `erasure_deferred` in force for a register the erasure would destroy. The writer asks
//! this for every `data_erased` before sealing it, on the subject's state with the events not
//! yet folded applied first.

use kvitto_core::{Erasures, Id, Timestamp};
use serde::Serialize;

use crate::state::SubjectState;
use crate::timeline::AsOf;

/// Why an erasure may not happen now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ErasureBlocker {
    /// A legal hold placed and not released.
    LegalHold {
        /// The hold.
        hold_id: Id,
        /// The `legal_hold_placed` event.
        seq: u64,
    },
    /// A statutory deferral still in force for a register in scope.
    Deferred {
        /// The register kept.
        register: Id,
        /// The statute.
        statute: String,
        /// Kept until.
        until: Timestamp,
        /// The `erasure_deferred` event.
        seq: u64,
    },
}

impl std::fmt::Display for ErasureBlocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ErasureBlocker::LegalHold { hold_id, seq } => {
                write!(f, "legal hold {hold_id} (seq {seq}) is active; release it first (legal_hold_released)")
            }
            ErasureBlocker::Deferred { register, statute, until, seq } => write!(
                f,
                "erasure of register {register} is deferred until {} under {statute} (seq {seq})",
                until.to_rfc3339()
            ),
        }
    }
}

impl SubjectState {
    /// The first thing that stops erasing `register` (`None`: everything) at `at`, if any.
    /// Holds and deferrals count as they occurred by `at`, as the ledger knows them now.
    pub fn erasure_blocker(&self, register: Option<&Id>, at: Timestamp) -> Option<ErasureBlocker> {
        let q = AsOf::at(at);
        for (hold_id, timeline) in &self.holds {
            if let Some((st, true)) = timeline.latest(&q) {
                return Some(ErasureBlocker::LegalHold { hold_id: hold_id.clone(), seq: st.seq });
            }
        }
        // The latest deferral of each register decides (a later one may shorten it).
        let mut latest: std::collections::BTreeMap<&Id, (&crate::timeline::Stamp, &crate::state::Deferral)> =
            Default::default();
        for (st, d) in self.deferrals.visible(&q) {
            latest.insert(&d.register, (st, d));
        }
        latest.into_values().find(|(_, d)| register.is_none_or(|r| *r == d.register) && d.until > at).map(|(st, d)| {
            ErasureBlocker::Deferred {
                register: d.register.clone(),
                statute: d.statute.to_string(),
                until: d.until,
                seq: st.seq,
            }
        })
    }

    /// The subject's recorded erasures, by seq, whenever they occurred.
    pub fn erasures(&self) -> Erasures {
        Erasures::new(self.erasure.all().iter().map(|(st, r)| (st.seq, r.clone())).collect())
    }
}
