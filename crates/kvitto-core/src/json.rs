//! JSON helpers: strict parsing (duplicate keys rejected at every level) and canonical JSON.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

/// A JSON object whose keys are all distinct, at every level. serde_json keeps the last of
/// duplicate keys silently; in compliance data that would hide a conflict, so we refuse.
#[derive(Debug)]
pub struct StrictObject(pub Map<String, Value>);

impl<'de> Deserialize<'de> for StrictObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrictObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, access: A) -> Result<StrictObject, A::Error> {
                strict_map(access).map(StrictObject)
            }
        }
        d.deserialize_map(V)
    }
}

fn strict_map<'de, A: MapAccess<'de>>(mut access: A) -> Result<Map<String, Value>, A::Error> {
    let mut map = Map::new();
    while let Some(k) = access.next_key::<String>()? {
        if map.contains_key(&k) {
            return Err(serde::de::Error::custom(format!("duplicate field {k:?}")));
        }
        let StrictValue(v) = access.next_value()?;
        map.insert(k, v);
    }
    Ok(map)
}

/// Any JSON value with distinct keys in every object it contains.
#[derive(Debug)]
pub struct StrictValue(pub Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrictValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E>(self, b: bool) -> Result<StrictValue, E> {
                Ok(StrictValue(Value::Bool(b)))
            }
            fn visit_i64<E>(self, n: i64) -> Result<StrictValue, E> {
                Ok(StrictValue(Value::from(n)))
            }
            fn visit_u64<E>(self, n: u64) -> Result<StrictValue, E> {
                Ok(StrictValue(Value::from(n)))
            }
            fn visit_f64<E>(self, n: f64) -> Result<StrictValue, E> {
                Ok(StrictValue(serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)))
            }
            fn visit_str<E>(self, s: &str) -> Result<StrictValue, E> {
                Ok(StrictValue(Value::String(s.to_string())))
            }
            fn visit_string<E>(self, s: String) -> Result<StrictValue, E> {
                Ok(StrictValue(Value::String(s)))
            }
            fn visit_unit<E>(self) -> Result<StrictValue, E> {
                Ok(StrictValue(Value::Null))
            }
            fn visit_none<E>(self) -> Result<StrictValue, E> {
                Ok(StrictValue(Value::Null))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<StrictValue, D::Error> {
                StrictValue::deserialize(d)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<StrictValue, A::Error> {
                let mut out = Vec::new();
                while let Some(StrictValue(v)) = seq.next_element()? {
                    out.push(v);
                }
                Ok(StrictValue(Value::Array(out)))
            }
            fn visit_map<A: MapAccess<'de>>(self, access: A) -> Result<StrictValue, A::Error> {
                strict_map(access).map(|m| StrictValue(Value::Object(m)))
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses JSON text, refusing duplicate keys in any object.
pub fn parse_strict(text: &str) -> Result<Value, serde_json::Error> {
    serde_json::from_str::<StrictValue>(text).map(|v| v.0)
}

/// Canonical JSON: object keys sorted by their UTF-8 bytes, no whitespace, strings and
/// numbers as serde_json writes them. Independent of serde_json's `preserve_order` feature.
pub fn canonical_json(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(&Value::String((*k).clone()), out);
                out.push(b':');
                if let Some(val) = m.get(*k) {
                    write_canonical(val, out);
                }
            }
            out.push(b'}');
        }
        Value::Array(a) => {
            out.push(b'[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(v: &Value, out: &mut Vec<u8>) {
    // Serialising a scalar Value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, v);
}

use crate::event::{Event, EventKind, SubjectLink};
use crate::field::json_type;
use crate::ids::{Commitment, EventHash, EventId, Id, SubjectId};
use crate::time::Timestamp;

/// The sealed-event JSON form: every hashed field, named as in EVENTS.md plus the chain
/// fields (`seq`, `prev_hash`, `recorded_at`, `subject_id`, `subject_seq`, `subject_prev`,
/// `payload_commitment`). Used by golden vectors, `--json` output and bundles.
pub fn event_to_json(e: &Event) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("seq".into(), Value::from(e.seq));
    m.insert("prev_hash".into(), Value::String(e.prev_hash.to_hex()));
    m.insert("recorded_at".into(), Value::String(e.recorded_at.to_rfc3339()));
    m.insert("occurred_at".into(), Value::String(e.occurred_at.to_rfc3339()));
    m.insert("event_id".into(), Value::String(e.event_id.to_string()));
    m.insert("controller".into(), Value::String(e.controller.as_str().into()));
    m.insert("actor".into(), Value::String(e.actor.as_str().into()));
    if let Some(link) = &e.subject {
        m.insert("subject_id".into(), Value::String(link.subject.to_hex()));
        m.insert("subject_seq".into(), Value::from(link.subject_seq));
        if let Some(p) = &link.subject_prev {
            m.insert("subject_prev".into(), Value::String(p.to_hex()));
        }
    }
    m.insert("type".into(), Value::String(e.kind.name().into()));
    e.kind.to_json_fields(&mut m);
    if let Some(c) = &e.payload_commitment {
        m.insert("payload_commitment".into(), Value::String(c.to_hex()));
    }
    m
}

const SEALED_FIELDS: [&str; 13] = [
    "seq",
    "prev_hash",
    "recorded_at",
    "occurred_at",
    "event_id",
    "controller",
    "actor",
    "subject_id",
    "subject_seq",
    "subject_prev",
    "type",
    "payload_commitment",
    "hash",
];

/// Parses the sealed-event JSON form strictly (unknown fields rejected; `hash` is ignored
/// here — callers compare it). Errors name the field.
pub fn event_from_json(m: &Map<String, Value>) -> Result<Event, (String, String)> {
    let err = |f: &str, msg: String| (f.to_string(), msg);
    let get_str = |f: &str| -> Result<Option<&str>, (String, String)> {
        match m.get(f) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(err(f, format!("must be a string, got {}", json_type(v)))),
        }
    };
    let req_str = |f: &str| get_str(f)?.ok_or_else(|| err(f, "is required".into()));
    let get_u64 = |f: &str| -> Result<Option<u64>, (String, String)> {
        match m.get(f) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| err(f, "must be a non-negative integer".into())),
        }
    };
    let type_name = req_str("type")?;
    let kind_fields =
        EventKind::field_names(type_name).ok_or_else(|| err("type", format!("unknown event type {type_name:?}")))?;
    if let Some(k) = m.keys().find(|k| !SEALED_FIELDS.contains(&k.as_str()) && !kind_fields.contains(&k.as_str())) {
        return Err(err(k, "unknown field".into()));
    }
    let kind = EventKind::from_json(type_name, m).map_err(|(f, e)| (f.unwrap_or("type").to_string(), e))?;
    let hash32 = |f: &str| -> Result<Option<[u8; 32]>, (String, String)> {
        get_str(f)?.map(|s| EventHash::from_hex(s).map(|h| h.0).map_err(|e| err(f, e))).transpose()
    };
    let subject = match get_str("subject_id")? {
        None => None,
        Some(s) => Some(SubjectLink {
            subject: SubjectId::from_hex(s).map_err(|e| err("subject_id", e))?,
            subject_seq: get_u64("subject_seq")?
                .ok_or_else(|| err("subject_seq", "is required with subject_id".into()))?,
            subject_prev: hash32("subject_prev")?.map(EventHash),
        }),
    };
    Ok(Event {
        seq: get_u64("seq")?.ok_or_else(|| err("seq", "is required".into()))?,
        prev_hash: EventHash(hash32("prev_hash")?.ok_or_else(|| err("prev_hash", "is required".into()))?),
        recorded_at: Timestamp::parse_rfc3339(req_str("recorded_at")?).map_err(|e| err("recorded_at", e))?,
        occurred_at: Timestamp::parse_rfc3339(req_str("occurred_at")?).map_err(|e| err("occurred_at", e))?,
        event_id: EventId::parse(req_str("event_id")?).map_err(|e| err("event_id", e))?,
        controller: Id::new(req_str("controller")?).map_err(|e| err("controller", e))?,
        actor: Id::new(req_str("actor")?).map_err(|e| err("actor", e))?,
        subject,
        kind,
        payload_commitment: hash32("payload_commitment")?.map(Commitment),
    })
}

#[cfg(test)]
mod strict_tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused_at_every_level() {
        assert!(parse_strict(r#"{"events":[],"events":[1]}"#).unwrap_err().to_string().contains("duplicate field"));
        assert!(parse_strict(r#"{"a":{"b":1,"b":2}}"#).is_err());
        assert!(parse_strict(r#"[{"x":1},{"y":[{"z":1,"z":1}]}]"#).is_err());
        assert_eq!(parse_strict(r#"{"a":{"b":[1,"x",null,true,-2.5]}}"#).unwrap()["a"]["b"][4], -2.5);
        assert!(serde_json::from_str::<StrictObject>(r#"{"details":{"k":1,"k":2}}"#).is_err());
    }
}

#[cfg(test)]
mod number_tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trips(text: &str) {
        let v = parse_strict(text).unwrap();
        let c = canonical_json(&v);
        let again = canonical_json(&parse_strict(std::str::from_utf8(&c).unwrap()).unwrap());
        assert_eq!(String::from_utf8_lossy(&c), String::from_utf8_lossy(&again), "{text}");
    }

    #[test]
    fn numbers_keep_their_canonical_form() {
        // Integers beyond u64 become floats; the canonical text must parse back to itself
        // (serde_json's `float_roundtrip`: correctly rounded parsing).
        round_trips(r#"{"x":123456789012345680000}"#);
        round_trips(r#"{"x":1e300,"y":5e-324}"#);
        round_trips(r#"{"a":-0.0,"b":0.1,"c":1.0,"d":18446744073709551615,"e":-9223372036854775808}"#);
        let c = canonical_json(&parse_strict(r#"{"x":123456789012345680000,"y":1.50}"#).unwrap());
        assert_eq!(String::from_utf8(c).unwrap(), r#"{"x":1.2345678901234568e+20,"y":1.5}"#);
    }

    proptest! {
        #[test]
        fn any_float_round_trips(f in proptest::num::f64::NORMAL | proptest::num::f64::SUBNORMAL | proptest::num::f64::ZERO, i in any::<i64>(), digits in "[1-9][0-9]{0,30}") {
            round_trips(&format!(r#"{{"f":{f:e},"g":{f},"i":{i},"n":{digits}}}"#));
        }
    }
}
