//! The event model v1: every kind and field of EVENTS.md as typed Rust.

use serde_json::{Map, Value};

use crate::country::CountryCode;
use crate::field::{DecodeError, FieldCodec, Reader, code_enum};
use crate::ids::{Commitment, EventHash, EventId, Id, SubjectId, Text, TextHash};
use crate::period::{IsoPeriod, MonthDay};
use crate::time::Timestamp;

code_enum!(
    /// GDPR Art 6(1) a–f.
    LegalBasis {
        /// (a) consent.
        Consent = 1, "consent";
        /// (b) performance of a contract.
        Contract = 2, "contract";
        /// (c) legal obligation.
        LegalObligation = 3, "legal_obligation";
        /// (d) vital interests.
        VitalInterests = 4, "vital_interests";
        /// (e) public task.
        PublicTask = 5, "public_task";
        /// (f) legitimate interests.
        LegitimateInterests = 6, "legitimate_interests";
    }
);

code_enum!(
    /// The role of a party personal data is shared with.
    Role {
        /// Processes on the controller's behalf (Art 28).
        Processor = 1, "processor";
        /// Engaged by a processor.
        SubProcessor = 2, "sub_processor";
        /// Receives data for its own purposes.
        Recipient = 3, "recipient";
        /// Joint controller (Art 26).
        JointController = 4, "joint_controller";
    }
);

code_enum!(
    /// Safeguard for a transfer outside the EEA (Chapter V).
    TransferMechanism {
        /// Adequacy decision (Art 45).
        Adequacy = 1, "adequacy";
        /// Standard contractual clauses (Art 46(2)(c)).
        Scc = 2, "scc";
        /// Binding corporate rules (Art 47).
        Bcr = 3, "bcr";
        /// Derogation (Art 49).
        Derogation = 4, "derogation";
    }
);

code_enum!(
    /// Where collected data came from (Art 13 vs 14; portability covers `subject` only).
    Source {
        /// Provided by the data subject.
        Subject = 1, "subject";
        /// Created by the controller.
        Controller = 2, "controller";
        /// Obtained from a third party.
        ThirdParty = 3, "third_party";
    }
);

code_enum!(
    /// A data subject right (Art 15–21).
    Right {
        /// Art 15.
        Access = 1, "access";
        /// Art 16.
        Rectification = 2, "rectification";
        /// Art 17.
        Erasure = 3, "erasure";
        /// Art 18.
        Restriction = 4, "restriction";
        /// Art 20.
        Portability = 5, "portability";
        /// Art 21.
        Objection = 6, "objection";
    }
);

code_enum!(
    /// What starts a retention clock.
    Trigger {
        /// The data was collected.
        Collected = 1, "collected";
        /// A record (ticket, shipment) was closed.
        RecordClosed = 2, "record_closed";
        /// The customer relationship ended.
        RelationshipEnded = 3, "relationship_ended";
    }
);

code_enum!(
    /// How far a retention period is stretched after its duration is added.
    ExtendTo {
        /// Kept through 31 December of the year in which the period ran out.
        CalendarYearEnd = 1, "calendar_year_end";
    }
);

/// A non-empty list of distinct category ids (at most [`Categories::MAX`]), in the order given.
#[derive(Clone, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "Vec<Id>", into = "Vec<Id>")]
pub struct Categories(Vec<Id>);

impl TryFrom<Vec<Id>> for Categories {
    type Error = String;
    fn try_from(items: Vec<Id>) -> Result<Self, String> {
        Categories::new(items)
    }
}

impl From<Categories> for Vec<Id> {
    fn from(c: Categories) -> Vec<Id> {
        c.0
    }
}

impl Categories {
    /// Most categories one event may name.
    pub const MAX: usize = 64;

    /// Validates: non-empty, at most [`Categories::MAX`], no duplicates.
    pub fn new(items: Vec<Id>) -> Result<Self, String> {
        if items.is_empty() {
            return Err("must name at least one category".into());
        }
        if items.len() > Self::MAX {
            return Err(format!("names {} categories; at most {}", items.len(), Self::MAX));
        }
        for (i, c) in items.iter().enumerate() {
            if items[..i].contains(c) {
                return Err(format!("names {c} twice"));
            }
        }
        Ok(Self(items))
    }

    /// The categories.
    pub fn as_slice(&self) -> &[Id] {
        &self.0
    }
}

/// Whether a kind is a controller declaration or concerns one data subject.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Scope {
    /// No `subject`.
    Controller,
    /// `subject` required.
    Subject,
    /// The ledger's own bookkeeping (the subject map commitment): written by the ledger
    /// alone, never accepted from a caller; no subject, no details.
    Ledger,
}

/// One kind's canonical code: its base code, or — for a kind with an extended layout — the
/// extended code exactly when one of the extension fields is present.
macro_rules! kind_code {
    ($code:literal ;) => {
        $code
    };
    ($code:literal ; $xcode:literal $( $xfield:ident )+) => {
        if $( $crate::field::OptionalField::is_present($xfield) )||+ { $xcode } else { $code }
    };
}

macro_rules! event_kinds {
    ($( $(#[$doc:meta])* $variant:ident = $code:literal, $name:literal, $scope:ident { $( $field:ident : $ty:ty ),* $(,)? } $( + $xcode:literal { $( $xfield:ident : $xty:ty ),+ $(,)? } )? )+) => {
        /// What an event says. One variant per `type` of EVENTS.md; codes per docs/FORMAT.md.
        #[derive(Clone, PartialEq, Eq, Debug)]
        pub enum EventKind {
            $( $(#[$doc])* $variant { $( #[allow(missing_docs)] $field: $ty, )* $( $( #[allow(missing_docs)] $xfield: $xty, )+ )? }, )+
        }

        impl EventKind {
            /// Every kind's (`type` name, base code, scope), in code order.
            pub const TABLE: &'static [(&'static str, u16, Scope)] = &[$( ($name, $code, Scope::$scope) ),+];

            /// Kinds with an extended layout: (`type` name, base code, extended code). The
            /// extended code is used exactly when one of the trailing optional fields is present
            /// (docs/FORMAT.md §2.3), so events without them keep their base bytes.
            pub const EXTENDED: &'static [(&'static str, u16, u16)] = &[$( $( ($name, $code, $xcode), )? )+];

            /// The canonical kind code.
            pub fn code(&self) -> u16 {
                match self { $( Self::$variant { $( $( $xfield, )+ )? .. } => kind_code!($code ; $( $xcode $( $xfield )+ )?), )+ }
            }

            /// The JSON `type` name.
            pub fn name(&self) -> &'static str {
                match self { $( Self::$variant { .. } => $name, )+ }
            }

            /// Controller declaration or subject event.
            pub fn scope(&self) -> Scope {
                match self { $( Self::$variant { .. } => Scope::$scope, )+ }
            }

            /// The JSON field names this kind accepts, in canonical order.
            pub fn field_names(type_name: &str) -> Option<&'static [&'static str]> {
                match type_name { $( $name => Some(&[$( stringify!($field), )* $( $( stringify!($xfield), )+ )?]), )+ _ => None }
            }

            /// The kind's own fields with their JSON Schemas and whether each is required, in
            /// canonical order.
            pub fn field_schemas(type_name: &str) -> Option<Vec<(&'static str, serde_json::Value, bool)>> {
                match type_name {
                    $( $name => Some(vec![
                        $( (stringify!($field), <$ty as FieldCodec>::json_schema(), <$ty as FieldCodec>::REQUIRED), )*
                        $( $( (stringify!($xfield), <$xty as FieldCodec>::json_schema(), <$xty as FieldCodec>::REQUIRED), )+ )?
                    ]), )+
                    _ => None,
                }
            }

            /// Appends the kind's fields in canonical order.
            pub(crate) fn encode_fields(&self, out: &mut Vec<u8>) {
                let code = self.code();
                match self {
                    $( Self::$variant { $( $field, )* $( $( $xfield, )+ )? } => {
                        $( FieldCodec::encode($field, out); )*
                        $( if code == $xcode { $( FieldCodec::encode($xfield, out); )+ } )?
                    } )+
                }
            }

            /// Reads the fields of kind `code`.
            pub(crate) fn decode_fields(code: u16, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                match code {
                    $( $code => Ok(Self::$variant { $( $field: <$ty as FieldCodec>::decode(r)?, )* $( $( $xfield: <$xty>::default(), )+ )? }), )+
                    $( $( $xcode => {
                        let at = r.position().saturating_sub(2);
                        let mut kind = Self::decode_fields($code, r)?;
                        if let Self::$variant { $( $xfield, )+ .. } = &mut kind {
                            $( *$xfield = <$xty as FieldCodec>::decode(r)?; )+
                        }
                        if kind.code() != $xcode {
                            return Err(DecodeError {
                                offset: at,
                                what: format!("kind code {} without any of its extension fields (must be written as kind {})", $xcode, $code),
                            });
                        }
                        Ok(kind)
                    } )? )+
                    other => Err(DecodeError { offset: r.position().saturating_sub(2), what: format!("unknown kind code {other}") }),
                }
            }

            /// Parses the fields of `type_name` from a JSON object; errors name the field. The
            /// rules are those of decoding (the sealed-event JSON form uses it too); drafts
            /// then apply [`EventKind::check_input`].
            pub(crate) fn from_json(type_name: &str, obj: &Map<String, Value>) -> Result<Self, (Option<&'static str>, String)> {
                match type_name {
                    $( $name => Ok(Self::$variant {
                        $( $field: <$ty as FieldCodec>::from_json(obj.get(stringify!($field)))
                            .map_err(|e| (Some(stringify!($field)), e))?, )*
                        $( $( $xfield: <$xty as FieldCodec>::from_json(obj.get(stringify!($xfield)))
                            .map_err(|e| (Some(stringify!($xfield)), e))?, )+ )?
                    }), )+
                    other => Err((Some("type"), format!("unknown event type {other:?}"))),
                }
            }

            /// Applies the input rules of new events to every field (docs/EVENTS.md, "Input
            /// rules for text"); errors name the field. Decoded events are not checked: they
            /// keep the rules they were written under.
            pub fn check_input(&self) -> Result<(), (&'static str, String)> {
                match self {
                    $( Self::$variant { $( $field, )* $( $( $xfield, )+ )? } => {
                        $( FieldCodec::check_input($field).map_err(|e| (stringify!($field), e))?; )*
                        $( $( FieldCodec::check_input($xfield).map_err(|e| (stringify!($xfield), e))?; )+ )?
                    } )+
                }
                self.check_kind_input()
            }

            /// Writes the kind's fields into a JSON object (absent optionals omitted).
            pub fn to_json_fields(&self, out: &mut Map<String, Value>) {
                match self {
                    $( Self::$variant { $( $field, )* $( $( $xfield, )+ )? } => {
                        $( if let Some(v) = FieldCodec::to_json($field) { out.insert(stringify!($field).into(), v); } )*
                        $( $( if let Some(v) = FieldCodec::to_json($xfield) { out.insert(stringify!($xfield).into(), v); } )+ )?
                    } )+
                }
            }
        }
    };
}

event_kinds! {
    /// A purpose the controller processes for, with its legal basis and register. With
    /// `data_subjects` (the categories of data subjects, Art 30(1)(c)) it is encoded as kind 7.
    PurposeDeclared = 1, "purpose_declared", Controller { purpose: Id, description: Text, legal_basis: LegalBasis, register: Id }
        + 7 { data_subjects: Option<Categories> }
    /// A processor, sub-processor, recipient or joint controller.
    ProcessorRegistered = 2, "processor_registered", Controller { processor: Id, name: Text, country: CountryCode, role: Role, transfer_mechanism: Option<TransferMechanism>, dpa_ref: Option<Text> }
    /// How long a register keeps data after a trigger. With `financial_year_end` and/or
    /// `extend_to` (bookkeeping rules, docs/FORMAT.md §2.3) it is encoded as kind 5.
    RetentionRuleDeclared = 3, "retention_rule_declared", Controller { register: Id, trigger: Trigger, duration: IsoPeriod, statute: Option<Text> }
        + 5 { financial_year_end: Option<MonthDay>, extend_to: Option<ExtendTo> }
    /// A privacy notice version came into force.
    NoticePublished = 4, "notice_published", Controller { version: Id, text_hash: TextHash }
    /// Who the controller is (Art 13(1)(a)–(b), 15(1)(f), 30(1)(a)): legal name, organisation
    /// number, address, contact, data protection officer, and the supervisory authority a data
    /// subject may complain to. A later declaration replaces the earlier one.
    ControllerDeclared = 6, "controller_declared", Controller { legal_name: Text, organisation_number: Option<Text>, address: Option<Text>, contact: Option<Text>, dpo_contact: Option<Text>, authority: Text, authority_country: CountryCode }
    /// Consent given for a purpose.
    ConsentGiven = 16, "consent_given", Subject { purpose: Id, notice_version: Option<Id>, channel: Option<Id> }
    /// Consent withdrawn for a purpose.
    ConsentWithdrawn = 17, "consent_withdrawn", Subject { purpose: Id, channel: Option<Id> }
    /// Objection (Art 21) to processing for a purpose.
    ObjectionRecorded = 18, "objection_recorded", Subject { purpose: Id }
    /// Personal data collected into a register.
    DataCollected = 19, "data_collected", Subject { register: Id, categories: Categories, purpose: Id, legal_basis: LegalBasis, source: Source }
    /// Personal data disclosed to a processor or recipient.
    DataShared = 20, "data_shared", Subject { processor: Id, categories: Categories, purpose: Id }
    /// Personal data corrected (Art 16).
    DataRectified = 21, "data_rectified", Subject { register: Id, categories: Categories }
    /// Processing restricted (Art 18).
    ProcessingRestricted = 22, "processing_restricted", Subject { reason: Text }
    /// A restriction ended.
    RestrictionLifted = 23, "restriction_lifted", Subject { reason: Text }
    /// A record (ticket, shipment) was closed: starts `record_closed` retention clocks.
    RecordClosed = 24, "record_closed", Subject { register: Id, record_id: Id }
    /// The customer relationship ended: starts `relationship_ended` retention clocks.
    RelationshipEnded = 25, "relationship_ended", Subject { reason: Option<Text> }
    /// A data subject request arrived (deadline: one month, Art 12(3)).
    RightsRequestReceived = 26, "rights_request_received", Subject { request_id: Id, right: Right }
    /// A request's deadline was extended (up to two more months).
    RightsRequestExtended = 27, "rights_request_extended", Subject { request_id: Id, reason: Text }
    /// A request was fulfilled.
    RightsRequestFulfilled = 28, "rights_request_fulfilled", Subject { request_id: Id }
    /// A request was rejected.
    RightsRequestRejected = 29, "rights_request_rejected", Subject { request_id: Id, reason: Text }
    /// Erasure suspended by a legal hold.
    LegalHoldPlaced = 30, "legal_hold_placed", Subject { hold_id: Id, reason: Text }
    /// A legal hold ended.
    LegalHoldReleased = 31, "legal_hold_released", Subject { hold_id: Id }
    /// Erasure of a register deferred by statute (e.g. bookkeeping) until a time.
    ErasureDeferred = 32, "erasure_deferred", Subject { register: Id, statute: Text, until: Timestamp }
    /// Personal data erased (one register, or everything when `register` is absent).
    DataErased = 33, "data_erased", Subject { register: Option<Id>, reason: Text }
    /// The root of the subject map (docs/FORMAT.md §7) over the first `tree_size` events,
    /// which held `subjects` subjects: logged so that every auditor can recompute it.
    SubjectMapCommitted = 34, "subject_map_committed", Ledger { tree_size: u64, subjects: u64, map_root: TextHash }
}

impl EventKind {
    /// Input rules that concern a kind as a whole rather than one field (after the field
    /// rules; docs/EVENTS.md). Errors name the field.
    fn check_kind_input(&self) -> Result<(), (&'static str, String)> {
        if let EventKind::ControllerDeclared { authority_country, .. } = self {
            // A supervisory authority is one member state's (Art 51, 77): a named EEA country.
            if !authority_country.is_stated() || *authority_country == CountryCode::EU || !authority_country.in_eea() {
                return Err((
                    "authority_country",
                    format!(
                        "{authority_country} is not a supervisory authority's country: name the EEA member state \
                         (e.g. \"SE\", \"DK\"); \"ZZ\", \"EU\" and third countries are refused"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The register this event's encrypted details belong to, when the kind names one.
    pub fn register(&self) -> Option<&Id> {
        match self {
            EventKind::DataCollected { register, .. }
            | EventKind::DataRectified { register, .. }
            | EventKind::RecordClosed { register, .. }
            | EventKind::ErasureDeferred { register, .. } => Some(register),
            EventKind::DataErased { register, .. } => register.as_ref(),
            _ => None,
        }
    }

    /// The purpose the event names, if any.
    pub fn purpose(&self) -> Option<&Id> {
        match self {
            EventKind::PurposeDeclared { purpose, .. }
            | EventKind::ConsentGiven { purpose, .. }
            | EventKind::ConsentWithdrawn { purpose, .. }
            | EventKind::ObjectionRecorded { purpose }
            | EventKind::DataCollected { purpose, .. }
            | EventKind::DataShared { purpose, .. } => Some(purpose),
            _ => None,
        }
    }
}

/// The subject chain fields of a subject event.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SubjectLink {
    /// Keyed pseudonym of the data subject.
    pub subject: SubjectId,
    /// Position in the subject's own chain, from 0.
    pub subject_seq: u64,
    /// Hash of the subject's previous event; `None` exactly when `subject_seq == 0`.
    pub subject_prev: Option<EventHash>,
}

/// A sealed event: everything the hash covers (docs/FORMAT.md).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Event {
    /// Position in the global chain, from 0.
    pub seq: u64,
    /// Hash of event `seq - 1`; all zeros for seq 0.
    pub prev_hash: EventHash,
    /// Ledger clock when sealed (non-decreasing along the chain).
    pub recorded_at: Timestamp,
    /// Caller's clock: when it happened.
    pub occurred_at: Timestamp,
    /// Idempotency key.
    pub event_id: EventId,
    /// Responsible legal entity.
    pub controller: Id,
    /// Service or staff id that recorded it.
    pub actor: Id,
    /// Present exactly for subject kinds.
    pub subject: Option<SubjectLink>,
    /// What happened.
    pub kind: EventKind,
    /// Commitment to the encrypted details, when the event has details.
    pub payload_commitment: Option<Commitment>,
}
impl EventKind {
    /// The one-line summary `kvitto history`, `kvitto verify-bundle` and the regulators' page
    /// show for an event: its own fields (ids and enums; never `details`), long strings cut
    /// at 45 characters, every hazardous character escaped ([`crate::text::visible`]).
    pub fn summary(&self) -> String {
        let mut m = serde_json::Map::new();
        self.to_json_fields(&mut m);
        m.iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) if s.len() > 48 => {
                    format!("{k}={}…", crate::text::visible(&s.chars().take(45).collect::<String>(), true))
                }
                serde_json::Value::String(s) => format!("{k}={}", crate::text::visible(s, true)),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}
