//! Timestamps: UTC microseconds since the Unix epoch, from 1970-01-01 to 9999-12-31.

use std::fmt;

/// Microseconds since 1970-01-01T00:00:00Z, UTC. Always within [`Timestamp::MIN`, `Timestamp::MAX`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

/// RFC 3339 in human-readable formats (JSON reports), i64 microseconds in binary ones
/// (persisted projections). Both validate the range on the way in.
impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() { s.serialize_str(&self.to_rfc3339()) } else { s.serialize_i64(self.0) }
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            Timestamp::parse_rfc3339(&s).map_err(serde::de::Error::custom)
        } else {
            Timestamp::from_micros(i64::deserialize(d)?).map_err(serde::de::Error::custom)
        }
    }
}

impl Timestamp {
    /// 1970-01-01T00:00:00Z.
    pub const MIN: Timestamp = Timestamp(0);
    /// 9999-12-31T23:59:59.999999Z.
    pub const MAX: Timestamp = Timestamp(253_402_300_799_999_999);

    /// Validates a microsecond count.
    pub fn from_micros(us: i64) -> Result<Self, String> {
        if (Self::MIN.0..=Self::MAX.0).contains(&us) {
            Ok(Self(us))
        } else {
            Err(format!("{us} µs is outside 1970-01-01..9999-12-31"))
        }
    }

    /// Microseconds since the epoch.
    pub fn as_micros(self) -> i64 {
        self.0
    }

    /// The current wall-clock time.
    pub fn now() -> Self {
        let us = chrono::Utc::now().timestamp_micros();
        Self(us.clamp(Self::MIN.0, Self::MAX.0))
    }

    /// Parses RFC 3339 (`2026-01-05T10:00:00Z`, offsets allowed, at most microsecond precision).
    pub fn parse_rfc3339(s: &str) -> Result<Self, String> {
        let dt = chrono::DateTime::parse_from_rfc3339(s)
            .map_err(|e| format!("{s:?} is not an RFC 3339 time ({e}); example: 2026-01-05T10:00:00Z"))?;
        if dt.timestamp_subsec_nanos() % 1000 != 0 {
            return Err(format!("{s:?} has sub-microsecond precision; kvitto stores microseconds"));
        }
        Self::from_micros(dt.timestamp_micros()).map_err(|_| format!("{s:?} is outside 1970..9999"))
    }

    /// RFC 3339 in UTC with microseconds only when non-zero.
    pub fn to_rfc3339(self) -> String {
        match chrono::DateTime::from_timestamp_micros(self.0) {
            Some(dt) => dt.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            None => format!("@{}us", self.0),
        }
    }

    /// Adds microseconds, saturating at [`Timestamp::MAX`].
    pub fn saturating_add_micros(self, us: i64) -> Self {
        Self(self.0.saturating_add(us).clamp(Self::MIN.0, Self::MAX.0))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let t = Timestamp::parse_rfc3339("2026-01-05T10:00:00Z").unwrap();
        assert_eq!(t.as_micros(), 1_767_607_200_000_000);
        assert_eq!(t.to_rfc3339(), "2026-01-05T10:00:00Z");
        let t = Timestamp::parse_rfc3339("2026-01-05T12:00:00.000250+02:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-01-05T10:00:00.000250Z");
    }

    #[test]
    fn serde_is_text_for_json_and_micros_for_binary() {
        let t = Timestamp::parse_rfc3339("2026-01-05T10:00:00Z").unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"2026-01-05T10:00:00Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>("\"2026-01-05T10:00:00Z\"").unwrap(), t);
        assert!(serde_json::from_str::<Timestamp>("\"1969-01-01T00:00:00Z\"").is_err());
    }

    #[test]
    fn rejects_out_of_range_and_garbage() {
        assert!(Timestamp::parse_rfc3339("1969-12-31T23:59:59Z").is_err());
        assert!(Timestamp::parse_rfc3339("2026-13-01T00:00:00Z").is_err());
        assert!(Timestamp::parse_rfc3339("yesterday").is_err());
        assert!(Timestamp::parse_rfc3339("2026-01-05T10:00:00.0000001Z").is_err());
        assert!(Timestamp::from_micros(-1).is_err());
        assert!(Timestamp::from_micros(Timestamp::MAX.as_micros() + 1).is_err());
        assert_eq!(Timestamp::MAX.to_rfc3339(), "9999-12-31T23:59:59.999999Z");
    }
}
