//! Time zones: parsing IANA names, and turning a wall-clock time into an instant.
//!
//! [`local_to_instant`] is the single place where a local date and time becomes an instant.
//! It follows RFC 5545 §3.3.5 for the two awkward cases:
//!
//! - a wall-clock time that does not exist (in a spring-forward gap) is read with the UTC
//!   offset in effect *before* the gap, so 02:30 on a New York spring-forward night is
//!   02:30 EST = 03:30 EDT: it moves forward by the length of the gap and is never skipped;
//! - a wall-clock time that occurs twice (in a fall-back overlap) means its first occurrence,
//!   so it never runs twice.

use chrono::offset::LocalResult;
use chrono::{DateTime, NaiveDateTime, Offset, TimeDelta, TimeZone};
use chrono_tz::{TZ_VARIANTS, Tz};

/// Parses an IANA zone name such as `Europe/Berlin`. The error suggests the nearest real name
/// when the text is a near miss (`America/New_Yrok`, `america/new_york`, `New York`).
pub fn parse_zone(text: &str) -> Result<Tz, String> {
    if text.trim().is_empty() {
        return Err("time zone is empty; use an IANA name such as `Europe/Berlin`".to_owned());
    }
    if let Ok(tz) = text.parse::<Tz>() {
        return Ok(tz);
    }
    Err(match suggest_zone(text) {
        Some(name) => format!("unknown time zone `{text}`; did you mean `{name}`?"),
        None => format!(
            "unknown time zone `{text}`; use an IANA name such as `America/New_York` or `Europe/Berlin`"
        ),
    })
}

/// The nearest IANA name to a misspelled one, if any is close enough to be a useful hint.
fn suggest_zone(text: &str) -> Option<&'static str> {
    let wanted = text.trim().to_lowercase().replace(' ', "_");
    let names = || TZ_VARIANTS.iter().map(|tz| tz.name());
    if let Some(name) = names().find(|name| name.to_lowercase() == wanted) {
        return Some(name);
    }
    if let Some(name) = names().find(|name| city(name).to_lowercase() == wanted) {
        return Some(name);
    }
    let (distance, name) = names()
        .map(|name| {
            (
                strsim::damerau_levenshtein(&wanted, &name.to_lowercase()),
                name,
            )
        })
        .min()?;
    (distance <= 3 && distance * 4 <= wanted.len()).then_some(name)
}

/// The last component of a zone name: `New_York` for `America/New_York`.
fn city(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// How every command, page and email shows a time to a person: the wall clock in `tz` with
/// the zone's abbreviation, `Sat 2026-12-12 22:00 EST` (never a bare `-05:00`).
pub fn wall_clock<Z: TimeZone>(at: &DateTime<Z>, tz: Tz) -> String {
    at.with_timezone(&tz)
        .format("%a %Y-%m-%d %H:%M %Z")
        .to_string()
}

/// The instant at which the wall clock in `tz` shows `naive`, per RFC 5545 §3.3.5: a time in
/// a DST gap is read with the offset from before the gap; a repeated time means its first
/// occurrence. Every calendar computation goes through this function.
pub fn local_to_instant(tz: Tz, naive: NaiveDateTime) -> DateTime<Tz> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(instant) => instant,
        LocalResult::Ambiguous(a, b) => a.min(b),
        LocalResult::None => in_gap(tz, naive),
    }
}

/// A wall-clock time that does not exist: read it with the offset in effect before the gap.
fn in_gap(tz: Tz, naive: NaiveDateTime) -> DateTime<Tz> {
    let offset_before = offset_before_gap(tz, naive);
    tz.from_utc_datetime(&(naive - offset_before))
}

/// The UTC offset of the last valid wall-clock time before `naive`, which lies in a gap.
/// Steps back in quarter hours: gaps are at most a day long (Samoa, 2011) and transitions
/// are months apart, so the first valid time found is just before this gap.
fn offset_before_gap(tz: Tz, naive: NaiveDateTime) -> TimeDelta {
    const STEP_MINUTES: i64 = 15;
    const MAX_STEPS: i64 = 4 * 50;
    (1..=MAX_STEPS)
        .find_map(|step| {
            let earlier = naive - TimeDelta::minutes(step * STEP_MINUTES);
            tz.from_local_datetime(&earlier).latest()
        })
        .map(|valid| utc_offset(&valid))
        .unwrap_or_else(|| utc_offset(&tz.from_utc_datetime(&naive)))
}

/// The UTC offset of an instant as a duration (east of UTC is positive).
pub(crate) fn utc_offset(instant: &DateTime<Tz>) -> TimeDelta {
    TimeDelta::seconds(i64::from(instant.offset().fix().local_minus_utc()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, Utc};

    fn naive(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, 0)
            .unwrap()
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn parse_zone_accepts_iana_names() {
        assert_eq!(
            parse_zone("America/New_York"),
            Ok(chrono_tz::America::New_York)
        );
        assert_eq!(parse_zone("UTC"), Ok(chrono_tz::UTC));
        assert_eq!(
            parse_zone("Australia/Sydney"),
            Ok(chrono_tz::Australia::Sydney)
        );
    }

    #[test]
    fn parse_zone_suggests_the_nearest_name() {
        assert_eq!(
            parse_zone("America/New_Yrok").unwrap_err(),
            "unknown time zone `America/New_Yrok`; did you mean `America/New_York`?"
        );
        assert!(
            parse_zone("europe/berlin")
                .unwrap_err()
                .contains("`Europe/Berlin`")
        );
        assert!(
            parse_zone("New York")
                .unwrap_err()
                .contains("`America/New_York`")
        );
        assert!(
            parse_zone("Europe/Berln")
                .unwrap_err()
                .contains("`Europe/Berlin`")
        );
        let far = parse_zone("Mars/Olympus_Mons").unwrap_err();
        assert!(far.contains("use an IANA name"), "{far}");
        assert!(parse_zone("").unwrap_err().contains("empty"));
    }

    #[test]
    fn new_york_spring_forward_gap_uses_the_offset_before() {
        let tz = chrono_tz::America::New_York;
        // 2026-03-08: 02:00 EST jumps to 03:00 EDT.
        let at = local_to_instant(tz, naive(2026, 3, 8, 2, 30));
        assert_eq!(at.to_rfc3339(), "2026-03-08T03:30:00-04:00");
        assert_eq!(at.to_utc(), utc("2026-03-08T07:30:00Z"));
        let at = local_to_instant(tz, naive(2026, 3, 8, 2, 0));
        assert_eq!(at.to_rfc3339(), "2026-03-08T03:00:00-04:00");
        // Either side of the gap is untouched.
        assert_eq!(
            local_to_instant(tz, naive(2026, 3, 8, 1, 59)).to_rfc3339(),
            "2026-03-08T01:59:00-05:00"
        );
        assert_eq!(
            local_to_instant(tz, naive(2026, 3, 8, 3, 0)).to_rfc3339(),
            "2026-03-08T03:00:00-04:00"
        );
    }

    #[test]
    fn new_york_fall_back_overlap_means_the_first_occurrence() {
        let tz = chrono_tz::America::New_York;
        // 2026-11-01: 02:00 EDT falls back to 01:00 EST; 01:30 happens twice.
        let at = local_to_instant(tz, naive(2026, 11, 1, 1, 30));
        assert_eq!(at.to_rfc3339(), "2026-11-01T01:30:00-04:00");
        assert_eq!(at.to_utc(), utc("2026-11-01T05:30:00Z"));
    }

    #[test]
    fn berlin_gap_and_overlap() {
        let tz = chrono_tz::Europe::Berlin;
        // 2026-03-29: 02:00 CET jumps to 03:00 CEST.
        let gap = local_to_instant(tz, naive(2026, 3, 29, 2, 30));
        assert_eq!(gap.to_rfc3339(), "2026-03-29T03:30:00+02:00");
        // 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
        let overlap = local_to_instant(tz, naive(2026, 10, 25, 2, 30));
        assert_eq!(overlap.to_rfc3339(), "2026-10-25T02:30:00+02:00");
        assert_eq!(overlap.to_utc(), utc("2026-10-25T00:30:00Z"));
    }

    #[test]
    fn sydney_southern_hemisphere_gap_and_overlap() {
        let tz = chrono_tz::Australia::Sydney;
        // DST ends on the first Sunday of April: 2026-04-05 03:00 AEDT -> 02:00 AEST.
        let overlap = local_to_instant(tz, naive(2026, 4, 5, 2, 30));
        assert_eq!(overlap.to_rfc3339(), "2026-04-05T02:30:00+11:00");
        assert_eq!(overlap.to_utc(), utc("2026-04-04T15:30:00Z"));
        // DST starts on the first Sunday of October: 2026-10-04 02:00 AEST -> 03:00 AEDT.
        let gap = local_to_instant(tz, naive(2026, 10, 4, 2, 30));
        assert_eq!(gap.to_rfc3339(), "2026-10-04T03:30:00+11:00");
        assert_eq!(gap.to_utc(), utc("2026-10-03T16:30:00Z"));
    }

    #[test]
    fn half_hour_dst_and_whole_day_gaps() {
        // Lord Howe Island shifts by 30 minutes: 2026-10-04 02:00 -> 02:30.
        let tz = chrono_tz::Australia::Lord_Howe;
        let gap = local_to_instant(tz, naive(2026, 10, 4, 2, 15));
        assert_eq!(gap.to_rfc3339(), "2026-10-04T02:45:00+11:00");
        // Samoa skipped 2011-12-30 entirely; noon that day is read with the old offset (-10).
        let tz = chrono_tz::Pacific::Apia;
        let gap = local_to_instant(tz, naive(2011, 12, 30, 12, 0));
        assert_eq!(gap.to_utc(), utc("2011-12-30T22:00:00Z"));
        assert_eq!(gap.to_rfc3339(), "2011-12-31T12:00:00+14:00");
    }
}
