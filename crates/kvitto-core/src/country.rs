//! ISO 3166-1 alpha-2 country codes (the 249 officially assigned codes), `EU` for "an EU
//! member state, not named", and `ZZ` for a country the controller has not stated.

use std::fmt;

/// The officially assigned ISO 3166-1 alpha-2 codes, sorted.
const ASSIGNED: [&str; 249] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ", "BA", "BB", "BD",
    "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS", "BT", "BV", "BW", "BY", "BZ", "CA",
    "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN", "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE",
    "DJ", "DK", "DM", "DO", "DZ", "EC", "EE", "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA",
    "GB", "GD", "GE", "GF", "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK",
    "HM", "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM", "JO", "JP",
    "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC", "LI", "LK", "LR", "LS", "LT",
    "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK", "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS",
    "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA", "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ",
    "OM", "PA", "PE", "PF", "PG", "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS",
    "RU", "RW", "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS", "ST",
    "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO", "TR", "TT", "TV", "TW",
    "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI", "VN", "VU", "WF", "WS", "YE", "YT", "ZA",
    "ZM", "ZW",
];

/// Members of the European Economic Area (EU + IS, LI, NO): transfers outside need a mechanism.
const EEA: [&str; 30] = [
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV", "LT", "LU", "MT",
    "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO",
];

/// An officially assigned ISO 3166-1 alpha-2 code, uppercase (`SE`, `DK`, `GB`), or
/// [`CountryCode::NOT_STATED`] (`ZZ`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CountryCode([u8; 2]);

impl TryFrom<String> for CountryCode {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        CountryCode::new(&s)
    }
}

impl From<CountryCode> for String {
    fn from(c: CountryCode) -> String {
        c.as_str().to_string()
    }
}

impl CountryCode {
    /// `ZZ`: the country was not stated (e.g. a cloud processor a privacy policy names without
    /// saying where it processes, seed 001). ISO 3166-1 leaves `ZZ` to users; Unicode CLDR uses
    /// it for "Unknown Region". With [`CountryCode::EU`] it is one of the two codes outside the
    /// assigned list that are accepted, so an unknown country is recorded as unknown instead of
    /// as an invented one.
    pub const NOT_STATED: CountryCode = CountryCode(*b"ZZ");

    /// `EU`: processed in the European Union, the member state not named (seed 000:
    /// "Region för Behandling av Personuppgift: EU"). ISO 3166-1 reserves `EU` exceptionally
    /// for the European Union; it is inside the EEA.
    pub const EU: CountryCode = CountryCode(*b"EU");

    /// Validates an uppercase two-letter code against the assigned list (or `EU`, `ZZ`).
    pub fn new(s: &str) -> Result<Self, String> {
        if s == "ZZ" {
            Ok(Self::NOT_STATED)
        } else if s == "EU" {
            Ok(Self::EU)
        } else if ASSIGNED.binary_search(&s).is_ok() {
            let b = s.as_bytes();
            Ok(Self([b[0], b[1]]))
        } else if ASSIGNED.binary_search(&s.to_ascii_uppercase().as_str()).is_ok() {
            Err(format!("{s:?} must be uppercase ({:?})", s.to_ascii_uppercase()))
        } else {
            Err(format!(
                "{s:?} is not an assigned ISO 3166-1 alpha-2 code (e.g. SE, DK, GB, US; EU for an EU member state not named; ZZ when the country is not stated)"
            ))
        }
    }

    /// Every code [`CountryCode::new`] accepts: the assigned list, `EU` and `ZZ`.
    pub fn accepted() -> impl Iterator<Item = &'static str> {
        ASSIGNED.iter().copied().chain(["EU", "ZZ"])
    }

    /// The EEA member states (a supervisory authority's country is one of them).
    pub fn eea_members() -> &'static [&'static str] {
        &EEA
    }

    /// The two ASCII bytes.
    pub fn bytes(&self) -> [u8; 2] {
        self.0
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Only constructed from ASCII entries of ASSIGNED.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }

    /// Whether the country is in the EEA (`false` for [`CountryCode::NOT_STATED`]: see
    /// [`CountryCode::third_country`] for the answer that keeps "unknown" apart).
    pub fn in_eea(&self) -> bool {
        *self == Self::EU || EEA.contains(&self.as_str())
    }

    /// Whether a country was stated (anything but `ZZ`).
    pub fn is_stated(&self) -> bool {
        *self != Self::NOT_STATED
    }

    /// Outside the EEA (a third country, Chapter V): `None` when the country was not stated,
    /// so unknown is never taken for "inside the EEA" nor for "outside".
    pub fn third_country(&self) -> Option<bool> {
        self.is_stated().then(|| !self.in_eea())
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl fmt::Debug for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CountryCode({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_is_sorted_and_validates() {
        assert!(ASSIGNED.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(CountryCode::new("SE").unwrap().as_str(), "SE");
        assert!(CountryCode::new("se").unwrap_err().contains("uppercase"));
        assert_eq!(CountryCode::new("EU").unwrap().third_country(), Some(false), "EU is inside the EEA");
        assert!(CountryCode::new("XX").is_err());
        assert!(CountryCode::new("SWE").is_err());
        assert!(CountryCode::new("DK").unwrap().in_eea());
        assert!(!CountryCode::new("GB").unwrap().in_eea());
        assert_eq!(CountryCode::new("GB").unwrap().third_country(), Some(true));
        assert_eq!(CountryCode::new("SE").unwrap().third_country(), Some(false));
        let zz = CountryCode::new("ZZ").unwrap();
        assert!(!zz.is_stated());
        assert_eq!(zz.third_country(), None);
        assert!(CountryCode::new("zz").is_err());
    }
}
