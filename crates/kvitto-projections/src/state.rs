//! The folded state: one [`ControllerState`] per controller and one [`SubjectState`] per data
//! subject, each updated by `apply` from events in seq order. Applying an event twice is a
//! no-op (each state remembers the last seq it applied), so catch-up may overlap.

use std::collections::BTreeMap;

use kvitto_core::event::ExtendTo;
use kvitto_core::period::{MonthDay, retention_due};
use kvitto_core::{
    Categories, CountryCode, Event, EventKind, Id, IsoPeriod, LegalBasis, Right, Role, Source, Text, TextHash,
    Timestamp, TransferMechanism, Trigger,
};
use serde::{Deserialize, Serialize};

use crate::timeline::{FirstSeen, Stamp, Timeline};

/// A declared purpose (`purpose_declared`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurposeDecl {
    /// What it is for.
    pub description: Text,
    /// Art 6(1) basis.
    pub legal_basis: LegalBasis,
    /// Register the data lives in.
    pub register: Id,
    /// Categories of data subjects (Art 30(1)(c)), when declared.
    pub data_subjects: Option<Categories>,
}

/// Who the controller is (`controller_declared`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerDecl {
    /// Legal name.
    pub legal_name: Text,
    /// Organisation number (e.g. Swedish organisationsnummer, Danish CVR), when stated.
    pub organisation_number: Option<Text>,
    /// Postal address, when stated.
    pub address: Option<Text>,
    /// How to contact the controller, when stated.
    pub contact: Option<Text>,
    /// How to contact its data protection officer (Art 37–39), when it has one.
    pub dpo_contact: Option<Text>,
    /// The supervisory authority a data subject may complain to (Art 77).
    pub authority: Text,
    /// Its country.
    pub authority_country: CountryCode,
}

/// A registered processor or recipient (`processor_registered`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessorDecl {
    /// Name.
    pub name: Text,
    /// Where it processes.
    pub country: CountryCode,
    /// Role.
    pub role: Role,
    /// Safeguard for transfers outside the EEA.
    pub transfer_mechanism: Option<TransferMechanism>,
    /// Data processing agreement reference.
    pub dpa_ref: Option<Text>,
}

/// The layout of the persisted states in this module. Bumped whenever a stored field is
/// added or changes type, so a store can tell old bytes from new ones without relying on a
/// decode failure (2: `RetentionDecl` gained `financial_year_end` and `extend_to`; 3:
/// `ControllerState::identity`, `PurposeDecl::data_subjects` and `SubjectState::seen`; 4:
/// `ControllerState::registers`).
pub const STATE_LAYOUT: u32 = 4;

/// A retention rule (`retention_rule_declared`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionDecl {
    /// What starts the clock.
    pub trigger: Trigger,
    /// How long.
    pub duration: IsoPeriod,
    /// Statute requiring it, if any.
    pub statute: Option<Text>,
    /// The clock starts at the end of the financial year the trigger falls in.
    pub financial_year_end: Option<MonthDay>,
    /// After the duration, keep through the end of that calendar year.
    pub extend_to: Option<ExtendTo>,
}

impl RetentionDecl {
    /// When data whose clock started at `clock_start` is due for erasure (the first instant
    /// it need no longer be kept): [`kvitto_core::period::retention_due`], the one computation
    /// the access report, the retention plan and the decisions share.
    pub fn due_at(&self, clock_start: Timestamp) -> Timestamp {
        retention_due(clock_start, &self.duration, self.financial_year_end, self.extend_to)
    }
}

/// What a controller declared, and what it actually did across all its subjects.
///
/// Answers: which purposes, processors, retention rules and notices were in force at a time
/// (as known at a time), and the Art 30 record of what was really collected and shared.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerState {
    /// Last seq applied.
    pub last_seq: Option<u64>,
    /// Who the controller declared itself to be (`controller_declared`; the latest applies).
    pub identity: Timeline<ControllerDecl>,
    /// Declarations of each purpose.
    pub purposes: BTreeMap<Id, Timeline<PurposeDecl>>,
    /// Registrations of each processor.
    pub processors: BTreeMap<Id, Timeline<ProcessorDecl>>,
    /// Retention rules per register.
    pub retention: BTreeMap<Id, Timeline<RetentionDecl>>,
    /// Published notices.
    pub notices: Timeline<(Id, TextHash)>,
    /// Categories actually collected: purpose → category → basis → first sightings.
    pub collected: BTreeMap<Id, BTreeMap<Id, BTreeMap<LegalBasis, FirstSeen>>>,
    /// Categories actually shared: processor → purpose → category → first sightings.
    pub shared: BTreeMap<Id, BTreeMap<Id, BTreeMap<Id, FirstSeen>>>,
    /// Registers actually collected into (whatever the purpose): register → first sightings.
    pub registers: BTreeMap<Id, FirstSeen>,
}

/// The entry for `key`, cloning the key only when it is new (the fold's hot path).
fn slot<'a, V: Default>(map: &'a mut BTreeMap<Id, V>, key: &Id) -> &'a mut V {
    if !map.contains_key(key) {
        map.insert(key.clone(), V::default());
    }
    map.get_mut(key).unwrap_or_else(|| unreachable!("inserted above"))
}

/// A consent-relevant mark for one purpose.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConsentMark {
    /// `consent_given`.
    Given {
        /// Notice in force when given.
        notice_version: Option<Id>,
    },
    /// `consent_withdrawn`.
    Withdrawn,
    /// `objection_recorded`.
    Objected,
}

/// Data collected into a register (`data_collected`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Collected {
    /// Register.
    pub register: Id,
    /// Categories.
    pub categories: Categories,
    /// Purpose.
    pub purpose: Id,
    /// Basis claimed.
    pub legal_basis: LegalBasis,
    /// Where it came from.
    pub source: Source,
    /// Whether the event carried (encrypted) details.
    pub has_details: bool,
}

/// Data disclosed (`data_shared`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shared {
    /// Recipient.
    pub processor: Id,
    /// Categories.
    pub categories: Categories,
    /// Purpose.
    pub purpose: Id,
}

/// A step of a data subject request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestMark {
    /// Received, for a right.
    Received(Right),
    /// Deadline extended (Art 12(3)).
    Extended,
    /// Fulfilled.
    Fulfilled,
    /// Rejected.
    Rejected,
}

/// An erasure deferred by statute (`erasure_deferred`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deferral {
    /// Register kept.
    pub register: Id,
    /// Statute.
    pub statute: Text,
    /// Kept until.
    pub until: Timestamp,
}

/// Everything the ledger knows about one data subject, as bitemporal marks.
///
/// Answers: consent per purpose at any instant (with interval history), restriction and
/// erasure state, what was collected and shared, rights requests and their deadlines, and
/// the relationship/record-closure dates that start retention clocks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectState {
    /// The controller the subject belongs to.
    pub controller: Id,
    /// The subject's earliest event by occurred time.
    pub first: Stamp,
    /// Every event's (occurred, recorded) point, as the non-dominated frontier: whether any
    /// event of the subject is visible as of a question (`may_process` is an error when none is).
    pub seen: FirstSeen,
    /// Last seq applied.
    pub last_seq: Option<u64>,
    /// Consent, withdrawal and objection per purpose.
    pub consent: BTreeMap<Id, Timeline<ConsentMark>>,
    /// `true` = restricted (Art 18), `false` = lifted.
    pub restriction: Timeline<bool>,
    /// Erasures: a register, or `None` for everything.
    pub erasure: Timeline<Option<Id>>,
    /// Collections.
    pub collected: Timeline<Collected>,
    /// Disclosures.
    pub shared: Timeline<Shared>,
    /// Rectifications (register, categories).
    pub rectified: Timeline<(Id, Categories)>,
    /// Requests by id.
    pub requests: BTreeMap<Id, Timeline<RequestMark>>,
    /// Closed records (register, record id).
    pub records_closed: Timeline<(Id, Id)>,
    /// Relationship ends.
    pub relationship_ended: Timeline<()>,
    /// Legal holds by id: `true` placed, `false` released.
    pub holds: BTreeMap<Id, Timeline<bool>>,
    /// Statutory deferrals of erasure.
    pub deferrals: Timeline<Deferral>,
}

impl ControllerState {
    /// Folds one controller-level event (declarations, and the actual-processing record of
    /// subject events). Returns whether anything changed.
    pub fn apply(&mut self, e: &Event) -> bool {
        // Only events that change this state advance `last_seq`: others are no-ops whenever
        // they are (re)applied, and a state that did not change is not persisted again.
        if self.last_seq.is_some_and(|s| e.seq <= s) {
            return false;
        }
        let st = Stamp::of(e);
        match &e.kind {
            EventKind::PurposeDeclared { purpose, description, legal_basis, register, data_subjects } => {
                self.purposes.entry(purpose.clone()).or_default().insert(
                    st,
                    PurposeDecl {
                        description: description.clone(),
                        legal_basis: *legal_basis,
                        register: register.clone(),
                        data_subjects: data_subjects.clone(),
                    },
                );
            }
            EventKind::ControllerDeclared {
                legal_name,
                organisation_number,
                address,
                contact,
                dpo_contact,
                authority,
                authority_country,
            } => self.identity.insert(
                st,
                ControllerDecl {
                    legal_name: legal_name.clone(),
                    organisation_number: organisation_number.clone(),
                    address: address.clone(),
                    contact: contact.clone(),
                    dpo_contact: dpo_contact.clone(),
                    authority: authority.clone(),
                    authority_country: *authority_country,
                },
            ),
            EventKind::ProcessorRegistered { processor, name, country, role, transfer_mechanism, dpa_ref } => {
                self.processors.entry(processor.clone()).or_default().insert(
                    st,
                    ProcessorDecl {
                        name: name.clone(),
                        country: *country,
                        role: *role,
                        transfer_mechanism: *transfer_mechanism,
                        dpa_ref: dpa_ref.clone(),
                    },
                );
            }
            EventKind::RetentionRuleDeclared {
                register,
                trigger,
                duration,
                statute,
                financial_year_end,
                extend_to,
            } => {
                self.retention.entry(register.clone()).or_default().insert(
                    st,
                    RetentionDecl {
                        trigger: *trigger,
                        duration: *duration,
                        statute: statute.clone(),
                        financial_year_end: *financial_year_end,
                        extend_to: *extend_to,
                    },
                );
            }
            EventKind::NoticePublished { version, text_hash } => self.notices.insert(st, (version.clone(), *text_hash)),
            EventKind::DataCollected { register, categories, purpose, legal_basis, .. } => {
                let by_category = slot(&mut self.collected, purpose);
                for c in categories.as_slice() {
                    slot(by_category, c).entry(*legal_basis).or_default().see(st);
                }
                slot(&mut self.registers, register).see(st);
            }
            EventKind::DataShared { processor, categories, purpose } => {
                let by_category = slot(slot(&mut self.shared, processor), purpose);
                for c in categories.as_slice() {
                    slot(by_category, c).see(st);
                }
            }
            _ => return false,
        }
        self.last_seq = Some(e.seq);
        true
    }
}

impl SubjectState {
    /// A state for a subject whose first event is `e`.
    pub fn new(e: &Event) -> Self {
        Self {
            controller: e.controller.clone(),
            first: Stamp::of(e),
            seen: FirstSeen::default(),
            last_seq: None,
            consent: BTreeMap::new(),
            restriction: Timeline::default(),
            erasure: Timeline::default(),
            collected: Timeline::default(),
            shared: Timeline::default(),
            rectified: Timeline::default(),
            requests: BTreeMap::new(),
            records_closed: Timeline::default(),
            relationship_ended: Timeline::default(),
            holds: BTreeMap::new(),
            deferrals: Timeline::default(),
        }
    }

    /// Folds one event of this subject. Returns whether it was new.
    pub fn apply(&mut self, e: &Event) -> bool {
        self.apply_owned(e.clone())
    }

    /// Like [`SubjectState::apply`], moving the event's fields into the state instead of
    /// cloning them (the fold's hot path: the writer and rebuilds own their events).
    pub fn apply_owned(&mut self, e: Event) -> bool {
        if self.last_seq.is_some_and(|s| e.seq <= s) {
            return false;
        }
        self.last_seq = Some(e.seq);
        let st = Stamp::of(&e);
        let has_details = e.payload_commitment.is_some();
        self.seen.see(st);
        if (st.occurred, st.seq) < (self.first.occurred, self.first.seq) {
            self.first = st;
        }
        match e.kind {
            EventKind::ConsentGiven { purpose, notice_version, .. } => {
                self.consent.entry(purpose).or_default().insert(st, ConsentMark::Given { notice_version })
            }
            EventKind::ConsentWithdrawn { purpose, .. } => {
                self.consent.entry(purpose).or_default().insert(st, ConsentMark::Withdrawn)
            }
            EventKind::ObjectionRecorded { purpose } => {
                self.consent.entry(purpose).or_default().insert(st, ConsentMark::Objected)
            }
            EventKind::DataCollected { register, categories, purpose, legal_basis, source } => {
                self.collected.insert(st, Collected { register, categories, purpose, legal_basis, source, has_details })
            }
            EventKind::DataShared { processor, categories, purpose } => {
                self.shared.insert(st, Shared { processor, categories, purpose })
            }
            EventKind::DataRectified { register, categories } => self.rectified.insert(st, (register, categories)),
            EventKind::ProcessingRestricted { .. } => self.restriction.insert(st, true),
            EventKind::RestrictionLifted { .. } => self.restriction.insert(st, false),
            EventKind::RecordClosed { register, record_id } => self.records_closed.insert(st, (register, record_id)),
            EventKind::RelationshipEnded { .. } => self.relationship_ended.insert(st, ()),
            EventKind::RightsRequestReceived { request_id, right } => {
                self.requests.entry(request_id).or_default().insert(st, RequestMark::Received(right))
            }
            EventKind::RightsRequestExtended { request_id, .. } => {
                self.requests.entry(request_id).or_default().insert(st, RequestMark::Extended)
            }
            EventKind::RightsRequestFulfilled { request_id } => {
                self.requests.entry(request_id).or_default().insert(st, RequestMark::Fulfilled)
            }
            EventKind::RightsRequestRejected { request_id, .. } => {
                self.requests.entry(request_id).or_default().insert(st, RequestMark::Rejected)
            }
            EventKind::LegalHoldPlaced { hold_id, .. } => self.holds.entry(hold_id).or_default().insert(st, true),
            EventKind::LegalHoldReleased { hold_id } => self.holds.entry(hold_id).or_default().insert(st, false),
            EventKind::ErasureDeferred { register, statute, until } => {
                self.deferrals.insert(st, Deferral { register, statute, until })
            }
            EventKind::DataErased { register, .. } => self.erasure.insert(st, register),
            EventKind::PurposeDeclared { .. }
            | EventKind::ControllerDeclared { .. }
            | EventKind::ProcessorRegistered { .. }
            | EventKind::RetentionRuleDeclared { .. }
            | EventKind::NoticePublished { .. }
            | EventKind::SubjectMapCommitted { .. } => {}
        }
        true
    }
}

/// Names the first part of two subject states that differs (`None`: equal). For `verify`,
/// which compares the states that answer queries with a fresh fold of the log.
pub fn subject_difference(a: &SubjectState, b: &SubjectState) -> Option<&'static str> {
    // Exhaustive on purpose: a new field must be compared too.
    let SubjectState {
        controller: _,
        first: _,
        seen: _,
        last_seq: _,
        consent: _,
        restriction: _,
        erasure: _,
        collected: _,
        shared: _,
        rectified: _,
        requests: _,
        records_closed: _,
        relationship_ended: _,
        holds: _,
        deferrals: _,
    } = a;
    [
        ("controller", a.controller == b.controller),
        ("first", a.first == b.first),
        ("last_seq", a.last_seq == b.last_seq),
        ("consent", a.consent == b.consent),
        ("restriction", a.restriction == b.restriction),
        ("erasure", a.erasure == b.erasure),
        ("collected", a.collected == b.collected),
        ("shared", a.shared == b.shared),
        ("rectified", a.rectified == b.rectified),
        ("requests", a.requests == b.requests),
        ("records_closed", a.records_closed == b.records_closed),
        ("relationship_ended", a.relationship_ended == b.relationship_ended),
        ("holds", a.holds == b.holds),
        ("deferrals", a.deferrals == b.deferrals),
    ]
    .into_iter()
    .find(|(_, same)| !same)
    .map(|(name, _)| name)
}

/// Names the first part of two controller states that differs (`None`: equal).
pub fn controller_difference(a: &ControllerState, b: &ControllerState) -> Option<&'static str> {
    let ControllerState {
        last_seq: _,
        identity: _,
        purposes: _,
        processors: _,
        retention: _,
        notices: _,
        collected: _,
        shared: _,
        registers: _,
    } = a;
    [
        ("last_seq", a.last_seq == b.last_seq),
        ("identity", a.identity == b.identity),
        ("purposes", a.purposes == b.purposes),
        ("processors", a.processors == b.processors),
        ("retention", a.retention == b.retention),
        ("notices", a.notices == b.notices),
        ("collected", a.collected == b.collected),
        ("shared", a.shared == b.shared),
        ("registers", a.registers == b.registers),
    ]
    .into_iter()
    .find(|(_, same)| !same)
    .map(|(name, _)| name)
}
