//! The calendar feed (`GET /calendar.ics`, issue 13 item 7) as a calendar program sees it.
//!
//! - Instants: the feed of the example runbooks and of New York, Berlin and Sydney runbooks
//!   firing on their DST changes (a wall-clock time in the spring gap, one repeated in the
//!   autumn), with `milestones=1`, expanded by python's `recurring-ical-events` (installed by
//!   `.ci/deps-python-cal.sh`), has the events and instants `patchday calendar --milestones
//!   --format json` gives, blacked-out cycles `STATUS:CANCELLED` with the reason.
//! - SEQUENCE: a blackout added, a milestone step's time edited and the schedule's time edited
//!   each bump exactly the events they move (the daemon reloads the folder); a restart of the
//!   daemon on the same database bumps nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use patchday_tests::daemon::{Daemon, poll, request};
use patchday_tests::{patchday, repo_root, run, scratch, stderr};
use serde_json::Value;

use crate::recurrence::python_json;

/// A daemon serving a runbooks folder at a fixed `--now`, and a `feed`-scoped token.
struct Feed {
    daemon: Daemon,
    token: String,
    config: PathBuf,
    dir: PathBuf,
    runbooks: PathBuf,
    now: String,
}

impl Feed {
    fn start(dir: &Path, runbooks: &Path, now: &str) -> Feed {
        let out = run(&["api-token", "cal", "--scopes", "feed", "--format", "json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let minted: Value = serde_json::from_slice(&out.stdout).unwrap();
        std::fs::write(
            dir.join("api-tokens"),
            format!("{}\n", minted["line"].as_str().unwrap()),
        )
        .unwrap();
        let config = dir.join("patchday.toml");
        std::fs::write(&config, "[security]\napi_tokens_file = \"api-tokens\"\n").unwrap();
        let daemon = serve(dir, runbooks, &config, now, Stdio::null());
        Feed {
            daemon,
            token: minted["token"].as_str().unwrap().to_string(),
            config,
            dir: dir.to_path_buf(),
            runbooks: runbooks.to_path_buf(),
            now: now.to_string(),
        }
    }

    /// Stops the daemon and starts it again on the same database.
    fn restart(&mut self) {
        assert_eq!(self.daemon.terminate().code(), Some(0));
        self.daemon = serve(
            &self.dir,
            &self.runbooks,
            &self.config,
            &self.now,
            Stdio::null(),
        );
    }

    /// The feed's text for `query` (`runbook=…&milestones=1`, or "").
    fn text(&self, query: &str) -> String {
        let path = format!("/calendar.ics?{query}&token={}", self.token);
        let (status, head, body) = request(&self.daemon.addr, "GET", &path, &[], "");
        assert_eq!(status, 200, "{head}\n{body}");
        body
    }

    /// The feed's occurrences for `query`, as `recurring-ical-events` expands them.
    fn occurrences(&self, query: &str) -> Vec<Occurrence> {
        occurrences(self.text(query).as_bytes())
    }
}

/// `patchday serve` on `dir`'s database and `runbooks` with `config` at the fixed instant
/// `now`, its standard error to `stderr`.
pub(crate) fn serve(
    dir: &Path,
    runbooks: &Path,
    config: &Path,
    now: &str,
    stderr: Stdio,
) -> Daemon {
    let mut cmd = patchday();
    cmd.current_dir(dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args([
            "--database",
            &format!("sqlite://{}", dir.join("d.db").display()),
        ])
        .args(["--runbooks", &runbooks.display().to_string()])
        .args(["--outbox", &dir.join("outbox").display().to_string()])
        .args(["--config", &config.display().to_string()])
        .args(["--now", now])
        .stderr(stderr);
    Daemon::start(cmd)
}

/// One event as a calendar program shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Occurrence {
    uid: String,
    /// UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    start: String,
    status: String,
    sequence: u64,
    description: String,
}

/// The occurrences of an RFC 5545 text from 2000 to 2100, by `recurring-ical-events`
/// (`tests/fixtures/rrule/occurrences.py`), sorted by UID.
fn occurrences(ics: &[u8]) -> Vec<Occurrence> {
    let window = ["2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z"];
    let json = python_json("occurrences.py", &window, ics);
    let mut all: Vec<Occurrence> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|o| Occurrence {
            uid: o["uid"].as_str().unwrap().into(),
            start: o["start"].as_str().unwrap().into(),
            status: o["status"].as_str().unwrap().into(),
            sequence: o["sequence"].as_u64().unwrap(),
            description: o["description"].as_str().unwrap().into(),
        })
        .collect();
    all.sort();
    all
}

/// (uid, UTC start, status, blackout reason) of every cycle and milestone `patchday calendar
/// FILE --milestones --format json` lists from `now`, and the runbook's name.
fn from_the_cli(file: &Path, feed: &Feed) -> (String, Vec<(String, String, String, String)>) {
    let file = file.display().to_string();
    let config = feed.config.display().to_string();
    let args = [
        "calendar",
        &file,
        "--now",
        &feed.now,
        "--config",
        &config,
        "--milestones",
        "--format",
        "json",
    ];
    let out = run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let name = json["runbook"].as_str().unwrap().to_string();
    let utc = |at: &Value| {
        chrono::DateTime::parse_from_rfc3339(at.as_str().unwrap())
            .unwrap()
            .to_utc()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    let mut expected = Vec::new();
    for cycle in json["cycles"].as_array().unwrap() {
        let id = cycle["cycle"].as_str().unwrap();
        let (status, reason) = match cycle["blackout"].as_str() {
            Some(reason) => ("CANCELLED", reason),
            None => ("CONFIRMED", ""),
        };
        let row = |uid: String, at: &Value| (uid, utc(at), status.to_string(), reason.to_string());
        expected.push(row(format!("{id}.{name}@patchday"), &cycle["fires_at"]));
        for step in cycle["milestones"].as_array().unwrap() {
            let uid = format!("{}.{id}.{name}@patchday", step["step"].as_str().unwrap());
            expected.push(row(uid, &step["at"]));
        }
    }
    expected.sort();
    (name, expected)
}

/// Every runbook of `feed`'s folder: its feed (alone, with milestones) has the CLI's events,
/// instants and statuses, a cancelled one says why; the whole feed is their union. Returns
/// the whole feed.
fn feed_agrees_with_the_cli(feed: &Feed) -> Vec<Occurrence> {
    let mut union = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&feed.runbooks)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    for file in &files {
        let (name, expected) = from_the_cli(file, feed);
        let got = feed.occurrences(&format!("runbook={name}&milestones=1"));
        let seen: Vec<(String, String, String)> = got
            .iter()
            .map(|o| (o.uid.clone(), o.start.clone(), o.status.clone()))
            .collect();
        let wanted: Vec<(String, String, String)> = expected
            .iter()
            .map(|(u, s, st, _)| (u.clone(), s.clone(), st.clone()))
            .collect();
        assert_eq!(seen, wanted, "{name}");
        for (o, (_, _, _, reason)) in got.iter().zip(&expected) {
            if !reason.is_empty() {
                let skipped = format!("skipped: {reason}");
                assert!(o.description.contains(&skipped), "{o:?}");
            }
        }
        union.extend(got);
    }
    union.sort();
    let all = feed.occurrences("milestones=1");
    assert_eq!(all, union);
    all
}

/// The UTC start and status of the event `uid` in `all`.
fn event<'a>(all: &'a [Occurrence], uid: &str) -> &'a Occurrence {
    all.iter()
        .find(|o| o.uid == uid)
        .unwrap_or_else(|| panic!("no {uid} in {all:#?}"))
}

const NEW_YORK: &str = "name: new-york\ntimezone: America/New_York\nschedule:\n  - cron: \"0 30 2 13-15 3 *\"\n  - cron: \"0 30 1 6-8 11 *\"\nblackouts:\n  - { from: 2027-11-06, to: 2027-11-06, reason: \"election day; no changes, please\" }\nsteps:\n  report: { uses: noop, at: start+1d 02:30 }\n";

const BERLIN: &str = "name: berlin\ntimezone: Europe/Berlin\nschedule:\n  - cron: \"0 30 2 27-29 3 *\"\n  - cron: \"0 30 2 30,31 10 *\"\nblackouts:\n  - { from: 2027-03-29, to: 2027-03-29, reason: Osterferien }\nsteps:\n  report: { uses: noop, at: start+1d 02:30 }\n";

const SYDNEY: &str = "name: sydney\ntimezone: Australia/Sydney\nschedule:\n  - cron: \"0 30 2 3-5 4 *\"\n  - cron: \"0 30 2 3 10 *\"\nblackouts:\n  - { from: 2027-04-05, to: 2027-04-05, reason: Easter Monday }\nsteps:\n  report: { uses: noop, at: start+1d 02:30 }\n";

#[test]
fn the_feed_has_the_cli_s_instants_for_the_examples_and_across_dst() {
    // The example runbooks, through a December and a year-end freeze.
    let dir = scratch("feed-examples");
    let feed = Feed::start(&dir, &repo_root().join("runbooks"), "2026-12-10T00:00:00Z");
    let all = feed_agrees_with_the_cli(&feed);
    assert!(all.iter().any(|o| o.status == "CANCELLED"), "a blackout");
    assert!(
        all.iter().any(|o| o.uid.matches('.').count() == 2),
        "milestone events"
    );
    drop(feed);
    let _ = std::fs::remove_dir_all(&dir);

    // New York, Berlin and Sydney on their DST changes of 2027.
    let dir = scratch("feed-dst");
    let runbooks = dir.join("runbooks");
    std::fs::create_dir_all(&runbooks).unwrap();
    for (file, yaml) in [
        ("new-york.yaml", NEW_YORK),
        ("berlin.yaml", BERLIN),
        ("sydney.yaml", SYDNEY),
    ] {
        std::fs::write(runbooks.join(file), yaml).unwrap();
    }
    let feed = Feed::start(&dir, &runbooks, "2027-03-01T00:00:00Z");
    let all = feed_agrees_with_the_cli(&feed);
    // A time in the spring gap takes the offset before it; a repeated one its first
    // occurrence (RFC 5545 §3.3.5); the milestone a day later crosses the change.
    let expected = [
        ("2027-03-13.new-york", "2027-03-13T07:30:00Z", "CONFIRMED"),
        ("2027-03-14.new-york", "2027-03-14T07:30:00Z", "CONFIRMED"),
        ("2027-03-15.new-york", "2027-03-15T06:30:00Z", "CONFIRMED"),
        (
            "report.2027-03-13.new-york",
            "2027-03-14T07:30:00Z",
            "CONFIRMED",
        ),
        ("2027-11-06.new-york", "2027-11-06T05:30:00Z", "CANCELLED"),
        ("2027-11-07.new-york", "2027-11-07T05:30:00Z", "CONFIRMED"),
        ("2027-11-08.new-york", "2027-11-08T06:30:00Z", "CONFIRMED"),
        ("2027-03-27.berlin", "2027-03-27T01:30:00Z", "CONFIRMED"),
        ("2027-03-28.berlin", "2027-03-28T01:30:00Z", "CONFIRMED"),
        ("2027-03-29.berlin", "2027-03-29T00:30:00Z", "CANCELLED"),
        ("2027-10-31.berlin", "2027-10-31T00:30:00Z", "CONFIRMED"),
        ("2027-04-03.sydney", "2027-04-02T15:30:00Z", "CONFIRMED"),
        ("2027-04-04.sydney", "2027-04-03T15:30:00Z", "CONFIRMED"),
        ("2027-04-05.sydney", "2027-04-04T16:30:00Z", "CANCELLED"),
        (
            "report.2027-04-03.sydney",
            "2027-04-03T15:30:00Z",
            "CONFIRMED",
        ),
        ("2027-10-03.sydney", "2027-10-02T16:30:00Z", "CONFIRMED"),
    ];
    for (uid, start, status) in expected {
        let got = event(&all, &format!("{uid}@patchday"));
        assert_eq!(
            (got.start.as_str(), got.status.as_str()),
            (start, status),
            "{uid}"
        );
    }
    let election = event(&all, "2027-11-06.new-york@patchday");
    assert!(
        election
            .description
            .contains("skipped: election day; no changes, please"),
        "{election:?}"
    );
    let file = runbooks.join("sydney.yaml").display().to_string();
    let text = run(&["calendar", &file, "--milestones"]);
    assert_eq!(text.status.code(), Some(2));
    assert!(stderr(&text).contains("--milestones goes with --format json or ics"));
    let path = format!("/calendar.ics?milestones=yes&token={}", feed.token);
    let (status, _, body) = request(&feed.daemon.addr, "GET", &path, &[], "");
    assert_eq!((status, body.as_str()), (400, "milestones= takes 1 or 0\n"));
    let nov7 = event(&all, "2027-11-07.new-york@patchday");
    assert!(nov7.description.contains("01:30 EDT"), "{nov7:?}");
    drop(feed);
    let _ = std::fs::remove_dir_all(&dir);
}

const MOVING: &str = "name: moving\ntimezone: Europe/Berlin\nschedule:\n  - at: patch_tuesday-1d 09:00\nsteps:\n  cab: { uses: noop, at: patch_tuesday-1d 10:00 }\n  patch: { uses: noop, needs: [cab], at: patch_tuesday+1d 20:00 }\n";

const STEADY: &str = "name: steady\ntimezone: UTC\nschedule:\n  - at: patch_tuesday 09:00\nsteps:\n  report: { uses: noop, at: patch_tuesday 12:00 }\n";

/// uid → (start, status, sequence) of a feed.
type Seen = BTreeMap<String, (String, String, u64)>;

fn seen(all: &[Occurrence]) -> Seen {
    all.iter()
        .map(|o| {
            let value = (o.start.clone(), o.status.clone(), o.sequence);
            (o.uid.clone(), value)
        })
        .collect()
}

/// Checks that between `before` and `after` exactly the events `moved` picks changed (start
/// or status) and had their SEQUENCE go up by one, and every other stayed as it was.
fn bumped_exactly(before: &Seen, after: &Seen, moved: impl Fn(&str) -> bool) {
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    let mut n = 0;
    for (uid, (start, status, sequence)) in before {
        let now = &after[uid];
        if moved(uid) {
            n += 1;
            assert_ne!((&now.0, &now.1), (start, status), "{uid} did not change");
            assert_eq!(now.2, sequence + 1, "{uid}: {now:?}");
        } else {
            assert_eq!(now, &before[uid], "{uid} changed");
        }
    }
    assert!(n > 0, "nothing moved");
}

#[test]
fn an_event_s_sequence_goes_up_when_an_edit_moves_it_and_not_on_a_restart() {
    let dir = scratch("feed-sequence");
    let runbooks = dir.join("runbooks");
    std::fs::create_dir_all(&runbooks).unwrap();
    let moving = runbooks.join("moving.yaml");
    std::fs::write(&moving, MOVING).unwrap();
    std::fs::write(runbooks.join("steady.yaml"), STEADY).unwrap();
    let mut feed = Feed::start(&dir, &runbooks, "2026-12-10T00:00:00Z");
    let first = seen(&feed.occurrences("milestones=1"));
    assert_eq!(first.len(), 12 * 3 + 12 * 2);
    assert!(
        first
            .values()
            .all(|(_, status, sequence)| { status == "CONFIRMED" && *sequence == 0 })
    );
    assert_eq!(seen(&feed.occurrences("milestones=1")), first, "a refetch");

    // Each edit is picked up by the daemon's reload; the feed is read until it shows it.
    let edit = |yaml: &str, shows: &dyn Fn(&Seen) -> bool| {
        std::fs::write(&moving, yaml).unwrap();
        poll(
            "the edit to reach the feed",
            Duration::from_secs(60),
            || {
                let now = seen(&feed.occurrences("milestones=1"));
                shows(&now).then_some(now)
            },
        )
    };
    // 1. A blackout over March's cycle: it and its milestones are cancelled.
    let frozen = format!(
        "{MOVING}blackouts:\n  - {{ from: 2027-03-08, to: 2027-03-08, reason: quarter close }}\n"
    );
    let second = edit(&frozen, &|s| s["2027-03.moving@patchday"].1 == "CANCELLED");
    bumped_exactly(&first, &second, |uid| {
        uid.contains(".2027-03.moving") || uid == "2027-03.moving@patchday"
    });
    // 2. The CAB an hour later: every cab milestone moves, nothing else.
    let later_cab = frozen.replace("patch_tuesday-1d 10:00", "patch_tuesday-1d 11:00");
    let third = edit(&later_cab, &|s| {
        s["cab.2027-01.moving@patchday"].0 == "2027-01-11T10:00:00Z"
    });
    bumped_exactly(&second, &third, |uid| uid.starts_with("cab."));
    assert_eq!(third["cab.2027-03.moving@patchday"].2, 2);
    // 3. The cycle an hour earlier: the cycles' own events move, the milestones stay.
    let earlier = later_cab.replace("patch_tuesday-1d 09:00", "patch_tuesday-1d 08:00");
    let fourth = edit(&earlier, &|s| {
        s["2027-01.moving@patchday"].0 == "2027-01-11T07:00:00Z"
    });
    bumped_exactly(&third, &fourth, |uid| {
        uid.ends_with(".moving@patchday") && uid.matches('.').count() == 1
    });

    // A restart on the same database bumps nothing; neither does a feed without milestones.
    feed.restart();
    assert_eq!(seen(&feed.occurrences("milestones=1")), fourth);
    let cycles_only = seen(&feed.occurrences(""));
    assert_eq!(cycles_only.len(), 24);
    for (uid, value) in &cycles_only {
        assert_eq!(value, &fourth[uid], "{uid}");
    }
    drop(feed);
    let _ = std::fs::remove_dir_all(&dir);
}
