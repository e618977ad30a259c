//! Identifier and text newtypes. Each constructor validates; a value of these types is valid.

use std::fmt;

/// Longest id in bytes (EVENTS.md).
pub const MAX_ID_LEN: usize = 128;
/// Longest free text in bytes (EVENTS.md).
pub const MAX_TEXT_LEN: usize = 4096;
/// Longest external subject reference in bytes.
pub const MAX_REF_LEN: usize = 256;

/// An identifier: 1–128 bytes of `[a-z0-9._:-]` (controller, purpose, register, processor, …).
///
/// Shared, not copied: a clone is a reference count, and the decoders ([`Id::interned`]) hand
/// out the same allocation for the same id read again on a thread — the few controllers,
/// purposes and actors of a ledger repeat in every event and in every projected state.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct Id(std::sync::Arc<str>);

impl serde::Serialize for Id {
    /// The plain string, written from the shared one (no copy).
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl TryFrom<String> for Id {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Id::interned(&s)
    }
}

impl From<Id> for String {
    fn from(id: Id) -> String {
        id.as_str().to_string()
    }
}

/// Ids decoded on this thread lately, by a hash of their bytes (a miss only costs the
/// allocation an id always cost).
const INTERNED: usize = 256;

thread_local! {
    static RECENT: std::cell::RefCell<[Option<Id>; INTERNED]> = const { std::cell::RefCell::new([const { None }; INTERNED]) };
}

impl Id {
    /// Validates `s` as an id.
    pub fn new(s: impl AsRef<str>) -> Result<Self, String> {
        let s = s.as_ref();
        Self::check(s)?;
        Ok(Self(std::sync::Arc::from(s)))
    }

    /// [`Id::new`], sharing the allocation of an equal id made the same way on this thread
    /// shortly before (the path of decoders, which read the same ids over and over).
    pub fn interned(s: &str) -> Result<Self, String> {
        // FNV-1a over the bytes: ids are short.
        let slot = s.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
            as usize
            % INTERNED;
        RECENT.with(|r| {
            let mut recent = r.borrow_mut();
            let entry = &mut recent[slot];
            if let Some(id) = entry.as_ref().filter(|id| id.as_str() == s) {
                return Ok(id.clone());
            }
            let id = Self::new(s)?;
            *entry = Some(id.clone());
            Ok(id)
        })
    }

    fn check(s: &str) -> Result<(), String> {
        if s.is_empty() {
            return Err("must not be empty".into());
        }
        if s.len() > MAX_ID_LEN {
            return Err(format!("is {} bytes; ids are at most {MAX_ID_LEN} bytes", s.len()));
        }
        if let Some(c) =
            s.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | ':' | '-')))
        {
            return Err(format!("contains {c:?}; ids use only a-z 0-9 . _ : -"));
        }
        Ok(())
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({:?})", self.0)
    }
}

/// Free text: 1–4096 bytes of UTF-8 (description, reason, name, statute).
///
/// [`Text::new`] applies the input rules to new text; [`Text::stored`] only the rules text
/// was stored under before them, for values read back (canonical bytes, sealed JSON, serde).
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Text(String);

/// serde reads back what kvitto wrote (projection snapshots): the stored rules.
impl TryFrom<String> for Text {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Text::stored(s)
    }
}

impl From<Text> for String {
    fn from(t: Text) -> String {
        t.0
    }
}

impl Text {
    /// Validates `s` as new free text: the stored rules of [`Text::stored`], and the input
    /// rules ([`crate::text::check_free_text`]): Unicode NFC, no control character other than
    /// `\n` and `\t`, no format character (zero-width, BOM, bidi), no leading or trailing
    /// whitespace.
    pub fn new(s: impl Into<String>) -> Result<Self, String> {
        let t = Self::stored(s)?;
        crate::text::check_free_text(&t.0)?;
        Ok(t)
    }

    /// Validates `s` as free text read back from storage, by the rules every stored text
    /// was written under: not only whitespace, at most 4096 bytes, no NUL. Events written
    /// before the input rules decode with it; new input goes through [`Text::new`].
    pub fn stored(s: impl Into<String>) -> Result<Self, String> {
        let s = s.into();
        if s.trim().is_empty() {
            return Err("must not be empty".into());
        }
        if s.len() > MAX_TEXT_LEN {
            return Err(format!("is {} bytes; text is at most {MAX_TEXT_LEN} bytes", s.len()));
        }
        if s.contains('\0') {
            return Err("contains a NUL character".into());
        }
        Ok(Self(s))
    }

    /// The text as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Text({} bytes)", self.0.len())
    }
}

/// The controller's own reference for a customer. Personal data: it never enters hashed
/// bytes, sled or logs; it only feeds the keyed pseudonym and the key vault file.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ExternalRef(String);

impl ExternalRef {
    /// Validates a new reference: the stored rules of [`ExternalRef::stored`], and the input
    /// rules ([`crate::text::check_reference`]): Unicode NFC, no control character, no format
    /// character (zero-width, BOM, bidi), no leading or trailing whitespace — one customer,
    /// one spelling.
    pub fn new(s: impl Into<String>) -> Result<Self, String> {
        let r = Self::stored(s)?;
        crate::text::check_reference(&r.0)?;
        Ok(r)
    }

    /// Validates a reference by the rules references were written under before the input
    /// rules: 1–256 bytes of UTF-8 without control characters. For finding a subject that
    /// already exists (queries, erasure, the key vault's copy); a draft naming a new
    /// customer must use [`ExternalRef::new`].
    pub fn stored(s: impl Into<String>) -> Result<Self, String> {
        let s = s.into();
        if s.is_empty() {
            return Err("must not be empty".into());
        }
        if s.len() > MAX_REF_LEN {
            return Err(format!("is {} bytes; subject references are at most {MAX_REF_LEN} bytes", s.len()));
        }
        if let Some(c) = s.chars().find(|c| c.is_control()) {
            return Err(format!("contains control character U+{:04X}", c as u32));
        }
        Ok(Self(s))
    }

    /// The reference. Do not log it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ExternalRef {
    // Never print the reference itself: Debug output ends up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ExternalRef(<redacted>)")
    }
}

macro_rules! byte_newtype {
    ($(#[$doc:meta])* $name:ident, $len:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Lowercase hex of the bytes.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// Parses exactly
            #[doc = concat!(stringify!($len), " bytes of hex.")]
            pub fn from_hex(s: &str) -> Result<Self, String> {
                let mut out = [0u8; $len];
                hex::decode_to_slice(s, &mut out)
                    .map_err(|_| format!("must be {} hex digits", 2 * $len))?;
                Ok(Self(out))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
    };
}

byte_newtype!(
    /// BLAKE3 hash of an event's canonical preimage (docs/FORMAT.md).
    EventHash,
    32
);
byte_newtype!(
    /// Keyed pseudonym of (controller, external reference); see [`crate::pseudonym`].
    SubjectId,
    16
);
byte_newtype!(
    /// `blake3(salt ‖ canonical details)`: what an event commits to about its encrypted payload.
    Commitment,
    32
);

byte_newtype!(
    /// BLAKE3 hash of a published privacy notice's text (hex in JSON).
    TextHash,
    32
);

/// A hasher for maps keyed by [`SubjectId`]. Subject ids are keyed BLAKE3 outputs: uniform,
/// and unpredictable without the ledger secret, so SipHash's flooding protection buys
/// nothing there; a multiply-xor mix is several times cheaper. Do not use it for keys that
/// outsiders choose (event ids, external references).
#[derive(Default, Clone, Copy, Debug)]
pub struct SubjectIdHasher(u64);

impl std::hash::Hasher for SubjectIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
    }
}

/// A `HashMap` keyed by [`SubjectId`], hashed with [`SubjectIdHasher`].
pub type SubjectMap<V> = std::collections::HashMap<SubjectId, V, std::hash::BuildHasherDefault<SubjectIdHasher>>;

/// An event's idempotency key (a UUID; v7 when kvitto generates it).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(pub uuid::Uuid);

impl EventId {
    /// A fresh UUID v7.
    pub fn new_v7() -> Self {
        Self(uuid::Uuid::now_v7())
    }

    /// The 16 raw bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// Parses the hyphenated UUID form.
    pub fn parse(s: &str) -> Result<Self, String> {
        let id = uuid::Uuid::try_parse(s).map_err(|_| "must be a UUID like 0192f1c4-7a3e-7c2d-9b1a-2f3e4d5c6b7a")?;
        if id.is_nil() {
            // Every caller that forgot to set an id would collide on it.
            return Err("must not be the nil UUID (omit it to get a fresh one)".into());
        }
        Ok(Self(id))
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({})", self.0)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_charset_and_length() {
        assert!(Id::new("komteknik-el").is_ok());
        assert!(Id::new("a.b_c:d-9").is_ok());
        assert_eq!(Id::new("").unwrap_err(), "must not be empty");
        assert!(Id::new("Kalejdo").unwrap_err().contains("'K'"));
        assert!(Id::new("a b").unwrap_err().contains("' '"));
        assert!(Id::new("x".repeat(128)).is_ok());
        assert!(Id::new("x".repeat(129)).unwrap_err().contains("129 bytes"));
    }

    #[test]
    fn interned_ids_are_shared_and_checked_alike() {
        let a = Id::interned("kalejdo.marketing").unwrap();
        let b = Id::interned("kalejdo.marketing").unwrap();
        assert!(std::sync::Arc::ptr_eq(&a.0, &b.0), "the same id read twice on a thread shares one allocation");
        assert_eq!(a, Id::new("kalejdo.marketing").unwrap());
        for bad in ["", "Kalejdo", "a b"] {
            assert_eq!(Id::interned(bad).unwrap_err(), Id::new(bad).unwrap_err());
        }
        // Far more ids than slots: every one still reads back as itself.
        let many: Vec<String> = (0..3 * INTERNED).map(|i| format!("purpose-{i}")).collect();
        for _ in 0..2 {
            for s in &many {
                assert_eq!(Id::interned(s).unwrap().as_str(), s);
            }
        }
        // Deserialized ids are interned too, and serialize as the plain string.
        let id: Id = serde_json::from_str("\"kalejdo.marketing\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"kalejdo.marketing\"");
        assert!(serde_json::from_str::<Id>("\"Nope\"").is_err());
    }

    #[test]
    fn text_bounds() {
        assert!(Text::new("ok").is_ok());
        assert!(Text::new("   ").is_err());
        assert!(Text::new("å".repeat(2048)).is_ok());
        assert!(Text::new("å".repeat(2049)).is_err());
    }

    /// The five lookalikes of `Åsa-1` of issue 12, and what each is refused for.
    const LOOKALIKES: [(&str, &str); 5] = [
        ("A\u{30a}sa-1", "is not in Unicode NFC form"),
        ("\u{c5}sa\u{200b}-1", "contains U+200B (a format character"),
        ("\u{c5}sa-1 ", "has leading or trailing whitespace"),
        ("\u{feff}\u{c5}sa-1", "contains U+FEFF (a format character"),
        ("\u{202e}\u{c5}sa-1", "contains U+202E (a format character"),
    ];

    #[test]
    fn external_ref_input_rules_refuse_lookalikes_and_stored_keeps_them() {
        assert_eq!(ExternalRef::new("\u{c5}sa-1").unwrap().as_str(), "Åsa-1");
        for (s, why) in LOOKALIKES {
            let e = ExternalRef::new(s).unwrap_err();
            assert!(e.starts_with(why), "{s:?}: {e}");
            // What an older ledger wrote still names its subject.
            assert_eq!(ExternalRef::stored(s).unwrap().as_str(), s);
        }
        assert_eq!(ExternalRef::new("cust\u{7}1").unwrap_err(), "contains control character U+0007");
        assert_eq!(ExternalRef::new("cust\t1").unwrap_err(), "contains control character U+0009");
        assert!(ExternalRef::stored("cust\u{7}1").is_err(), "controls were refused before the input rules too");
        assert!(ExternalRef::new("x".repeat(257)).unwrap_err().contains("257 bytes"));
    }

    #[test]
    fn text_input_rules_and_stored_text() {
        assert_eq!(Text::new("rad ett\nrad två\tslut").unwrap().as_str(), "rad ett\nrad två\tslut");
        assert_eq!(Text::new("ring\u{7}").unwrap_err(), "contains control character U+0007");
        assert_eq!(Text::new("a\r\nb").unwrap_err(), "contains control character U+000D");
        assert!(Text::new("kund\u{202e}fel").unwrap_err().contains("U+202E"));
        assert!(Text::new("\u{feff}Art 17").unwrap_err().contains("U+FEFF"));
        assert!(Text::new("Art\u{200b}17").unwrap_err().contains("U+200B"));
        assert_eq!(Text::new("Art 17 ").unwrap_err(), "has leading or trailing whitespace");
        assert_eq!(Text::new("\tArt 17").unwrap_err(), "has leading or trailing whitespace");
        assert!(Text::new("A\u{30a}sa").unwrap_err().contains("NFC"));
        for s in ["ring\u{7}", "a\r\nb", "kund\u{202e}fel", "Art 17 ", "A\u{30a}sa", "\u{feff}x"] {
            assert_eq!(Text::stored(s).unwrap().as_str(), s);
        }
        assert!(
            Text::stored("nul\0").is_err() && Text::stored(" ").is_err() && Text::stored("å".repeat(2049)).is_err()
        );
        // serde reads back stored text (projection snapshots).
        let t: Text = serde_json::from_str("\"Art 17 \"").unwrap();
        assert_eq!(t.as_str(), "Art 17 ");
    }

    #[test]
    fn external_ref_is_redacted_in_debug() {
        let r = ExternalRef::new("cust-1001").unwrap();
        assert!(!format!("{r:?}").contains("1001"));
    }
}
