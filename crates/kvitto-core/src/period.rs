//! ISO 8601 durations (`P12M`, `P1Y`, `P7Y`, `P1Y6M`, `P30D`, `PT36H`) for retention rules.

use std::fmt;

/// An ISO 8601 duration with integer components, kept exactly as written (`P12M` is not
/// normalised to `P1Y`; the hash covers what the controller declared).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
pub struct IsoPeriod {
    /// Years.
    pub years: u32,
    /// Months.
    pub months: u32,
    /// Weeks.
    pub weeks: u32,
    /// Days.
    pub days: u32,
    /// Hours.
    pub hours: u32,
    /// Minutes.
    pub minutes: u32,
    /// Seconds.
    pub seconds: u32,
}

impl IsoPeriod {
    /// Parses `PnYnMnWnDTnHnMnS` (each part optional, at least one, integers, in this order).
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("{s:?} is not an ISO 8601 period ({why}); examples: P12M, P1Y, P7Y, P30D");
        let rest = s.strip_prefix('P').ok_or_else(|| bad("must start with P"))?;
        let (date, time) = match rest.split_once('T') {
            Some((_, "")) => return Err(bad("T must be followed by a time part")),
            Some((d, t)) => (d, Some(t)),
            None => (rest, None),
        };
        let mut p = IsoPeriod::default();
        let mut any = false;
        parse_parts(date, &['Y', 'M', 'W', 'D'], &mut |unit, n| {
            any = true;
            match unit {
                'Y' => p.years = n,
                'M' => p.months = n,
                'W' => p.weeks = n,
                _ => p.days = n,
            }
        })
        .map_err(|e| bad(&e))?;
        if let Some(time) = time {
            parse_parts(time, &['H', 'M', 'S'], &mut |unit, n| {
                any = true;
                match unit {
                    'H' => p.hours = n,
                    'M' => p.minutes = n,
                    _ => p.seconds = n,
                }
            })
            .map_err(|e| bad(&e))?;
        }
        if !any {
            return Err(bad("no components"));
        }
        Ok(p)
    }

    /// Approximate length in microseconds for scheduling (year = 365.25 d, month = 30.44 d).
    pub fn approx_micros(&self) -> i64 {
        const DAY: f64 = 86_400e6;
        let days =
            self.years as f64 * 365.25 + self.months as f64 * 30.436_875 + self.weeks as f64 * 7.0 + self.days as f64;
        let secs = self.hours as f64 * 3600.0 + self.minutes as f64 * 60.0 + self.seconds as f64;
        (days * DAY + secs * 1e6) as i64
    }
}

fn parse_parts(mut s: &str, units: &[char], set: &mut dyn FnMut(char, u32)) -> Result<(), String> {
    let mut next_unit = 0;
    while !s.is_empty() {
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("expected a number before {:?}", &s[..1]));
        }
        let n: u32 = s[..digits].parse().map_err(|_| "number too large".to_string())?;
        let unit = s[digits..].chars().next().ok_or("number without a unit")?;
        let pos = units[next_unit..]
            .iter()
            .position(|u| *u == unit)
            .ok_or_else(|| format!("unexpected or out-of-order unit {unit:?}"))?;
        next_unit += pos + 1;
        set(unit, n);
        s = &s[digits + unit.len_utf8()..];
    }
    Ok(())
}

impl fmt::Display for IsoPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("P")?;
        for (n, u) in [(self.years, 'Y'), (self.months, 'M'), (self.weeks, 'W'), (self.days, 'D')] {
            if n > 0 {
                write!(f, "{n}{u}")?;
            }
        }
        if self.hours > 0 || self.minutes > 0 || self.seconds > 0 {
            f.write_str("T")?;
            for (n, u) in [(self.hours, 'H'), (self.minutes, 'M'), (self.seconds, 'S')] {
                if n > 0 {
                    write!(f, "{n}{u}")?;
                }
            }
        }
        if *self == Self::default() {
            // All components zero but written explicitly, e.g. "P0D".
            f.write_str("0D")?;
        }
        Ok(())
    }
}

impl fmt::Debug for IsoPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IsoPeriod({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_retention_periods() {
        let p = IsoPeriod::parse("P12M").unwrap();
        assert_eq!((p.years, p.months), (0, 12));
        assert_eq!(IsoPeriod::parse("P7Y").unwrap().years, 7);
        let p = IsoPeriod::parse("P1Y2M3W4DT5H6M7S").unwrap();
        assert_eq!(p.to_string(), "P1Y2M3W4DT5H6M7S");
        assert_eq!(IsoPeriod::parse("PT36H").unwrap().hours, 36);
    }

    #[test]
    fn large_components_display_as_written() {
        // Found by the `canonical` fuzz target: the sum of the time parts overflowed u32 (a
        // panic in debug builds; in release, wrapped to 0 and dropped the time part).
        let p = IsoPeriod::parse("PT4294967295H1M").unwrap();
        assert_eq!(p.to_string(), "PT4294967295H1M");
        assert_eq!(IsoPeriod::parse(&p.to_string()).unwrap(), p);
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["", "P", "12M", "PT", "P1M2Y", "P1.5Y", "P-1Y", "P1Y1Y", "P1X", "PY", "P99999999999Y"] {
            assert!(IsoPeriod::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
