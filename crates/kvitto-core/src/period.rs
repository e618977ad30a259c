//! ISO 8601 durations (`P12M`, `P1Y`, `P7Y`, `P1Y6M`, `P30D`, `PT36H`) for retention rules,
//! financial-year ends (`12-31`, `06-30`) and the one retention due-date computation every
//! report, plan and decision uses ([`retention_due`]).

use std::fmt;

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};

use crate::event::ExtendTo;
use crate::time::Timestamp;

const DAY_US: i64 = 86_400_000_000;

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

    /// `t + self`, calendar-aware: years and months first (`years × 12 + months` calendar
    /// months; a day that does not exist in the target month is clamped to its last day, so
    /// 2026-01-31 + `P1M` = 2026-02-28 and 2024-02-29 + `P1Y` = 2025-02-28), then weeks and days
    /// as 24-hour days and the time parts, all in UTC. Saturates at [`Timestamp::MAX`].
    pub fn add_to(&self, t: Timestamp) -> Timestamp {
        let Some(dt) = DateTime::<Utc>::from_timestamp_micros(t.as_micros()) else { return Timestamp::MAX };
        let months = self.years as u64 * 12 + self.months as u64;
        let dt = match u32::try_from(months).ok().and_then(|m| dt.checked_add_months(Months::new(m))) {
            Some(d) => d,
            None => return Timestamp::MAX,
        };
        let extra_us = (self.weeks as i64 * 7 + self.days as i64) * DAY_US
            + (self.hours as i64 * 3600 + self.minutes as i64 * 60 + self.seconds as i64) * 1_000_000;
        Timestamp::from_micros(dt.timestamp_micros().saturating_add(extra_us)).unwrap_or(Timestamp::MAX)
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

/// The last day of a financial year, written `MM-DD` (`12-31`, `06-30`). Any day of the
/// calendar is allowed, `02-29` included: it means the last day of February (the 28th in
/// years that are not leap years); `02-30`, `04-31`, `13-01` are rejected.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MonthDay {
    month: u8,
    day: u8,
}

impl MonthDay {
    /// Validates month 1–12 and a day that exists in that month (29 in February).
    pub fn new(month: u8, day: u8) -> Result<Self, String> {
        const LAST: [u8; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        let Some(last) = month.checked_sub(1).and_then(|m| LAST.get(m as usize)) else {
            return Err(format!("month {month:02} does not exist (01–12)"));
        };
        if day == 0 || day > *last {
            let feb = if month == 2 { " (02-29 means the last day of February)" } else { "" };
            return Err(format!(
                "{month:02}-{day:02} is not a day of the year: month {month:02} has days 01–{last}{feb}"
            ));
        }
        Ok(Self { month, day })
    }

    /// Parses exactly `MM-DD` (two digits, a hyphen, two digits).
    pub fn parse(s: &str) -> Result<Self, String> {
        let b = s.as_bytes();
        let digits = |i: usize| b[i].is_ascii_digit() && b[i + 1].is_ascii_digit();
        if b.len() != 5 || b[2] != b'-' || !digits(0) || !digits(3) {
            return Err(format!("{s:?} is not MM-DD (e.g. 12-31 or 06-30)"));
        }
        let n = |i: usize| (b[i] - b'0') * 10 + (b[i + 1] - b'0');
        Self::new(n(0), n(3)).map_err(|e| format!("{s:?}: {e}"))
    }

    /// Month, 1–12.
    pub fn month(self) -> u8 {
        self.month
    }

    /// Day of the month as written, 1–31 (29 in February stands for its last day).
    pub fn day(self) -> u8 {
        self.day
    }

    /// This month-day in `year`, February 29 clamped to the 28th in common years.
    fn in_year(self, year: i32) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(year, self.month as u32, self.day as u32)
            .or_else(|| NaiveDate::from_ymd_opt(year, self.month as u32, self.day as u32 - 1))
    }

    /// The end of the financial year that `t` falls in: 00:00:00.000000 UTC of the day after
    /// the first financial-year end on or after `t`'s UTC date (so a trigger on the last day
    /// of the financial year belongs to that year). Saturates at [`Timestamp::MAX`].
    pub fn year_end_after(self, t: Timestamp) -> Timestamp {
        let Some(date) = DateTime::<Utc>::from_timestamp_micros(t.as_micros()).map(|d| d.date_naive()) else {
            return Timestamp::MAX;
        };
        let last_day = match self.in_year(date.year()) {
            Some(d) if d >= date => Some(d),
            _ => self.in_year(date.year() + 1),
        };
        last_day.and_then(|d| d.succ_opt()).map_or(Timestamp::MAX, start_of)
    }
}

/// 00:00:00 UTC of `d`, or [`Timestamp::MAX`] past the end of time.
fn start_of(d: NaiveDate) -> Timestamp {
    d.and_hms_opt(0, 0, 0)
        .and_then(|dt| Timestamp::from_micros(dt.and_utc().timestamp_micros()).ok())
        .unwrap_or(Timestamp::MAX)
}

/// The earliest 1 January 00:00:00 UTC at or after `t` (`t` itself when it is one).
fn next_year_start(t: Timestamp) -> Timestamp {
    if t == Timestamp::MAX {
        return t;
    }
    let Some(dt) = DateTime::<Utc>::from_timestamp_micros(t.as_micros()) else { return Timestamp::MAX };
    let year_start = NaiveDate::from_ymd_opt(dt.year(), 1, 1).map_or(Timestamp::MAX, start_of);
    if year_start == t {
        return t;
    }
    NaiveDate::from_ymd_opt(dt.year() + 1, 1, 1).map_or(Timestamp::MAX, start_of)
}

impl TryFrom<String> for MonthDay {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        MonthDay::parse(&s)
    }
}

impl From<MonthDay> for String {
    fn from(m: MonthDay) -> String {
        m.to_string()
    }
}

impl fmt::Display for MonthDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}-{:02}", self.month, self.day)
    }
}

impl fmt::Debug for MonthDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MonthDay({self})")
    }
}

/// When data whose retention clock was triggered at `trigger_at` is due for erasure: the
/// first instant it no longer has to be kept (it is kept through the microsecond before).
///
/// 1. The clock starts at `trigger_at`, or — with `financial_year_end` — at the end of the
///    financial year `trigger_at` falls in ([`MonthDay::year_end_after`]).
/// 2. `duration` is added ([`IsoPeriod::add_to`]).
/// 3. With `extend_to: calendar_year_end`, the result is rounded up to the next
///    1 January 00:00:00 UTC (unchanged when it already is one): the data is kept through
///    31 December of the year in which the period ran out.
///
/// Bokföringslagen 7 kap. 2 § (`12-31`, `P7Y`, `calendar_year_end`): triggered 2026-03-10 →
/// due 2034-01-01T00:00:00Z, i.e. kept through 2033. Bogføringsloven § 12 (`12-31`, `P5Y`):
/// triggered 2026-03-10 → due 2032-01-01T00:00:00Z, i.e. kept through 2031-12-31.
pub fn retention_due(
    trigger_at: Timestamp,
    duration: &IsoPeriod,
    financial_year_end: Option<MonthDay>,
    extend_to: Option<ExtendTo>,
) -> Timestamp {
    let start = financial_year_end.map_or(trigger_at, |f| f.year_end_after(trigger_at));
    let due = duration.add_to(start);
    match extend_to {
        None => due,
        Some(ExtendTo::CalendarYearEnd) => next_year_start(due),
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

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn month_days_validate_and_print() {
        assert_eq!(MonthDay::parse("12-31").unwrap().to_string(), "12-31");
        assert_eq!(MonthDay::parse("02-29").unwrap(), MonthDay::new(2, 29).unwrap());
        for bad in ["02-30", "04-31", "13-01", "00-10", "06-00", "6-30", "06/30", "06-300", "", "ab-cd", "1231"] {
            assert!(MonthDay::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(MonthDay::parse("02-30").unwrap_err().contains("last day of February"));
    }

    #[test]
    fn financial_year_end_is_the_start_of_the_next_day() {
        let dec = MonthDay::parse("12-31").unwrap();
        assert_eq!(dec.year_end_after(ts("2026-03-10T08:00:00Z")), ts("2027-01-01T00:00:00Z"));
        // The last day of the financial year belongs to it, to its last microsecond.
        assert_eq!(dec.year_end_after(ts("2026-12-31T23:59:59.999999Z")), ts("2027-01-01T00:00:00Z"));
        assert_eq!(dec.year_end_after(ts("2027-01-01T00:00:00Z")), ts("2028-01-01T00:00:00Z"));
        let june = MonthDay::parse("06-30").unwrap();
        assert_eq!(june.year_end_after(ts("2026-03-10T08:00:00Z")), ts("2026-07-01T00:00:00Z"));
        assert_eq!(june.year_end_after(ts("2026-07-01T00:00:00Z")), ts("2027-07-01T00:00:00Z"));
        let feb = MonthDay::parse("02-29").unwrap();
        assert_eq!(feb.year_end_after(ts("2027-02-28T10:00:00Z")), ts("2027-03-01T00:00:00Z"));
        assert_eq!(feb.year_end_after(ts("2028-02-28T10:00:00Z")), ts("2028-03-01T00:00:00Z"));
        assert_eq!(feb.year_end_after(ts("2028-03-01T10:00:00Z")), ts("2029-03-01T00:00:00Z"));
        assert_eq!(dec.year_end_after(Timestamp::MAX), Timestamp::MAX);
    }

    #[test]
    fn bookkeeping_due_dates() {
        let p = |s: &str| IsoPeriod::parse(s).unwrap();
        let dec = MonthDay::parse("12-31").ok();
        let cal = Some(ExtendTo::CalendarYearEnd);
        let trigger = ts("2026-03-10T08:00:00Z");
        // Bokföringslagen: through the end of 2033.
        assert_eq!(retention_due(trigger, &p("P7Y"), dec, cal), ts("2034-01-01T00:00:00Z"));
        // A financial year ending 30 June: FY ends 2026-06-30, +7 years, through 2033-12-31.
        let june = MonthDay::parse("06-30").ok();
        assert_eq!(retention_due(trigger, &p("P7Y"), june, cal), ts("2034-01-01T00:00:00Z"));
        // Bogføringsloven: five years from the end of the financial year, through 2031-12-31.
        assert_eq!(retention_due(trigger, &p("P5Y"), dec, None), ts("2032-01-01T00:00:00Z"));
        // Without the new fields: the plain calendar sum, as before.
        assert_eq!(retention_due(trigger, &p("P12M"), None, None), ts("2027-03-10T08:00:00Z"));
        // extend_to alone rounds up to the next year start.
        assert_eq!(retention_due(trigger, &p("P1Y"), None, cal), ts("2028-01-01T00:00:00Z"));
        assert_eq!(retention_due(ts("2026-01-01T00:00:00Z"), &p("P1Y"), None, cal), ts("2027-01-01T00:00:00Z"));
        assert_eq!(retention_due(Timestamp::MAX, &p("P7Y"), dec, cal), Timestamp::MAX);
        assert_eq!(retention_due(ts("9999-06-01T00:00:00Z"), &p("P1D"), None, cal), Timestamp::MAX);
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["", "P", "12M", "PT", "P1M2Y", "P1.5Y", "P-1Y", "P1Y1Y", "P1X", "PY", "P99999999999Y"] {
            assert!(IsoPeriod::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
