//! The rate limit on refused link requests: without it every refusal is a `link.rejected`
//! audit event, so a flood of forged tokens would grow the audit log without bound.
//!
//! Fixed windows of [`WINDOW`] on the daemon's clock. Each source (an IPv4 address, or an IPv6
//! /64, which one host usually holds whole) gets its own window, opened by its first refusal:
//! its first [`PER_SOURCE`] refusals are answered and audited as before; later ones in the window
//! are answered `429 Too Many Requests` and not audited one by one: the first of them records one
//! `link.rate_limited` event for the window. All sources together have one more window of
//! [`OVERALL`] audited refusals (a flood from many addresses), limited the same way. So a window
//! writes at most `OVERALL + 1` events of `link.rejected` / all-sources `link.rate_limited`, plus
//! one `link.rate_limited` per source that went over its own limit.
//!
//! Only refusals count and only refusals are limited: a good link is answered whatever its source
//! did (a colleague behind the same NAT as an attacker still decides). At most [`MAX_SOURCES`]
//! sources are tracked; when that many have open windows, further new sources share one window.
//! The state sits behind a plain mutex, held only for the arithmetic (never across an `.await`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;

use chrono::{DateTime, TimeDelta, Utc};

/// Refusals from one source answered and audited per window.
pub const PER_SOURCE: u32 = 30;
/// Refusals from all sources together answered and audited per window.
pub const OVERALL: u32 = 300;
/// The length of a window.
pub const WINDOW: TimeDelta = TimeDelta::minutes(1);
/// The most sources tracked at once.
const MAX_SOURCES: usize = 4096;

/// Where refused requests come from, as the limit counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    V4(Ipv4Addr),
    /// The first 64 bits of the address.
    V6(u64),
    /// Every new source while [`MAX_SOURCES`] are tracked.
    Overflow,
}

impl Source {
    fn of(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(v4) => Source::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4),
                None => Source::V6((v6.to_bits() >> 64) as u64),
            },
        }
    }

    fn describe(self) -> String {
        match self {
            Source::V4(v4) => v4.to_string(),
            Source::V6(prefix) => format!("{}/64", Ipv6Addr::from_bits(u128::from(prefix) << 64)),
            Source::Overflow => "untracked sources".into(),
        }
    }
}

/// One window: when it opened, the refusals counted in it, whether its limit was reported.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: DateTime<Utc>,
    count: u32,
    reported: bool,
}

impl Window {
    fn new(now: DateTime<Utc>) -> Window {
        Window {
            start: now,
            count: 0,
            reported: false,
        }
    }

    fn end(&self) -> DateTime<Utc> {
        self.start + WINDOW
    }

    /// Open at `now` (a clock set back opens a new window, as does the end of this one).
    fn is_open(&self, now: DateTime<Utc>) -> bool {
        self.start <= now && now < self.end()
    }

    /// This window if it is open at `now`, else a new one.
    fn roll(&mut self, now: DateTime<Utc>) {
        if !self.is_open(now) {
            *self = Window::new(now);
        }
    }

    /// The verdict for a refusal over this window's limit: the first one reports it.
    fn limited(&mut self, scope: Scope, limit: u32) -> Verdict {
        let report = (!self.reported).then_some(Report {
            scope,
            limit,
            window_start: self.start,
        });
        self.reported = true;
        Verdict::Limited {
            until: self.end(),
            report,
        }
    }
}

/// Whose limit a refusal went over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// One source's (described: `192.0.2.1`, `2001:db8::/64`).
    Source(String),
    /// All sources' together.
    All,
}

/// The one `link.rate_limited` event of a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub scope: Scope,
    pub limit: u32,
    pub window_start: DateTime<Utc>,
}

/// What to do with a refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Answer it with its page and audit it (`link.rejected`), as without a limit.
    Audit,
    /// Answer `429` until `until`; record `report` (the window's first) as `link.rate_limited`.
    Limited {
        until: DateTime<Utc>,
        report: Option<Report>,
    },
}

/// The windows of the sources and of all sources; one per daemon (the links routes share it).
#[derive(Debug, Default)]
pub struct RefusalLimit {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    sources: HashMap<Source, Window>,
    all: Option<Window>,
}

impl RefusalLimit {
    /// Counts one refusal of a request from `ip` at `now` (the daemon's clock) and says what to
    /// do with it.
    pub fn refusal(&self, ip: IpAddr, now: DateTime<Utc>) -> Verdict {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let State { sources, all } = &mut *state;
        let mut source = Source::of(ip);
        if !sources.contains_key(&source) && sources.len() >= MAX_SOURCES {
            sources.retain(|_, w| w.is_open(now));
            if sources.len() >= MAX_SOURCES {
                source = Source::Overflow;
            }
        }
        let own = sources.entry(source).or_insert_with(|| Window::new(now));
        own.roll(now);
        own.count = own.count.saturating_add(1);
        if own.count > PER_SOURCE {
            return own.limited(Scope::Source(source.describe()), PER_SOURCE);
        }
        let all = all.get_or_insert_with(|| Window::new(now));
        all.roll(now);
        if all.count >= OVERALL {
            return all.limited(Scope::All, OVERALL);
        }
        all.count += 1;
        Verdict::Audit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn audited(limit: &RefusalLimit, from: &str, at: DateTime<Utc>, n: u32) -> u32 {
        (0..n)
            .filter(|_| limit.refusal(ip(from), at) == Verdict::Audit)
            .count() as u32
    }

    #[test]
    fn a_source_is_limited_after_its_quota_with_one_report_per_window() {
        let limit = RefusalLimit::default();
        let start = t("2026-12-08T10:00:00Z");
        assert_eq!(audited(&limit, "192.0.2.7", start, PER_SOURCE), PER_SOURCE);
        let later = start + TimeDelta::seconds(20);
        let first = limit.refusal(ip("192.0.2.7"), later);
        assert_eq!(
            first,
            Verdict::Limited {
                until: start + WINDOW,
                report: Some(Report {
                    scope: Scope::Source("192.0.2.7".into()),
                    limit: PER_SOURCE,
                    window_start: start,
                }),
            }
        );
        for _ in 0..1000 {
            assert_eq!(
                limit.refusal(ip("192.0.2.7"), later),
                Verdict::Limited {
                    until: start + WINDOW,
                    report: None
                }
            );
        }
        // Another source has its own quota.
        assert_eq!(audited(&limit, "192.0.2.8", later, 5), 5);
        // The window ends: a new quota, and a new report once it is spent.
        let next = start + WINDOW;
        assert_eq!(audited(&limit, "192.0.2.7", next, 100), PER_SOURCE);
        match limit.refusal(ip("192.0.2.7"), next) {
            Verdict::Limited {
                report: None,
                until,
            } => assert_eq!(until, next + WINDOW),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_next_window_reports_again_and_a_clock_set_back_opens_a_new_one() {
        let limit = RefusalLimit::default();
        let start = t("2026-12-08T10:00:00Z");
        audited(&limit, "192.0.2.7", start, PER_SOURCE + 1);
        let next = start + WINDOW + TimeDelta::seconds(1);
        assert_eq!(audited(&limit, "192.0.2.7", next, PER_SOURCE), PER_SOURCE);
        assert!(matches!(
            limit.refusal(ip("192.0.2.7"), next),
            Verdict::Limited {
                report: Some(_),
                ..
            }
        ));
        let back = start - TimeDelta::hours(1);
        assert_eq!(audited(&limit, "192.0.2.7", back, 3), 3);
    }

    #[test]
    fn ipv6_counts_by_64_and_mapped_ipv4_as_ipv4() {
        let limit = RefusalLimit::default();
        let at = t("2026-12-08T10:00:00Z");
        for i in 0..PER_SOURCE {
            assert_eq!(
                limit.refusal(ip(&format!("2001:db8:1:2::{:x}", i + 1)), at),
                Verdict::Audit
            );
        }
        match limit.refusal(ip("2001:db8:1:2:ffff::1"), at) {
            Verdict::Limited {
                report: Some(report),
                ..
            } => assert_eq!(report.scope, Scope::Source("2001:db8:1:2::/64".into())),
            other => panic!("{other:?}"),
        }
        assert_eq!(limit.refusal(ip("2001:db8:1:3::1"), at), Verdict::Audit);
        assert_eq!(audited(&limit, "198.51.100.1", at, PER_SOURCE), PER_SOURCE);
        assert!(matches!(
            limit.refusal(ip("::ffff:198.51.100.1"), at),
            Verdict::Limited { .. }
        ));
    }

    #[test]
    fn all_sources_together_are_limited_too() {
        let limit = RefusalLimit::default();
        let at = t("2026-12-08T10:00:00Z");
        let mut audited_total = 0;
        let mut reports = Vec::new();
        for i in 0..2 * OVERALL {
            let from = IpAddr::V4(Ipv4Addr::from_bits(0x0a00_0000 + i));
            match limit.refusal(from, at) {
                Verdict::Audit => audited_total += 1,
                Verdict::Limited { report, .. } => reports.extend(report),
            }
        }
        assert_eq!(audited_total, OVERALL);
        assert_eq!(
            reports,
            [Report {
                scope: Scope::All,
                limit: OVERALL,
                window_start: at,
            }]
        );
    }

    #[test]
    fn the_number_of_tracked_sources_is_bounded() {
        let limit = RefusalLimit::default();
        let at = t("2026-12-08T10:00:00Z");
        for i in 0..MAX_SOURCES as u32 + 100 {
            limit.refusal(IpAddr::V4(Ipv4Addr::from_bits(i)), at);
        }
        let tracked = limit.state.lock().unwrap().sources.len();
        assert_eq!(tracked, MAX_SOURCES + 1, "the sources and the overflow");
        // Once their windows end, old sources make room for new ones.
        let later = at + WINDOW;
        limit.refusal(ip("203.0.113.9"), later);
        let state = limit.state.lock().unwrap();
        assert_eq!(state.sources.len(), 1);
        assert!(state.sources.contains_key(&Source::of(ip("203.0.113.9"))));
    }
}
