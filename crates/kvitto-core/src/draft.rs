//! A draft: an event as a caller hands it in, before the ledger seals it (EVENTS.md).

use std::fmt;

use serde_json::{Map, Value};

use crate::event::{EventKind, Scope};
use crate::field::json_type;
use crate::ids::{EventId, ExternalRef, Id};
use crate::json::{StrictObject, canonical_json};
use crate::time::Timestamp;

/// Largest canonical `details` object in bytes.
pub const MAX_DETAILS_LEN: usize = 16 * 1024;

/// Free-form personal details: a JSON object kept as its canonical bytes (keys sorted,
/// no whitespace — docs/FORMAT.md §3). Never hashed in clear, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Details(Vec<u8>);

impl Details {
    /// Validates and canonicalises a JSON object.
    pub fn from_object(obj: &Map<String, Value>) -> Result<Self, String> {
        if obj.is_empty() {
            return Err("must not be an empty object (omit it instead)".into());
        }
        let bytes = canonical_json(&Value::Object(obj.clone()));
        if bytes.len() > MAX_DETAILS_LEN {
            return Err(format!("is {} bytes; details are at most {MAX_DETAILS_LEN} bytes", bytes.len()));
        }
        Ok(Self(bytes))
    }

    /// Wraps canonical bytes read back from a decrypted payload.
    pub fn from_canonical_bytes(bytes: Vec<u8>) -> Result<Self, String> {
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| format!("details are not JSON: {e}"))?;
        if v.is_object() && canonical_json(&v) == bytes {
            Ok(Self(bytes))
        } else {
            Err("details are not a canonical JSON object".into())
        }
    }

    /// The canonical bytes (the plaintext that is encrypted and committed to).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The details as a JSON value.
    pub fn to_value(&self) -> Value {
        serde_json::from_slice(&self.0).unwrap_or(Value::Null)
    }
}

impl fmt::Debug for Details {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Details(<{} bytes redacted>)", self.0.len())
    }
}

/// An event as a caller submits it. The ledger adds seq, times, links and hashes.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Draft {
    /// Responsible legal entity.
    pub controller: Id,
    /// The controller's reference for the customer (subject kinds only).
    pub subject: Option<ExternalRef>,
    /// When it happened; `None` means "now" at sealing time.
    pub occurred_at: Option<Timestamp>,
    /// Idempotency key; `None` means a fresh UUID v7.
    pub event_id: Option<EventId>,
    /// Recording service; `None` means the ledger's default actor.
    pub actor: Option<Id>,
    /// Encrypted, erasable personal details.
    pub details: Option<Details>,
    /// What happened.
    pub kind: EventKind,
}

/// Why a draft is invalid. `field` names the JSON field when one is to blame.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub struct DraftError {
    /// The offending field, if any.
    pub field: Option<String>,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for DraftError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "field {field}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl DraftError {
    fn field(field: &str, message: impl Into<String>) -> Self {
        Self { field: Some(field.to_string()), message: message.into() }
    }
}

const COMMON_FIELDS: [&str; 7] = ["type", "controller", "subject", "occurred_at", "event_id", "actor", "details"];

impl Draft {
    /// Parses one JSON object (one line of JSON Lines) per EVENTS.md.
    pub fn from_json_str(s: &str) -> Result<Self, DraftError> {
        let StrictObject(obj) = serde_json::from_str::<StrictObject>(s)
            .map_err(|e| DraftError { field: None, message: format!("invalid JSON: {e}") })?;
        Self::from_json_object(&obj)
    }

    /// Parses a JSON object per EVENTS.md.
    pub fn from_json_object(obj: &Map<String, Value>) -> Result<Self, DraftError> {
        let type_name = match obj.get("type") {
            None | Some(Value::Null) => return Err(DraftError::field("type", "is required")),
            Some(Value::String(s)) => s.as_str(),
            Some(v) => return Err(DraftError::field("type", format!("must be a string, got {}", json_type(v)))),
        };
        let Some(kind_fields) = EventKind::field_names(type_name) else {
            let known: Vec<&str> = EventKind::TABLE.iter().map(|(n, _, _)| *n).collect();
            return Err(DraftError::field(
                "type",
                format!("unknown event type {type_name:?}; known: {}", known.join(", ")),
            ));
        };
        if EventKind::TABLE.iter().any(|(n, _, scope)| *n == type_name && *scope == Scope::Ledger) {
            return Err(DraftError::field(
                "type",
                format!("{type_name} is written by the ledger itself, not by callers"),
            ));
        }
        if let Some(unknown) =
            obj.keys().find(|k| !COMMON_FIELDS.contains(&k.as_str()) && !kind_fields.contains(&k.as_str()))
        {
            return Err(DraftError::field(unknown, format!("unknown field for {type_name}")));
        }
        let str_field = |name: &str| -> Result<Option<&str>, DraftError> {
            match obj.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(v) => Err(DraftError::field(name, format!("must be a string, got {}", json_type(v)))),
            }
        };
        let controller = str_field("controller")?.ok_or_else(|| DraftError::field("controller", "is required"))?;
        let controller = Id::new(controller).map_err(|e| DraftError::field("controller", e))?;
        let kind = EventKind::from_json(type_name, obj)
            .map_err(|(f, m)| DraftError { field: f.map(str::to_string), message: m })?;
        if kind.scope() == Scope::Ledger {
            return Err(DraftError::field(
                "type",
                format!("{type_name} is written by the ledger itself, not by callers"),
            ));
        }
        let subject = match (kind.scope(), str_field("subject")?) {
            (Scope::Subject, None) => return Err(DraftError::field("subject", format!("is required for {type_name}"))),
            (Scope::Controller, Some(_)) => {
                return Err(DraftError::field(
                    "subject",
                    format!("is not allowed for {type_name} (a controller declaration)"),
                ));
            }
            (_, s) => s.map(|s| ExternalRef::new(s).map_err(|e| DraftError::field("subject", e))).transpose()?,
        };
        let occurred_at = str_field("occurred_at")?
            .map(|s| Timestamp::parse_rfc3339(s).map_err(|e| DraftError::field("occurred_at", e)))
            .transpose()?;
        let event_id = str_field("event_id")?
            .map(|s| EventId::parse(s).map_err(|e| DraftError::field("event_id", e)))
            .transpose()?;
        let actor = str_field("actor")?.map(|s| Id::new(s).map_err(|e| DraftError::field("actor", e))).transpose()?;
        let details = match obj.get("details") {
            None | Some(Value::Null) => None,
            Some(Value::Object(d)) => Some(Details::from_object(d).map_err(|e| DraftError::field("details", e))?),
            Some(v) => return Err(DraftError::field("details", format!("must be an object, got {}", json_type(v)))),
        };
        if details.is_some() && kind.scope() == Scope::Controller {
            return Err(DraftError::field(
                "details",
                format!("is not allowed for {type_name}: details are personal data of a subject"),
            ));
        }
        Ok(Draft { controller, subject, occurred_at, event_id, actor, details, kind })
    }

    /// The draft as an EVENTS.md JSON object.
    pub fn to_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("type".into(), Value::String(self.kind.name().into()));
        m.insert("controller".into(), Value::String(self.controller.as_str().into()));
        if let Some(s) = &self.subject {
            m.insert("subject".into(), Value::String(s.as_str().into()));
        }
        if let Some(t) = self.occurred_at {
            m.insert("occurred_at".into(), Value::String(t.to_rfc3339()));
        }
        if let Some(id) = self.event_id {
            m.insert("event_id".into(), Value::String(id.to_string()));
        }
        if let Some(a) = &self.actor {
            m.insert("actor".into(), Value::String(a.as_str().into()));
        }
        if let Some(d) = &self.details {
            m.insert("details".into(), d.to_value());
        }
        self.kind.to_json_fields(&mut m);
        m
    }
}
