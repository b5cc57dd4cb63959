//! The scheduler: fires each scheduled runbook's cycles on the injected clock (DESIGN §3, §5).
//!
//! Each pass asks [`catch_up`] what is due for every scheduled runbook, given the last cycle
//! already dealt with (the latest of: a run's cycle, a recorded `cycle.missed`,
//! `cycle.skipped` or `cycle.failed`, among cycles of the schedule's kind: months for anchored
//! entries, days for cron entries, so that a runbook edited from monthly to weekly starts
//! afresh), then:
//! - fires due cycles (`Engine::start`, actor `scheduler`); the store's unique key on
//!   (runbook, cycle) makes a second fire of a cycle a [`RunError::CycleTaken`], which is
//!   fine: it already fired (or was run by hand with `--cycle`);
//! - records missed and blacked-out cycles as `cycle.missed` / `cycle.skipped` audit events,
//!   with an email to the runbook's `notify` recipients when `notify.on` has `skipped`, in one
//!   commit;
//! - sleeps on the clock until the earliest next due fire, or until shutdown; it looks at the
//!   clock again at least every minute ([`WAKE_EVERY`]), so a clock that jumps (NTP, a resumed
//!   VM) fires a due cycle within a minute, not when a sleep measured before the jump ends.
//!
//! A runbook the daemon never fired is not charged with cycles before the daemon started;
//! after a downtime, the cycles since the last one dealt with are caught up or missed.
//!
//! Several daemons: only the leader schedules ([`super::cluster`]); its cycle events carry the
//! leader lease's epoch, so a deposed leader cannot record them twice.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;

use super::{LoadedRunbook, Shared, new_run_id};
use crate::calendar::{Cycle, Fire, catch_up};
use crate::notification::{CycleFacts, Facts, Notification};
use crate::run::notify::{recipients, rendered_email};
use crate::run::{RunError, RunSpec};
use crate::runbook::NotifyEvent;
use crate::store::{Change, NewEvent, Store, StoreError};

/// The catch-up window of a runbook that does not set `catch_up`.
pub const DEFAULT_CATCH_UP: Duration = Duration::from_secs(24 * 3600);

/// How far back the audit log is read for recorded cycle events.
const EVENT_LOOKBACK: TimeDelta = TimeDelta::days(800);

/// Runs passes until shutdown. With a virtual clock, the scheduler jumps the clock at most once.
pub async fn run<S: Store>(shared: Arc<Shared<S>>, virtual_clock: bool) {
    run_waking(shared, virtual_clock, WAKE_EVERY).await
}

/// The longest the scheduler sleeps without looking at the clock again.
pub const WAKE_EVERY: Duration = Duration::from_secs(60);

/// [`run`], looking at the clock at least every `wake` (real time): a sleep until the next
/// fire is measured when it starts, so a clock that is stepped (NTP) or a machine that was
/// suspended would otherwise fire a due cycle only when that sleep ends, weeks late. Each wake
/// re-reads the clock and runs a pass as soon as the next fire is due by it.
pub async fn run_waking<S: Store>(shared: Arc<Shared<S>>, virtual_clock: bool, wake: Duration) {
    let mut jumped = false;
    loop {
        if shared.shutdown.is_cancelled() {
            return;
        }
        // Several daemons: only the leader schedules; a follower's virtual clock jumps once.
        if shared.cluster.leader_epoch().is_none() {
            if virtual_clock && !jumped {
                super::cluster::jump_like_the_leader(&shared).await;
            }
            jumped = virtual_clock;
            tokio::select! {
                _ = shared.shutdown.cancelled() => return,
                _ = shared.cluster.until_leader() => continue,
            }
        }
        let began = std::time::Instant::now();
        let passed = pass(&shared).await;
        shared
            .counters
            .scheduler_pass(began.elapsed().as_secs_f64());
        let next = match passed {
            Ok(next) => next,
            Err(e) => {
                tracing::warn!("scheduler: {e}; retrying in a minute");
                Some(shared.clock.now() + TimeDelta::minutes(1))
            }
        };
        let may_sleep = !(virtual_clock && jumped);
        loop {
            let clock = shared.clock.clone();
            let sleep = async move {
                match next {
                    Some(at) if may_sleep => clock.sleep_until(at).await,
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shared.shutdown.cancelled() => return,
                _ = shared.reschedule.notified() => break,
                _ = sleep => break,
                _ = tokio::time::sleep(wake) => {
                    // (A virtual clock only moves when slept on: nothing to look for.)
                    if may_sleep && next.is_some_and(|at| shared.clock.now() >= at) {
                        break;
                    }
                }
            }
        }
        jumped = virtual_clock;
    }
}

/// One pass over every scheduled runbook; returns the earliest next due fire.
pub async fn pass<S: Store>(shared: &Arc<Shared<S>>) -> Result<Option<DateTime<Utc>>, StoreError> {
    let now = shared.clock.now();
    let dashboard = shared.engine.dashboard_url();
    let fence = shared.cluster.fence();
    let dealt = dealt_cycles(shared, now).await?;
    let mut next: Option<DateTime<Utc>> = None;
    let runbooks = shared.runbooks();
    for (name, loaded) in &runbooks.by_name {
        let schedule = &loaded.checked.schedule;
        if schedule.is_manual() {
            continue;
        }
        let days = schedule.has_day_cycles();
        let last = dealt
            .iter()
            .filter(|(n, c)| n == name && c.is_day() == days)
            .map(|(_, c)| *c)
            .max();
        let since = last
            .and_then(|c| schedule.fire_for(c))
            .map(|f| f.fires_at.to_utc())
            .unwrap_or(shared.started_at)
            .min(shared.started_at);
        let window = loaded
            .checked
            .runbook
            .catch_up
            .as_ref()
            .map(|d| d.value.duration())
            .unwrap_or(DEFAULT_CATCH_UP);
        let due = catch_up(schedule, last, window, now, since);
        let mut change = Change::default();
        for fire in &due.missed {
            record(
                &mut change,
                loaded,
                fire,
                now,
                &dashboard,
                "cycle.missed",
                missed_why(fire, now),
            );
        }
        for fire in &due.skipped {
            let why = format!(
                "blacked out: {}",
                fire.blackout.as_deref().unwrap_or("blackout")
            );
            record(
                &mut change,
                loaded,
                fire,
                now,
                &dashboard,
                "cycle.skipped",
                why,
            );
        }
        // Several daemons: missed and skipped cycles commit before any fire, under the leader's
        // fence (checked even with nothing to record), so a deposed leader stops here.
        if !change.events.is_empty() || (fence.is_some() && !due.fire_now.is_empty()) {
            change.fence = fence.clone();
            shared.engine.store.commit(vec![change]).await?;
            shared.mail.notify_one();
        }
        let mut change = Change::default();
        for fire in &due.fire_now {
            if let Err(e) = fire_cycle(shared, loaded, fire).await {
                let why = format!("could not start: {e}");
                tracing::info!("{name} cycle {}: {why}", fire.cycle);
                record(
                    &mut change,
                    loaded,
                    fire,
                    now,
                    &dashboard,
                    "cycle.failed",
                    why,
                );
            }
        }
        if !change.events.is_empty() {
            change.fence = fence.clone();
            shared.engine.store.commit(vec![change]).await?;
            shared.mail.notify_one();
        }
        if let Some(fire) = due.next_due {
            let at = fire.fires_at.to_utc();
            next = Some(next.map_or(at, |n| n.min(at)));
        }
    }
    // The monthly compliance email is the leader's too, and due on the same clock.
    if let Some(at) = super::compliance_mail::pass(shared).await? {
        next = Some(next.map_or(at, |n| n.min(at)));
    }
    Ok(next)
}

/// Starts the run of one cycle and drives it in its own task.
async fn fire_cycle<S: Store>(
    shared: &Arc<Shared<S>>,
    loaded: &LoadedRunbook,
    fire: &Fire,
) -> Result<(), RunError> {
    let checked = &loaded.checked;
    let now = shared.clock.now();
    let spec = RunSpec {
        commit: loaded.commit.clone(),
        id: new_run_id(&checked.runbook.name.value, now),
        cycle: Some(fire.cycle),
        start: now,
        params: Vec::new(),
        actor: "scheduler".into(),
        rerun: None,
    };
    match shared.engine.start(checked, spec).await {
        Ok(run) => {
            let late = shared.clock.now() - fire.fires_at.to_utc();
            shared
                .counters
                .scheduler_lag(late.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6);
            tracing::info!(
                "run {} started: {} cycle {}{}",
                run.id,
                run.runbook,
                fire.cycle,
                if late > TimeDelta::minutes(1) {
                    format!(" ({} min late)", late.num_minutes())
                } else {
                    String::new()
                }
            );
            shared.spawn_run(checked.clone(), run.id);
            Ok(())
        }
        Err(RunError::CycleTaken { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

fn missed_why(fire: &Fire, now: DateTime<Utc>) -> String {
    let late = now - fire.fires_at.to_utc();
    format!(
        "due {} and not fired within the catch-up window ({} h late)",
        fire.fires_at.to_rfc3339(),
        late.num_hours()
    )
}

/// Adds a cycle event (and, if the runbook asks, an email) to `change`: `cycle.skipped` is
/// mailed as `skipped`, `cycle.missed` and `cycle.failed` (could not start) as `missed`.
fn record(
    change: &mut Change,
    loaded: &LoadedRunbook,
    fire: &Fire,
    now: DateTime<Utc>,
    dashboard_url: &str,
    action: &str,
    why: String,
) {
    let checked = &loaded.checked;
    let runbook = checked.runbook.name.value.clone();
    tracing::info!("{runbook} cycle {}: {action}: {why}", fire.cycle);
    change.events.push(NewEvent {
        at: now,
        actor: "scheduler".into(),
        action: action.into(),
        run_id: None,
        step_id: None,
        details: json!({
            "runbook": runbook,
            "cycle": fire.cycle.to_string(),
            "fires_at": fire.fires_at.to_rfc3339(),
            "reason": why,
        }),
    });
    let Some(notify) = checked.runbook.notify.as_ref() else {
        return;
    };
    if !notify.on.contains(&NotifyEvent::Skipped) {
        return;
    }
    let to = recipients(checked, notify.to.value.as_slice());
    if to.is_empty() {
        return;
    }
    let about = CycleFacts {
        cycle: fire.cycle.to_string(),
        due: fire.fires_at.to_utc(),
        reason: why,
    };
    let notification = Notification {
        runbook,
        at: now,
        tz: checked.tz,
        dashboard_url: dashboard_url.to_string(),
        facts: match action {
            "cycle.skipped" => Facts::Skipped(about),
            _ => Facts::Missed(about),
        },
    };
    change
        .emails
        .push(rendered_email(checked, &notification, to, None, now));
}

/// (runbook, cycle) of the cycles already dealt with, at least the last of each runbook: the
/// latest run of a cycle per runbook (one indexed query) and the recorded cycle events (read
/// through their action's index). Nothing here grows with the runs' history.
async fn dealt_cycles<S: Store>(
    shared: &Arc<Shared<S>>,
    now: DateTime<Utc>,
) -> Result<Vec<(String, Cycle)>, StoreError> {
    let store = &shared.engine.store;
    let mut dealt: Vec<(String, Cycle)> = store
        .last_cycles()
        .await?
        .into_iter()
        .filter_map(|(runbook, cycle)| Some((runbook, cycle.parse().ok()?)))
        .collect();
    let since = now.min(shared.started_at) - EVENT_LOOKBACK;
    let actions = ["cycle.missed", "cycle.skipped", "cycle.failed"];
    for event in store.events_by_action(&actions).await? {
        if event.at < since {
            continue;
        }
        let runbook = event.details["runbook"].as_str();
        let cycle = event.details["cycle"].as_str().and_then(|c| c.parse().ok());
        if let (Some(runbook), Some(cycle)) = (runbook, cycle) {
            dealt.push((runbook.to_string(), cycle));
        }
    }
    Ok(dealt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::{Blackout, parse_date};
    use crate::clock::{Clock, ManualClock};
    use crate::daemon::{Daemon, Delivery, Runbooks, testing};
    use crate::store::EventFilter;
    use crate::store::sqlite::SqliteStore;

    const YAML: &str = "name: sched\ntimezone: UTC\nschedule:\n  - at: patch_tuesday 10:00\ncatch_up: 1h\nroles:\n  committee: [c@example.com]\nnotify: { on: [skipped], to: [committee] }\nsteps:\n  a: { uses: noop }\n";

    fn t(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[tokio::test]
    async fn missed_and_blacked_out_cycles_are_recorded_once_and_the_due_one_fires() {
        let mut loaded = testing::loaded("sched.yaml", YAML);
        // November's Patch Tuesday (the 10th) falls in an org-wide freeze.
        let freeze = Blackout::new(
            parse_date("2026-11-09").unwrap(),
            parse_date("2026-11-12").unwrap(),
            "freeze",
        )
        .unwrap();
        Arc::make_mut(&mut loaded.checked)
            .schedule
            .add_blackouts([freeze]);
        let checked = loaded.checked.clone();
        let mut runbooks = Runbooks::default();
        runbooks.by_name.insert("sched".into(), loaded);
        // December's fire is 2026-12-08 10:00 UTC; the daemon starts half an hour later.
        let clock = Arc::new(ManualClock::new(t("2026-12-08T10:30:00Z")));
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        let options = testing::options(clock.clone(), Delivery::Folder("outbox".into()));
        let daemon = Daemon::new(store, runbooks, options);
        let shared = daemon.shared.clone();
        // September fired before the downtime.
        let spec = RunSpec {
            commit: None,
            id: "september".into(),
            cycle: "2026-09".parse().ok(),
            start: t("2026-09-08T10:00:00Z"),
            params: vec![],
            rerun: None,
            actor: "scheduler".into(),
        };
        shared.engine.start(&checked, spec).await.unwrap();

        let next = pass(&shared).await.unwrap();
        assert_eq!(next, Some(t("2027-01-12T10:00:00Z")));
        let store = &shared.engine.store;
        let events = store.events(EventFilter::default()).await.unwrap();
        let cycle_events: Vec<(String, String)> = events
            .iter()
            .filter(|e| e.action.starts_with("cycle."))
            .map(|e| {
                (
                    e.action.clone(),
                    e.details["cycle"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            cycle_events,
            [
                ("cycle.missed".to_string(), "2026-10".to_string()),
                ("cycle.skipped".to_string(), "2026-11".to_string()),
            ]
        );
        let runs = store.runs(10).await.unwrap();
        let cycles: Vec<_> = runs.iter().filter_map(|r| r.cycle.clone()).collect();
        assert!(cycles.contains(&"2026-12".to_string()), "{cycles:?}");
        // The skipped cycle was mailed to the committee (notify.on has `skipped`).
        let mail = store.due_emails(clock.now(), 10).await.unwrap();
        assert!(
            mail.iter()
                .any(|m| m.email.subject == "[patchday] sched 2026-11: cycle skipped"),
            "{mail:#?}"
        );

        // A second pass finds nothing new to record or fire.
        pass(&shared).await.unwrap();
        let again = store.events(EventFilter::default()).await.unwrap();
        let count = |list: &[crate::store::EventRow]| {
            list.iter()
                .filter(|e| e.action.starts_with("cycle."))
                .count()
        };
        assert_eq!(count(&again), 2);
        assert_eq!(store.runs(10).await.unwrap().len(), 2);
        shared.abort_runs();
    }

    /// A daemon on a manual clock that only moves to the next fire the scheduler asks for.
    async fn daemon_for(yaml: &str, start: &str) -> (Arc<Shared<SqliteStore>>, Arc<ManualClock>) {
        let loaded = testing::loaded("weekly.yaml", yaml);
        let mut runbooks = Runbooks::default();
        runbooks.by_name.insert("weekly".into(), loaded);
        let clock = Arc::new(ManualClock::new(t(start)));
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        let options = testing::options(clock.clone(), Delivery::Folder("outbox".into()));
        let daemon = Daemon::new(store, runbooks, options);
        (daemon.shared.clone(), clock)
    }

    async fn run_cycles(shared: &Shared<SqliteStore>) -> Vec<String> {
        let runs = shared.engine.store.runs(u32::MAX).await.unwrap();
        let mut cycles: Vec<String> = runs.into_iter().filter_map(|r| r.cycle).collect();
        cycles.sort();
        cycles
    }

    async fn cycle_events(shared: &Shared<SqliteStore>) -> Vec<String> {
        let events = shared.engine.store.events(EventFilter::default()).await;
        let events = events.unwrap();
        let cycle_events = events.iter().filter(|e| e.action.starts_with("cycle."));
        cycle_events
            .map(|e| format!("{} {}", e.action, e.details["cycle"].as_str().unwrap()))
            .collect()
    }

    const WEEKLY: &str = "name: weekly\ntimezone: America/New_York\nschedule:\n  - cron: \"0 30 2 * * Sun\"\ncatch_up: 1h\nblackouts:\n  - { from: 2026-04-01, to: 2026-04-07, reason: easter freeze }\nsteps:\n  a: { uses: noop }\n";

    #[tokio::test]
    async fn a_weekly_cron_fires_every_week_once_across_both_dst_changes() {
        // Sundays 02:30 in New York: on 2026-03-08 02:30 does not exist (fires 03:30 EDT); from
        // 2026-11-01 it is EST again. The clock jumps to each fire the scheduler asks for, and
        // a second pass at the same instant fires nothing twice. Easter week is frozen.
        let (shared, clock) = daemon_for(WEEKLY, "2026-02-28T12:00:00Z").await;
        let mut fired_at = Vec::new();
        while clock.now() < t("2026-11-16T00:00:00Z") {
            let next = pass(&shared).await.unwrap().unwrap();
            pass(&shared).await.unwrap();
            clock.set(next);
            fired_at.push(next);
        }
        let cycles = run_cycles(&shared).await;
        let sundays: Vec<String> = (0..38)
            .map(|w| (parse_date("2026-03-01").unwrap() + TimeDelta::weeks(w)).to_string())
            .filter(|d| d.as_str() != "2026-04-05")
            .collect();
        assert_eq!(cycles, sundays);
        assert_eq!(cycle_events(&shared).await, ["cycle.skipped 2026-04-05"]);
        let ny = chrono_tz::America::New_York;
        let local = |at: DateTime<Utc>| at.with_timezone(&ny).to_rfc3339();
        assert!(
            fired_at.contains(&t("2026-03-08T07:30:00Z")),
            "{fired_at:?}"
        );
        assert_eq!(
            local(t("2026-03-08T07:30:00Z")),
            "2026-03-08T03:30:00-04:00"
        );
        // After DST ends, 02:30 is EST again.
        assert!(
            fired_at.contains(&t("2026-11-01T07:30:00Z")),
            "{fired_at:?}"
        );
        assert!(
            fired_at.contains(&t("2026-11-15T07:30:00Z")),
            "{fired_at:?}"
        );
        shared.abort_runs();
    }

    const DAILY: &str = "name: weekly\ntimezone: America/New_York\nschedule:\n  - cron: \"0 30 1 * * *\"\ncatch_up: 6h\nsteps:\n  a: { uses: noop }\n";

    #[tokio::test]
    async fn a_daily_cron_fires_each_day_once_through_the_overlap_and_catches_up() {
        // 01:30 every night: 2026-11-01 01:30 happens twice in New York; it fires once, the
        // first time (EDT).
        let (shared, clock) = daemon_for(DAILY, "2026-10-30T12:00:00Z").await;
        let mut fired_at = Vec::new();
        for _ in 0..4 {
            let next = pass(&shared).await.unwrap().unwrap();
            clock.set(next);
            fired_at.push(next);
        }
        pass(&shared).await.unwrap();
        let expected = [
            "2026-10-31T05:30:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-02T06:30:00Z",
            "2026-11-03T06:30:00Z",
        ];
        assert_eq!(fired_at, expected.map(t));
        // The overlap's second 01:30 (06:30Z) fires nothing more.
        clock.set(t("2026-11-01T06:30:00Z"));
        pass(&shared).await.unwrap();
        let days = ["2026-10-31", "2026-11-01", "2026-11-02", "2026-11-03"];
        assert_eq!(run_cycles(&shared).await, days);

        // Down from 2026-11-03 02:00 to 2026-11-07 10:00 local: the fires of the 4th to the
        // 6th are missed (each recorded once), the 7th's (8.5 h late > 6 h) is missed too, and
        // the 8th is next.
        clock.set(t("2026-11-07T15:00:00Z"));
        let next = pass(&shared).await.unwrap();
        assert_eq!(next, Some(t("2026-11-08T06:30:00Z")));
        pass(&shared).await.unwrap();
        let missed = [
            "cycle.missed 2026-11-04",
            "cycle.missed 2026-11-05",
            "cycle.missed 2026-11-06",
            "cycle.missed 2026-11-07",
        ];
        assert_eq!(cycle_events(&shared).await, missed);
        // Back within the window: the 8th's fire starts 2 h late.
        clock.set(t("2026-11-08T08:30:00Z"));
        pass(&shared).await.unwrap();
        assert_eq!(run_cycles(&shared).await.last().unwrap(), "2026-11-08");
        assert_eq!(run_cycles(&shared).await.len(), 5);
        shared.abort_runs();
    }

    /// Every cadence of issue 17 as one RRULE entry: on a manual clock that jumps to each
    /// fire the scheduler asks for, the runs are exactly the schedule's occurrences for a year
    /// (blackouts and EXDATEs left out), each once.
    #[tokio::test]
    async fn each_rrule_cadence_fires_once_per_occurrence_for_a_year() {
        let cadences = [
            "{ rrule: \"FREQ=WEEKLY;INTERVAL=2;BYDAY=MO\", start: 2027-01-04 09:00 }",
            "{ rrule: \"FREQ=MONTHLY;INTERVAL=2;BYDAY=1MO\", start: 2027-01-04 20:00 }",
            "{ rrule: \"FREQ=MONTHLY;BYDAY=2WE\", start: 2027-01-13 18:00, exdates: [2027-03-10, 2027-06-09] }",
            "{ rrule: \"FREQ=DAILY;INTERVAL=14\", start: 2027-01-05 02:30 }",
            "{ rrule: \"FREQ=MONTHLY;INTERVAL=3;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1\", start: 2027-03-01 17:00 }",
            "{ rrule: \"FREQ=WEEKLY;BYDAY=FR;COUNT=10\", start: 2027-01-01 07:00 }",
        ];
        for cadence in cadences {
            let yaml = format!(
                "name: weekly\ntimezone: America/New_York\nschedule:\n  - {cadence}\ncatch_up: 1h\nblackouts:\n  - {{ from: 2027-07-01, to: 2027-07-14, reason: summer freeze }}\nsteps:\n  a: {{ uses: noop }}\n"
            );
            let (shared, clock) = daemon_for(&yaml, "2027-01-01T00:00:00Z").await;
            let end = t("2028-01-01T00:00:00Z");
            while let Some(next) = pass(&shared).await.unwrap()
                && next < end
            {
                clock.set(next);
            }
            let runbooks = shared.runbooks();
            let schedule = &runbooks.by_name["weekly"].checked.schedule;
            let expected: Vec<String> = schedule
                .fires_from(t("2027-01-01T00:00:00Z"))
                .take_while(|f| f.fires_at.to_utc() < end)
                .filter(|f| f.blackout.is_none())
                .map(|f| f.cycle.to_string())
                .collect();
            assert!(expected.len() >= 4, "{cadence}: {expected:?}");
            assert_eq!(run_cycles(&shared).await, expected, "{cadence}");
            let skipped = cycle_events(&shared).await;
            assert!(
                skipped
                    .iter()
                    .all(|e| e.starts_with("cycle.skipped 2027-07")),
                "{skipped:?}"
            );
            shared.abort_runs();
        }
    }

    /// A runbook edited from monthly to weekly: its month cycles already run do not count as
    /// "the last cycle dealt with" for its day cycles, so this week's fire is not held back by
    /// a month's run (a month sorts before the days in it, a later month after them).
    #[tokio::test]
    async fn a_runbook_edited_from_monthly_to_weekly_fires_its_first_week() {
        let (shared, clock) = daemon_for(WEEKLY, "2026-03-08T07:00:00Z").await;
        // The monthly version of the runbook ran April's cycle already (a later month).
        let monthly = WEEKLY.replace("cron: \"0 30 2 * * Sun\"", "at: patch_tuesday 10:00");
        let monthly = testing::loaded("weekly.yaml", &monthly).checked;
        let spec = RunSpec {
            commit: None,
            id: "monthly".into(),
            cycle: "2026-04".parse().ok(),
            start: t("2026-03-01T10:00:00Z"),
            params: vec![],
            rerun: None,
            actor: "scheduler".into(),
        };
        shared.engine.start(&monthly, spec).await.unwrap();
        // 2026-03-08 02:30 did not exist in New York: the fire was 03:30 EDT (07:30Z), ten
        // minutes ago, within the hour of catch-up.
        clock.set(t("2026-03-08T07:40:00Z"));
        pass(&shared).await.unwrap();
        assert_eq!(run_cycles(&shared).await, ["2026-03-08", "2026-04"]);
        shared.abort_runs();
    }
}
