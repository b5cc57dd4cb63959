//! Blackouts: date ranges (inclusive, in the runbook's zone) in which no cycle may start.
//!
//! A cycle whose fire time's local date falls in a blackout is skipped, not postponed: it is
//! reported with the blackout's reason and never fired. Runbook blackouts and the config's
//! org-wide `[[blackout]]` entries are one list; the first matching entry gives the reason.

use chrono::{Datelike, NaiveDate};

use super::cycle::Cycle;

/// A change freeze from `from` to `to`, both days included.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Blackout {
    pub from: NaiveDate,
    /// Inclusive.
    pub to: NaiveDate,
    pub reason: String,
}

impl Blackout {
    /// A blackout, or an error when it ends before it begins.
    pub fn new(
        from: NaiveDate,
        to: NaiveDate,
        reason: impl Into<String>,
    ) -> Result<Blackout, String> {
        if to < from {
            return Err(format!("blackout ends ({to}) before it begins ({from})"));
        }
        Ok(Blackout {
            from,
            to,
            reason: reason.into(),
        })
    }

    /// Whether the date is inside the blackout (both ends included).
    pub fn contains(&self, date: NaiveDate) -> bool {
        self.from <= date && date <= self.to
    }
}

/// The first blackout containing the date.
pub fn blackout_for(blackouts: &[Blackout], date: NaiveDate) -> Option<&Blackout> {
    blackouts.iter().find(|b| b.contains(date))
}

/// Parses a strict `YYYY-MM-DD` date, with a message that says what is wrong.
pub fn parse_date(text: &str) -> Result<NaiveDate, String> {
    let parts: Vec<&str> = text.split('-').collect();
    let shape_ok = matches!(parts.as_slice(), [y, m, d]
        if y.len() == 4 && m.len() == 2 && d.len() == 2
            && text.bytes().filter(|b| *b != b'-').all(|b| b.is_ascii_digit()));
    if !shape_ok {
        return Err(format!(
            "`{text}` is not a date of the form YYYY-MM-DD (e.g. 2026-12-21)"
        ));
    }
    let number = |i: usize| parts[i].parse::<u32>().unwrap_or(0);
    let (year, month, day) = (number(0) as i32, number(1), number(2));
    if !(1..=12).contains(&month) {
        return Err(format!(
            "month {month:02} in `{text}` is out of range (01-12)"
        ));
    }
    NaiveDate::from_ymd_opt(year, month, day).ok_or_else(|| {
        let days = days_in_month(year, month);
        format!("`{text}` does not exist: that month has {days} days")
    })
}

fn days_in_month(year: i32, month: u32) -> u32 {
    Cycle {
        year,
        month,
        day: None,
    }
    .last_day()
    .day()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> NaiveDate {
        parse_date(text).unwrap()
    }

    #[test]
    fn parse_date_is_strict_and_explains() {
        assert_eq!(
            date("2026-12-21"),
            NaiveDate::from_ymd_opt(2026, 12, 21).unwrap()
        );
        assert_eq!(
            date("2024-02-29"),
            NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()
        );
        assert_eq!(
            parse_date("2026-02-30").unwrap_err(),
            "`2026-02-30` does not exist: that month has 28 days"
        );
        assert_eq!(
            parse_date("2026-13-01").unwrap_err(),
            "month 13 in `2026-13-01` is out of range (01-12)"
        );
        for bad in [
            "2026-1-05",
            "26-01-05",
            "2026/01/05",
            "2026-01-05T00:00",
            "",
            "yyyy-mm-dd",
        ] {
            assert!(parse_date(bad).unwrap_err().contains("YYYY-MM-DD"), "{bad}");
        }
    }

    #[test]
    fn blackouts_include_both_ends() {
        let freeze = Blackout::new(
            date("2026-12-21"),
            date("2027-01-04"),
            "year-end change freeze",
        )
        .unwrap();
        assert!(freeze.contains(date("2026-12-21")));
        assert!(freeze.contains(date("2027-01-04")));
        assert!(!freeze.contains(date("2026-12-20")));
        assert!(!freeze.contains(date("2027-01-05")));
        let other = Blackout::new(date("2027-01-01"), date("2027-01-31"), "audit").unwrap();
        let list = [freeze, other];
        assert_eq!(
            blackout_for(&list, date("2027-01-02")).unwrap().reason,
            "year-end change freeze"
        );
        assert_eq!(
            blackout_for(&list, date("2027-01-05")).unwrap().reason,
            "audit"
        );
        assert!(blackout_for(&list, date("2027-02-01")).is_none());
    }

    #[test]
    fn a_blackout_must_not_end_before_it_begins() {
        let err = Blackout::new(date("2026-12-21"), date("2026-12-20"), "x").unwrap_err();
        assert_eq!(
            err,
            "blackout ends (2026-12-20) before it begins (2026-12-21)"
        );
    }
}
