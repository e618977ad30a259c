//! How each field type becomes canonical bytes and JSON, and back.
//!
//! One trait, [`FieldCodec`], is implemented once per field type; the event kind table in
//! [`crate::event`] is written once and generates every kind's encoder, decoder, JSON parser
//! and JSON renderer from it, so the four cannot drift apart.

use serde_json::Value;

use crate::country::CountryCode;
use crate::event::Categories;
use crate::ids::{Id, Text, TextHash};
use crate::period::{IsoPeriod, MonthDay};
use crate::time::Timestamp;

/// Why canonical bytes could not be decoded. Decoding is strict: no defaults, no trailing bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at byte {offset}: {what}")]
pub struct DecodeError {
    /// Byte offset in the input where the problem was found.
    pub offset: usize,
    /// What was wrong.
    pub what: String,
}

/// A cursor over canonical bytes.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// An error at the current position.
    pub fn error(&self, what: impl Into<String>) -> DecodeError {
        DecodeError { offset: self.pos, what: what.into() }
    }

    /// Takes exactly `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() - self.pos < n {
            return Err(self.error(format!("truncated: need {n} more bytes, have {}", self.buf.len() - self.pos)));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Takes a fixed-size array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// u8.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }
    /// Big-endian u16.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    /// Big-endian u32.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    /// Big-endian u64.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    /// Big-endian i64.
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// A u32-length-prefixed UTF-8 string.
    pub fn str(&mut self) -> Result<&'a str, DecodeError> {
        let len = self.u32()? as usize;
        let start = self.pos;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map_err(|_| DecodeError { offset: start, what: "invalid UTF-8".into() })
    }

    /// A presence byte: 0 absent, 1 present, anything else is an error.
    pub fn presence(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(DecodeError { offset: self.pos - 1, what: format!("presence byte {b}, expected 0 or 1") }),
        }
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(self.error(format!("{} trailing bytes", self.buf.len() - self.pos)))
        }
    }

    /// Current offset.
    pub fn position(&self) -> usize {
        self.pos
    }
}

/// Appends a u32-length-prefixed UTF-8 string.
pub fn put_str(out: &mut Vec<u8>, s: &str) {
    // Field validation bounds every string far below u32::MAX.
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A field type of an event kind: canonical bytes (docs/FORMAT.md) and JSON (EVENTS.md).
pub trait FieldCodec: Sized {
    /// Appends the canonical bytes.
    fn encode(&self, out: &mut Vec<u8>);
    /// Reads the canonical bytes strictly (by the rules values were stored under).
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
    /// Parses the JSON value; `None` means the field is absent. Shared by drafts and the
    /// sealed-event JSON form, so it checks what [`FieldCodec::decode`] checks; drafts add
    /// [`FieldCodec::check_input`].
    fn from_json(v: Option<&Value>) -> Result<Self, String>;
    /// The JSON value; `None` means omit the field.
    fn to_json(&self) -> Option<Value>;
    /// The rules for new input beyond those of stored values (docs/EVENTS.md, "Input rules
    /// for text"): nothing for most types.
    fn check_input(&self) -> Result<(), String> {
        Ok(())
    }
    /// The JSON Schema of the value (the HTTP API's `Event` schema is built from these, so
    /// it cannot drift from the parser).
    fn json_schema() -> Value;
    /// Whether the field must be present.
    const REQUIRED: bool = true;
}

/// The JSON Schema of an id: 1–128 bytes of `[a-z0-9._:-]`.
pub fn id_schema() -> Value {
    serde_json::json!({"type": "string", "pattern": "^[a-z0-9._:-]{1,128}$"})
}

fn pattern(p: &str) -> Value {
    serde_json::json!({"type": "string", "pattern": p})
}

fn required(v: Option<&Value>) -> Result<&Value, String> {
    match v {
        None | Some(Value::Null) => Err("is required".into()),
        Some(v) => Ok(v),
    }
}

fn json_str(v: Option<&Value>) -> Result<&str, String> {
    match required(v)? {
        Value::String(s) => Ok(s),
        other => Err(format!("must be a string, got {}", json_type(other))),
    }
}

/// The JSON type name of a value, for error messages.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl FieldCodec for Id {
    fn json_schema() -> Value {
        id_schema()
    }
    fn encode(&self, out: &mut Vec<u8>) {
        put_str(out, self.as_str());
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let at = r.position();
        Id::interned(r.str()?).map_err(|e| DecodeError { offset: at, what: format!("id {e}") })
    }
    fn from_json(v: Option<&Value>) -> Result<Self, String> {
        Id::new(json_str(v)?)
    }
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.as_str().into()))
    }
}

impl FieldCodec for Text {
    fn json_schema() -> Value {
        serde_json::json!({"type": "string", "minLength": 1, "maxLength": 1024, "pattern": crate::text::schema_pattern(true), "description": "Free text: 1–4096 bytes of UTF-8 (the schema's 1024 characters are what always fits), Unicode NFC, no control characters but newline and tab inside, no format characters, no leading or trailing whitespace (docs/EVENTS.md, input rules)"})
    }
    fn encode(&self, out: &mut Vec<u8>) {
        put_str(out, self.as_str());
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let at = r.position();
        // Stored text keeps the rules it was written under: an old ledger still decodes.
        Text::stored(r.str()?).map_err(|e| DecodeError { offset: at, what: format!("text {e}") })
    }
    fn from_json(v: Option<&Value>) -> Result<Self, String> {
        Text::stored(json_str(v)?)
    }
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.as_str().into()))
    }
    fn check_input(&self) -> Result<(), String> {
        crate::text::check_free_text(self.as_str())
    }
}

impl<T: FieldCodec> FieldCodec for Option<T> {
    const REQUIRED: bool = false;
    fn json_schema() -> Value {
        // Absent or null: the parser takes both.
        serde_json::json!({"anyOf": [T::json_schema(), {"type": "null"}]})
    }
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                v.encode(out);
            }
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        if r.presence()? { Ok(Some(T::decode(r)?)) } else { Ok(None) }
    }
    fn from_json(v: Option<&Value>) -> Result<Self, String> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(v) => T::from_json(Some(v)).map(Some),
        }
    }
    fn to_json(&self) -> Option<Value> {
        self.as_ref().and_then(T::to_json)
    }
    fn check_input(&self) -> Result<(), String> {
        self.as_ref().map_or(Ok(()), T::check_input)
    }
}

/// A trailing field of an extended kind layout: optional, and able to say whether it is set.
pub trait OptionalField {
    /// Whether the field has a value.
    fn is_present(&self) -> bool;
}

impl<T> OptionalField for Option<T> {
    fn is_present(&self) -> bool {
        self.is_some()
    }
}

impl FieldCodec for MonthDay {
    fn json_schema() -> Value {
        pattern(
            "^((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)|02-(0[1-9]|1[0-9]|2[0-9]))$",
        )
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.month());
        out.push(self.day());
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let at = r.position();
        let [month, day] = r.array::<2>()?;
        MonthDay::new(month, day).map_err(|e| DecodeError { offset: at, what: format!("month-day {e}") })
    }
    fn from_json(v: Option<&Value>) -> Result<Self, String> {
        MonthDay::parse(json_str(v)?)
    }
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.to_string()))
    }
}

impl FieldCodec for Categories {
    fn json_schema() -> Value {
        serde_json::json!({"type": "array", "items": id_schema(), "minItems": 1, "maxItems": Categories::MAX, "uniqueItems": true})
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.as_slice().len() as u32).to_be_bytes());
        for c in self.as_slice() {
            put_str(out, c.as_str());
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let at = r.position();
        let n = r.u32()? as usize;
        if n > Categories::MAX {
            return Err(DecodeError { offset: at, what: format!("{n} categories; at most {}", Categories::MAX) });
        }
        let items = (0..n).map(|_| Id::decode(r)).collect::<Result<Vec<_>, _>>()?;
        Categories::new(items).map_err(|e| DecodeError { offset: at, what: format!("categories {e}") })
    }
    fn from_json(v: Option<&Value>) -> Result<Self, String> {
        let Value::Array(items) = required(v)? else {
            return Err(format!("must be a list of ids, got {}", json_type(required(v)?)));
        };
        let ids = items
            .iter()
            .enumerate()
            .map(|(i, item)| Id::from_json(Some(item)).map_err(|e| format!("item {i} {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Categories::new(ids)
    }
    fn to_json(&self) -> Option<Value> {
        Some(Value::Array(self.as_slice().iter().map(|c| Value::String(c.as_str().into())).collect()))
    }
}

impl FieldCodec for CountryCode {
    fn json_schema() -> Value {
        serde_json::json!({"type": "string", "enum": CountryCode::accepted().collect::<Vec<_>>()})
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.bytes());
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let at = r.position();
        let b = r.array::<2>()?;
        let s = std::str::from_utf8(&b).map_err(|_| DecodeError { offset: at, what: "country not ASCII".into() })?;
        CountryCode::new(s).map_err(|e| DecodeError { offset: at, what: e })
    }
    fn from_json(v: Option<&Value>) -> Result<Self, String> {
        CountryCode::new(json_str(v)?)
    }
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.as_str().into()))
    }
}

impl FieldCodec for IsoPeriod {
    fn json_schema() -> Value {
        pattern("^P(?=[0-9T])([0-9]+Y)?([0-9]+M)?([0-9]+W)?([0-9]+D)?(T(?=[0-9])([0-9]+H)?([0-9]+M)?([0-9]+S)?)?$")
    }
    fn encode(&self, out: &mut Vec<u8>) {
        for n in [self.years, self.months, self.weeks, self.days, self.hours, self.minutes, self.seconds] {
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(IsoPeriod {
            years: r.u32()?,
            months: r.u32()?,
            weeks: r.u32()?,
            days: r.u32()?,
            hours: r.u32()?,
            minutes: r.u32()?,
            seconds: r.u32()?,
        })
    }
    fn from_json(v: Option<&Value>) -> Result<Self, String> {
        IsoPeriod::parse(json_str(v)?)
    }
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.to_string()))
    }
}

impl FieldCodec for Timestamp {
    fn json_schema() -> Value {
        // RFC 3339 in the ledger's range (1970–9999), to the microsecond.
        serde_json::json!({"type": "string", "format": "date-time",
            "pattern": "^(19[7-9][0-9]|[2-9][0-9]{3})-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,6})?([Zz]|[+-][0-9]{2}:[0-9]{2})$"})
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.as_micros().to_be_bytes());
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let at = r.position();
        Timestamp::from_micros(r.i64()?).map_err(|e| DecodeError { offset: at, what: e })
    }
    fn from_json(v: Option<&Value>) -> Result<Self, String> {
        Timestamp::parse_rfc3339(json_str(v)?)
    }
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.to_rfc3339()))
    }
}

impl FieldCodec for TextHash {
    fn json_schema() -> Value {
        pattern("^[0-9a-f]{64}$")
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(TextHash(r.array()?))
    }
    fn from_json(v: Option<&Value>) -> Result<Self, String> {
        let s = json_str(v)?;
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err("must be lowercase hex".into());
        }
        TextHash::from_hex(s)
    }
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.to_hex()))
    }
}

/// Declares an enum whose values have a fixed snake_case name (JSON) and u8 code (canonical).
macro_rules! code_enum {
    ($(#[$doc:meta])* $name:ident { $( $(#[$vdoc:meta])* $variant:ident = $code:literal, $text:literal; )+ }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $( $(#[$vdoc])* $variant, )+
        }

        impl $name {
            /// Every value, in code order.
            pub const ALL: &'static [$name] = &[$( $name::$variant ),+];

            /// The JSON name.
            pub fn as_str(self) -> &'static str {
                match self { $( $name::$variant => $text, )+ }
            }

            /// The canonical code.
            pub fn code(self) -> u8 {
                match self { $( $name::$variant => $code, )+ }
            }

            /// The value for a canonical code.
            pub fn from_code(code: u8) -> Option<Self> {
                match code { $( $code => Some($name::$variant), )+ _ => None }
            }

            /// Parses the JSON name.
            pub fn parse(s: &str) -> Result<Self, String> {
                match s {
                    $( $text => Ok($name::$variant), )+
                    _ => Err(format!(
                        "{s:?} is not one of {}",
                        [$( $text ),+].join(", ")
                    )),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl $crate::field::FieldCodec for $name {
            fn json_schema() -> serde_json::Value {
                serde_json::json!({"type": "string", "enum": [$( $text ),+]})
            }
            fn encode(&self, out: &mut Vec<u8>) {
                out.push(self.code());
            }
            fn decode(r: &mut $crate::field::Reader<'_>) -> Result<Self, $crate::field::DecodeError> {
                let code = r.u8()?;
                $name::from_code(code).ok_or_else(|| $crate::field::DecodeError {
                    offset: r.position() - 1,
                    what: format!("unknown {} code {code}", stringify!($name)),
                })
            }
            fn from_json(v: Option<&serde_json::Value>) -> Result<Self, String> {
                match v {
                    None | Some(serde_json::Value::Null) => Err("is required".into()),
                    Some(serde_json::Value::String(s)) => $name::parse(s),
                    Some(other) => Err(format!("must be a string, got {}", $crate::field::json_type(other))),
                }
            }
            fn to_json(&self) -> Option<serde_json::Value> {
                Some(serde_json::Value::String(self.as_str().into()))
            }
        }
    };
}
pub(crate) use code_enum;

/// `u64` (tree sizes, counts): 8 bytes big-endian; a JSON unsigned integer.
impl FieldCodec for u64 {
    fn json_schema() -> Value {
        serde_json::json!({"type": "integer", "minimum": 0})
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.u64()
    }
    fn from_json(v: Option<&Value>) -> Result<Self, String> {
        required(v)?.as_u64().ok_or_else(|| "must be an unsigned integer".to_string())
    }
    fn to_json(&self) -> Option<Value> {
        Some(Value::from(*self))
    }
}
