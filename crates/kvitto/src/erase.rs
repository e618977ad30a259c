//! `Ledger::erase`: records a `data_erased` for one customer after checking it names a known
//! subject and register, and answers "already erased" without writing when nothing in its
//! scope is left. The append itself destroys the keys (`writer.rs`), and holds and statutory
//! deferrals refuse it there, whoever the caller.

use kvitto_core::{Draft, EventKind, ExternalRef, Id, Text};
use kvitto_vault::SlotKey;

use crate::{AppendError, Ledger, Receipt};

/// What [`Ledger::erase`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EraseOutcome {
    /// The erasure is recorded and the keys in its scope are destroyed.
    Erased(Receipt),
    /// Nothing in scope was left: an earlier `data_erased` (this seq) already destroyed it.
    AlreadyErased {
        /// The earlier `data_erased`.
        seq: u64,
    },
}

/// Why [`Ledger::erase`] wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    /// An argument is malformed.
    #[error("{field}: {message}")]
    BadArgument {
        /// The argument.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The customer has no events under this controller.
    #[error("no events for this subject under controller {controller}; nothing erased")]
    UnknownSubject {
        /// The controller.
        controller: String,
    },
    /// The register is neither declared by the controller nor named in the customer's events.
    #[error(
        "unknown register {register}: controller {controller} declares no such register and the customer has no data in it; nothing erased"
    )]
    UnknownRegister {
        /// The controller.
        controller: String,
        /// The register.
        register: String,
    },
    /// The append was refused (a legal hold, a deferral in force, storage).
    #[error(transparent)]
    Append(#[from] AppendError),
}

impl Ledger {
    /// The keys the vault holds for a customer (tests capture them before an erasure, to
    /// search every file for them afterwards). Not for production use.
    #[doc(hidden)]
    pub fn keys_for_test(&self, controller: &str, subject_ref: &str) -> Vec<[u8; 32]> {
        match (Id::new(controller), ExternalRef::stored(subject_ref)) {
            (Ok(c), Ok(r)) => self.inner.store.vault().keys_for_test(&self.subject_id(&c, &r)),
            _ => Vec::new(),
        }
    }

    /// Erases one customer's personal data: every key and the external reference when
    /// `register` is `None`, else that register's key. Returns once the erasure is recorded
    /// and the keys are destroyed on stable storage; events and every hash and proof over them
    /// stay valid. Refused while a legal hold is active or an `erasure_deferred` for a
    /// register in scope is in force ([`AppendError::ErasureBlocked`]).
    pub async fn erase(
        &self,
        controller: &str,
        subject_ref: &str,
        register: Option<&str>,
        reason: &str,
    ) -> Result<EraseOutcome, EraseError> {
        let bad = |field| move |message| EraseError::BadArgument { field, message };
        let c = Id::new(controller).map_err(bad("controller"))?;
        // Erasure must reach a customer recorded before the input rules, so the reference is
        // only looked up (an unknown one is refused below); the reason is new text.
        let r = ExternalRef::stored(subject_ref).map_err(bad("subject"))?;
        let register = register.map(|g| Id::new(g).map_err(bad("register"))).transpose()?;
        let reason = Text::new(reason).map_err(bad("reason"))?;
        let subject = self.subject_id(&c, &r);
        let earlier =
            {
                let p =
                    self.inner.shared.projections.read().map_err(|_| {
                        EraseError::Append(AppendError::Refused(crate::StorageError::lock("projections")))
                    })?;
                let state = match p.subjects.get(&subject) {
                    Some(s) if s.controller == c => s,
                    _ => return Err(EraseError::UnknownSubject { controller: controller.to_string() }),
                };
                if let Some(g) = &register {
                    let declared = p.controllers.get(&c).is_some_and(|cs| {
                        cs.retention.contains_key(g)
                            || cs.purposes.values().any(|t| t.all().iter().any(|(_, d)| &d.register == g))
                    });
                    let used = state.collected.all().iter().any(|(_, col)| &col.register == g)
                        || state.rectified.all().iter().any(|(_, (reg, _))| reg == g)
                        || state.deferrals.all().iter().any(|(_, d)| &d.register == g)
                        || state.records_closed.all().iter().any(|(_, (reg, _))| reg == g);
                    if !declared && !used {
                        return Err(EraseError::UnknownRegister {
                            controller: controller.to_string(),
                            register: g.to_string(),
                        });
                    }
                }
                // The last erasure whose scope covers this one's, if no data with details (a
                // collection or rectification in scope) came after it.
                let in_scope = |r: &Id| register.as_ref().is_none_or(|g| g == r);
                let data = state
                    .collected
                    .all()
                    .iter()
                    .filter(|(_, c)| in_scope(&c.register))
                    .map(|(st, _)| st.seq)
                    .chain(state.rectified.all().iter().filter(|(_, (r, _))| in_scope(r)).map(|(st, _)| st.seq))
                    .max();
                state
                    .erasures()
                    .as_slice()
                    .iter()
                    .rev()
                    .find(|(_, r)| r.is_none() || *r == register)
                    .map(|(seq, _)| *seq)
                    .filter(|seq| data.is_none_or(|d| d < *seq))
            };
        if let Some(seq) = earlier {
            let left = match register.as_ref() {
                None => self.inner.store.vault().get(&subject).is_some(),
                Some(g) => matches!(self.inner.store.vault().slot_key(&subject, Some(g.as_str())), SlotKey::Key(_)),
            };
            if !left {
                return Ok(EraseOutcome::AlreadyErased { seq });
            }
        }
        let draft = Draft {
            controller: c,
            subject: Some(r),
            occurred_at: None,
            event_id: None,
            actor: None,
            details: None,
            kind: EventKind::DataErased { register, reason },
        };
        Ok(EraseOutcome::Erased(self.append(draft).await?))
    }
}
