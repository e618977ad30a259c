//! A draft: an event as a caller hands it in, before the ledger seals it (EVENTS.md).

use std::fmt;

use serde_json::{Map, Value};

use crate::event::{EventKind, Scope};
use crate::field::json_type;
use crate::ids::{EventId, ExternalRef, Id};
use crate::json::{StrictObject, canonical_json};
use crate::text::check_details_string;
use crate::time::Timestamp;

/// Largest canonical `details` object in bytes.
pub const MAX_DETAILS_LEN: usize = 16 * 1024;

/// Free-form personal details: a JSON object kept as its canonical bytes (keys sorted,
/// no whitespace — docs/FORMAT.md §3). Never hashed in clear, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Details(Vec<u8>);

impl Details {
    /// Validates and canonicalises a JSON object. No key or string value, at any depth, may
    /// hold a control character other than `\n` and `\t` ([`check_details_string`]).
    pub fn from_object(obj: &Map<String, Value>) -> Result<Self, String> {
        if obj.is_empty() {
            return Err("must not be an empty object (omit it instead)".into());
        }
        check_details_strings(obj)?;
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

/// Walks every key and string value of a details object. Messages say whether a key or a
/// value is to blame, never which one: both can be personal data.
fn check_details_strings(obj: &Map<String, Value>) -> Result<(), String> {
    fn value(v: &Value) -> Result<(), String> {
        match v {
            Value::String(s) => check_details_string(s).map_err(|e| format!("a string value {e}")),
            Value::Array(items) => items.iter().try_for_each(value),
            Value::Object(m) => object(m),
            Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
        }
    }
    fn object(m: &Map<String, Value>) -> Result<(), String> {
        m.iter().try_for_each(|(k, v)| {
            check_details_string(k).map_err(|e| format!("a key {e}"))?;
            value(v)
        })
    }
    object(obj)
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
    /// The JSON Schema (2020-12) of one event as callers send it: one alternative per kind a
    /// caller may append, each with the common fields (`subject` and `details` for subject
    /// kinds only) and the kind's own, built from the same table as the parser. What JSON
    /// Schema cannot say — the input rules for text (NFC, no format characters), the order
    /// of steps (a request fulfilled after it was received) — is checked on append, and
    /// refused with `line N: field F: …`.
    ///
    /// Returns the event schema and the schema of a value inside `details` (recursive: it
    /// refers to itself, and the event schema to it, by `detail_value_ref`, the JSON pointer
    /// where the caller puts it, e.g. `#/components/schemas/DetailValue`).
    pub fn json_schemas(detail_value_ref: &str) -> (Value, Value) {
        let details_string =
            serde_json::json!({"type": "string", "pattern": "^[^\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f]*$"});
        let detail_value = serde_json::json!({"anyOf": [
            details_string,
            {"type": ["number", "boolean", "null"]},
            {"type": "array", "items": {"$ref": detail_value_ref}},
            {"type": "object", "propertyNames": details_string, "additionalProperties": {"$ref": detail_value_ref}},
        ]});
        let mut kinds = Vec::new();
        for (name, _, scope) in EventKind::TABLE {
            if *scope == Scope::Ledger {
                continue;
            }
            let mut props = Map::new();
            let mut required = vec![Value::from("type"), Value::from("controller")];
            props.insert("type".into(), serde_json::json!({"const": name}));
            props.insert("controller".into(), crate::field::id_schema());
            if *scope == Scope::Subject {
                props.insert(
                    "subject".into(),
                    serde_json::json!({"type": "string", "minLength": 1, "maxLength": 64, "pattern": crate::text::schema_pattern(false),
                        "description": "The controller's customer reference: 1–256 bytes of UTF-8 (the schema's 64 characters are what always fits), Unicode NFC, no control or format characters, no leading or trailing whitespace"}),
                );
                required.push("subject".into());
                props.insert(
                    "details".into(),
                    serde_json::json!({"type": "object", "minProperties": 1, "propertyNames": details_string,
                        "additionalProperties": {"$ref": detail_value_ref},
                        "description": "Personal data, stored encrypted under the customer's key and erasable: at most 16 KiB as canonical JSON; no control characters but newline and tab in keys and strings"}),
                );
            }
            props.insert("occurred_at".into(), <Option<Timestamp> as crate::field::FieldCodec>::json_schema());
            props.insert(
                "event_id".into(),
                serde_json::json!({"anyOf": [
                    {"type": "string", "format": "uuid", "not": {"const": "00000000-0000-0000-0000-000000000000"}},
                    {"type": "null"},
                ]}),
            );
            props.insert("actor".into(), <Option<Id> as crate::field::FieldCodec>::json_schema());
            for (field, mut schema, needed) in EventKind::field_schemas(name).unwrap_or_default() {
                if field == "authority_country" {
                    // A supervisory authority is one EEA member state's (Art 51).
                    schema = serde_json::json!({"type": "string", "enum": crate::CountryCode::eea_members()});
                }
                props.insert(field.into(), schema);
                if needed {
                    required.push(field.into());
                }
            }
            kinds.push(serde_json::json!({
                "title": name,
                "type": "object",
                "properties": props,
                "required": required,
                "additionalProperties": false,
            }));
        }
        (serde_json::json!({"description": "One event (docs/EVENTS.md)", "oneOf": kinds}), detail_value)
    }

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
        kind.check_input().map_err(|(f, m)| DraftError::field(f, m))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> DraftError {
        Draft::from_json_str(json).unwrap_err()
    }

    #[test]
    fn subject_lookalikes_are_refused_naming_the_field() {
        let line = |s: &str| {
            serde_json::json!({"type": "consent_withdrawn", "controller": "kalejdo", "subject": s, "purpose": "marketing"})
                .to_string()
        };
        assert!(Draft::from_json_str(&line("\u{c5}sa-1")).is_ok());
        for s in ["A\u{30a}sa-1", "\u{c5}sa\u{200b}-1", "\u{c5}sa-1 ", "\u{feff}\u{c5}sa-1", "\u{202e}\u{c5}sa-1"] {
            let e = err(&line(s));
            assert_eq!(e.field.as_deref(), Some("subject"), "{s:?}: {e}");
            assert!(!e.to_string().contains("sa-1"), "the value is personal data: {e}");
        }
    }

    #[test]
    fn every_free_text_field_follows_the_input_rules() {
        let cases = [
            (
                r#"{"type":"processing_restricted","controller":"k","subject":"c-1","reason":"x\u202ey"}"#,
                "reason",
                "U+202E",
            ),
            (
                r#"{"type":"restriction_lifted","controller":"k","subject":"c-1","reason":"ring\u0007"}"#,
                "reason",
                "control character U+0007",
            ),
            (
                r#"{"type":"relationship_ended","controller":"k","subject":"c-1","reason":"slut "}"#,
                "reason",
                "leading or trailing whitespace",
            ),
            (
                r#"{"type":"purpose_declared","controller":"k","purpose":"p","description":"\ufeffM","legal_basis":"consent","register":"r"}"#,
                "description",
                "U+FEFF",
            ),
            (
                r#"{"type":"processor_registered","controller":"k","processor":"p","name":"A\u030asa AB","country":"SE","role":"processor"}"#,
                "name",
                "NFC",
            ),
            (
                r#"{"type":"processor_registered","controller":"k","processor":"p","name":"n","country":"SE","role":"processor","dpa_ref":"d\u200b1"}"#,
                "dpa_ref",
                "U+200B",
            ),
            (
                r#"{"type":"retention_rule_declared","controller":"k","register":"r","trigger":"collected","duration":"P1Y","statute":"BFL 7:2\r\n"}"#,
                "statute",
                "control character U+000D",
            ),
            (
                r#"{"type":"erasure_deferred","controller":"k","subject":"c-1","register":"r","statute":" BFL","until":"2030-01-01T00:00:00Z"}"#,
                "statute",
                "leading or trailing whitespace",
            ),
        ];
        for (json, field, why) in cases {
            let e = err(json);
            assert_eq!(e.field.as_deref(), Some(field), "{json}: {e}");
            assert!(e.message.contains(why), "{json}: {e}");
        }
        let ok = r#"{"type":"legal_hold_placed","controller":"k","subject":"c-1","hold_id":"h","reason":"Tvist om faktura\n\tsida 2"}"#;
        assert!(Draft::from_json_str(ok).is_ok());
    }

    #[test]
    fn details_refuse_control_characters_in_keys_and_values_only() {
        let line = |details: &str| {
            format!(r#"{{"type":"consent_given","controller":"k","subject":"c-1","purpose":"p","details":{details}}}"#)
        };
        for (details, why) in [
            (r#"{"name":"x\u001b[2K"}"#, "a string value contains control character U+001B"),
            (r#"{"a":{"b":["ok","\u0000"]}}"#, "a string value contains control character U+0000"),
            (r#"{"na\u0007me":"x"}"#, "a key contains control character U+0007"),
        ] {
            let e = err(&line(details));
            assert_eq!((e.field.as_deref(), e.message.as_str()), (Some("details"), why), "{details}");
        }
        // Personal data as it comes: newlines, tabs, NFD, spaces, zero-width characters.
        let ok = line(r#"{"address":"Storgatan 1\n\t123 45 Ort ","name":"A\u030asa\u200b","n":1,"t":true}"#);
        assert!(Draft::from_json_str(&ok).is_ok());
    }
}
