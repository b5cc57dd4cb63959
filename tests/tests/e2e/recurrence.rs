//! RRULE schedules through the binary: `patchday calendar` agrees with python-dateutil's rrule
//! (the oracle, installed by `.ci/deps-python-cal.sh`) on the corpus in
//! `tests/fixtures/rrule/corpus.tsv` (DST gaps and overlaps in eight zones, month ends, `-1FR`,
//! `BYSETPOS=-1`, leap years, weeks across ISO week 53, COUNT, UNTIL), and the daemon fires an
//! alternate-weeks rule once per occurrence. `calendar --format ics` reads back with python's
//! icalendar package, an independent RFC 5545 parser.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use patchday_tests::daemon::{Daemon, audit_events, emails_with, poll, request};
use patchday_tests::{patchday, repo_root, run, scratch, stderr};
use serde_json::Value;

/// `$PATCHDAY_TEST_PYTHON`, else `.ci/deps-python-cal.sh`'s virtual environment.
pub(crate) fn oracle_python() -> PathBuf {
    let python = std::env::var("PATCHDAY_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("/opt/patchday-calendar/bin/python"));
    assert!(
        python.is_file(),
        "{} is missing: run .ci/deps-python-cal.sh (as root) or set PATCHDAY_TEST_PYTHON",
        python.display()
    );
    python
}

struct Case {
    zone: String,
    start: String,
    rule: String,
    exdates: Vec<String>,
}

fn corpus(path: &Path) -> Vec<Case> {
    let text = std::fs::read_to_string(path).unwrap();
    let lines = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'));
    lines
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            let exdates = fields.get(3).copied().unwrap_or_default();
            Case {
                zone: fields[0].into(),
                start: fields[1].into(),
                rule: fields[2].into(),
                exdates: exdates
                    .split(',')
                    .filter(|d| !d.is_empty())
                    .map(String::from)
                    .collect(),
            }
        })
        .collect()
}

fn runbook(case: &Case) -> String {
    let exdates = case.exdates.join(", ");
    format!(
        "name: oracle\ntimezone: {}\nschedule:\n  - rrule: \"{}\"\n    start: {}\n    exdates: [{exdates}]\nsteps:\n  a: {{ uses: noop }}\n",
        case.zone, case.rule, case.start
    )
}

/// (date, UTC instant) of the first 40 fires `patchday calendar` lists from the start's date.
fn calendar(file: &Path, case: &Case) -> Vec<(String, String)> {
    let from = &case.start[..10];
    let file = file.display().to_string();
    let args = [
        "calendar", &file, "--from", from, "--count", "40", "--format", "json",
    ];
    let out = run(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}: {}",
        case.rule,
        stderr(&out)
    );
    let cal: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cycles = cal["cycles"].as_array().unwrap();
    cycles
        .iter()
        .map(|c| {
            let at = chrono::DateTime::parse_from_rfc3339(c["fires_at"].as_str().unwrap()).unwrap();
            let utc = at.to_utc().format("%Y-%m-%dT%H:%M:%SZ").to_string();
            (c["cycle"].as_str().unwrap().to_string(), utc)
        })
        .collect()
}

#[test]
fn calendar_agrees_with_python_dateutil_on_the_corpus() {
    let fixtures = repo_root().join("tests/fixtures/rrule");
    let cases = corpus(&fixtures.join("corpus.tsv"));
    assert!(
        cases.len() >= 50,
        "the corpus holds {} rules; keep at least 50",
        cases.len()
    );
    let out = Command::new(oracle_python())
        .arg(fixtures.join("oracle.py"))
        .arg(fixtures.join("corpus.tsv"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(expected.len(), cases.len());
    let dir = scratch("rrule-oracle");
    let mut differ = Vec::new();
    for (i, (case, want)) in cases.iter().zip(&expected).enumerate() {
        assert_eq!(want["rule"], case.rule.as_str());
        let file = dir.join(format!("rule{i}.yaml"));
        std::fs::write(&file, runbook(case)).unwrap();
        let want: Vec<(String, String)> = want["occurrences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o["date"].as_str().unwrap().into(),
                    o["utc"].as_str().unwrap().into(),
                )
            })
            .collect();
        assert!(
            !want.is_empty(),
            "{}: the oracle has no occurrence",
            case.rule
        );
        let got = calendar(&file, case);
        if got != want {
            differ.push(format!(
                "{} {} {}\n want {want:?}\n got  {got:?}",
                case.zone, case.start, case.rule
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "{} rule(s) differ:\n{}",
        differ.len(),
        differ.join("\n")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

const ALTERNATE: &str = r#"name: alternate
timezone: America/New_York
schedule:
  - rrule: "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO"
    start: 2027-01-04 09:00
    exdates: [2027-03-15]
catch_up: 1h
roles:
  ops: [ops@example.com]
notify: { on: [finished], to: [ops] }
steps:
  patch: { uses: noop }
"#;

/// The daemon fires an alternate-Monday rule at its occurrence (not on the Monday between, not
/// on an EXDATE), once, across a restart.
#[test]
fn the_daemon_fires_an_alternate_weeks_rule_once_per_occurrence() {
    let dir = scratch("rrule-daemon");
    std::fs::create_dir_all(dir.join("runbooks")).unwrap();
    std::fs::write(dir.join("runbooks/alternate.yaml"), ALTERNATE).unwrap();
    let database = format!("sqlite://{}", dir.join("d.db").display());
    let serve = |now: &str| {
        let mut cmd = patchday();
        cmd.current_dir(&dir)
            .args(["serve", "--listen", "127.0.0.1:0", "--database", &database])
            .args(["--runbooks", &dir.join("runbooks").display().to_string()])
            .args(["--outbox", &dir.join("outbox").display().to_string()])
            .args(["--now", now, "--virtual-clock"]);
        Daemon::start(cmd)
    };
    let finished = |cycle: &str| {
        let subject = format!("Subject: [patchday] alternate {cycle}: run succeeded");
        poll(&subject, Duration::from_secs(60), || {
            (!emails_with(&dir.join("outbox"), &subject).is_empty()).then_some(())
        });
    };
    // Sunday 2027-02-28: the next fire is Monday 2027-03-01 09:00 EST (14:00Z).
    let mut daemon = serve("2027-02-28T12:00:00Z");
    finished("2027-03-01");
    assert_eq!(daemon.terminate().code(), Some(0));
    // After DST began (2027-03-14): the 15th is an EXDATE, so the next is 2027-03-29 09:00 EDT.
    let mut daemon = serve("2027-03-08T12:00:00Z");
    finished("2027-03-29");
    let events = audit_events(&database);
    let started: Vec<(String, String)> = events
        .iter()
        .filter(|e| e["action"] == "run.started")
        .map(|e| {
            (
                e["details"]["cycle"].as_str().unwrap().to_string(),
                e["at"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let cycles: Vec<&str> = started.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(cycles, ["2027-03-01", "2027-03-29"]);
    assert!(
        started[1].1.starts_with("2027-03-29T13:00:00"),
        "{started:?}"
    );
    assert_eq!(daemon.terminate().code(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `validate --now` warns of an RRULE whose UNTIL has passed; before it, nothing to say.
#[test]
fn validate_warns_when_an_until_is_in_the_past() {
    let dir = scratch("rrule-until");
    let file = dir.join("until.yaml");
    let yaml = "name: until\ntimezone: Europe/Berlin\nschedule:\n  - { rrule: \"FREQ=WEEKLY;BYDAY=MO;UNTIL=20270301\", start: 2027-01-04 09:00 }\nsteps:\n  a: { uses: noop }\n";
    std::fs::write(&file, yaml).unwrap();
    let file = file.display().to_string();
    let after = run(&["validate", &file, "--now", "2027-03-02T00:00:00Z"]);
    assert_eq!(after.status.code(), Some(0), "a warning, not an error");
    let err = stderr(&after);
    assert!(err.contains("until.yaml:4:14: warning: `FREQ=WEEKLY;BYDAY=MO;UNTIL=20270301` fires no more after 2027-03-02"), "{err}");
    let before = run(&["validate", &file, "--now", "2027-02-28T00:00:00Z"]);
    assert_eq!(before.status.code(), Some(0));
    assert!(!stderr(&before).contains("warning"), "{}", stderr(&before));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `calendar --format ics` read back by an independent RFC 5545 parser (python's icalendar):
/// the same cycles and instants as `--format json`, cancelled where blacked out, and the
/// escaped text comes back as written.
#[test]
fn the_ics_calendar_reads_back_with_an_independent_parser() {
    let dir = scratch("rrule-ics");
    let file = dir.join("lab.yaml");
    let yaml = "name: lab\ntimezone: America/New_York\nschedule:\n  - { rrule: \"FREQ=DAILY;INTERVAL=14\", start: 2027-01-05 02:30, exdates: [2027-02-02] }\nblackouts:\n  - { from: 2027-03-01, to: 2027-03-20, reason: \"freeze; no changes, please\" }\nsteps:\n  a: { uses: noop }\n";
    std::fs::write(&file, yaml).unwrap();
    let file = file.display().to_string();
    let listing = |format: &str| {
        let args = [
            "calendar",
            &file,
            "--now",
            "2027-01-01T00:00:00Z",
            "--count",
            "8",
            "--format",
            format,
        ];
        let out = run(&args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        out.stdout
    };
    let json: Value = serde_json::from_slice(&listing("json")).unwrap();
    let ics = read_ics(&listing("ics"));
    assert_eq!(ics["version"], "2.0");
    let events = ics["events"].as_array().unwrap();
    let cycles = json["cycles"].as_array().unwrap();
    assert_eq!(events.len(), 8);
    assert_eq!(events.len(), cycles.len());
    for (event, cycle) in events.iter().zip(cycles) {
        let id = cycle["cycle"].as_str().unwrap();
        assert_eq!(event["uid"], format!("{id}.lab@patchday"));
        let at = chrono::DateTime::parse_from_rfc3339(cycle["fires_at"].as_str().unwrap()).unwrap();
        assert_eq!(
            event["dtstart"],
            at.to_utc().format("%Y-%m-%dT%H:%M:%SZ").to_string()
        );
        let cancelled = !cycle["blackout"].is_null();
        assert_eq!(
            event["status"],
            if cancelled { "CANCELLED" } else { "CONFIRMED" }
        );
    }
    // Every 14 days from Tuesday 5 January: 2027-02-02 is an EXDATE; 2027-03-02 and 2027-03-16
    // fall in the freeze (listed, cancelled).
    let ids: Vec<&str> = cycles
        .iter()
        .map(|c| c["cycle"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "2027-01-05",
            "2027-01-19",
            "2027-02-16",
            "2027-03-02",
            "2027-03-16",
            "2027-03-30",
            "2027-04-13",
            "2027-04-27"
        ]
    );
    assert_eq!(events[3]["status"], "CANCELLED");
    let description = events[3]["description"].as_str().unwrap();
    assert!(
        description.contains("skipped: freeze; no changes, please"),
        "{description}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// An RFC 5545 text read by python's icalendar (`tests/fixtures/rrule/read_ics.py`):
/// `{"version", "events": [{"uid", "dtstart", "status", "sequence", "summary", "description"}]}`.
pub(crate) fn read_ics(text: &[u8]) -> Value {
    python_json("read_ics.py", &[], text)
}

/// The JSON that `tests/fixtures/rrule/SCRIPT ARGS` prints, run by [`oracle_python`] with
/// `input` on its standard input.
pub(crate) fn python_json(script: &str, args: &[&str], input: &[u8]) -> Value {
    let mut reader = Command::new(oracle_python())
        .arg(repo_root().join("tests/fixtures/rrule").join(script))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    reader.stdin.take().unwrap().write_all(input).unwrap();
    let out = reader.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `GET /calendar.ics` of a daemon serving the example runbooks: with a `feed` token, every
/// runbook's (or one runbook's) cycles at the instants `patchday calendar --format json` gives,
/// blacked-out ones cancelled, read back by python's icalendar; without a token, with a wrong
/// one, with a `read` token and once the feed token's line is removed: 401 and no runbook
/// named. The token never reaches the daemon's log.
#[test]
fn the_calendar_feed_needs_a_feed_token_and_matches_the_cli() {
    const NOW: &str = "2026-12-10T00:00:00Z";
    let dir = scratch("calendar-feed");
    let minted = |scopes: &str| {
        let out = run(&["api-token", "cal", "--scopes", scopes, "--format", "json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let minted: Value = serde_json::from_slice(&out.stdout).unwrap();
        let token = minted["token"].as_str().unwrap().to_string();
        (token, minted["line"].as_str().unwrap().to_string())
    };
    let (feed, feed_line) = minted("feed");
    let (reader, reader_line) = minted("read");
    let reader_line = reader_line.replacen("cal", "reader", 1);
    let tokens = dir.join("api-tokens");
    std::fs::write(&tokens, format!("{feed_line}\n{reader_line}\n")).unwrap();
    let config = dir.join("patchday.toml");
    std::fs::write(&config, "[security]\napi_tokens_file = \"api-tokens\"\n").unwrap();
    let log = dir.join("daemon.log");
    let runbooks = repo_root().join("runbooks");
    let log_file = std::fs::File::create(&log).unwrap();
    let mut daemon = crate::feed::serve(&dir, &runbooks, &config, NOW, log_file.into());
    let get = |path: &str| request(&daemon.addr, "GET", path, &[], "");

    let (status, head, body) = get(&format!("/calendar.ics?token={feed}"));
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(
        head.to_lowercase().contains("content-type: text/calendar"),
        "{head}"
    );
    let all = read_ics(body.as_bytes());
    let mut expected_all = Vec::new();
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&runbooks).unwrap() {
        let file = entry.unwrap().path();
        if file.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let args = [
            "calendar",
            &file.display().to_string(),
            "--now",
            NOW,
            "--config",
            &config.display().to_string(),
            "--format",
            "json",
        ];
        let out = run(&args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        let name = json["runbook"].as_str().unwrap().to_string();
        let expected: Vec<(String, String, String)> = json["cycles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let at = chrono::DateTime::parse_from_rfc3339(c["fires_at"].as_str().unwrap())
                    .unwrap()
                    .to_utc()
                    .format("%Y-%m-%dT%H:%M:%SZ")
                    .to_string();
                let status = if c["blackout"].is_null() {
                    "CONFIRMED"
                } else {
                    "CANCELLED"
                };
                (
                    format!("{}.{name}@patchday", c["cycle"].as_str().unwrap()),
                    at,
                    status.to_string(),
                )
            })
            .collect();
        // The feed of this runbook alone.
        let (status, _, one) = get(&format!("/calendar.ics?runbook={name}&token={feed}"));
        assert_eq!(status, 200, "{one}");
        assert_eq!(events(&read_ics(one.as_bytes())), expected, "{name}");
        expected_all.extend(expected);
        names.push(name);
    }
    assert!(names.len() >= 4, "{names:?}");
    let mut got = events(&all);
    got.sort();
    expected_all.sort();
    assert_eq!(got, expected_all);
    assert!(
        expected_all.iter().any(|(_, _, s)| s == "CANCELLED"),
        "a blackout is in the window"
    );

    // Nothing without the feed token; an unknown runbook is 404 with a good one.
    let refused = |path: &str| {
        let (status, head, body) = get(path);
        assert_eq!(status, 401, "{path}: {head}\n{body}");
        for name in &names {
            assert!(!body.contains(name.as_str()), "{path}: {body}");
        }
    };
    refused("/calendar.ics");
    refused("/calendar.ics?token=pdt_wrong");
    refused(&format!("/calendar.ics?token={reader}"));
    refused(&format!("/calendar.ics?runbook=monthly&token={reader}"));
    let (status, _, _) = get(&format!("/calendar.ics?runbook=nope&token={feed}"));
    assert_eq!(status, 404);
    // A feed token is no API token.
    let bearer = format!("Bearer {feed}");
    let (status, _, _) = request(
        &daemon.addr,
        "GET",
        "/api/v1/runbooks",
        &[("Authorization", &bearer)],
        "",
    );
    assert_eq!(status, 403);

    // Revoked: its line removed, the daemon re-reads the file and the feed stops.
    std::fs::write(&tokens, format!("{reader_line}\n")).unwrap();
    poll(
        "the revoked token to stop working",
        Duration::from_secs(30),
        || (get(&format!("/calendar.ics?token={feed}")).0 == 401).then_some(()),
    );
    refused(&format!("/calendar.ics?token={feed}"));
    assert_eq!(daemon.terminate().code(), Some(0));
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        !logged.contains(&feed) && !logged.contains(&reader),
        "{logged}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// (uid, dtstart, status) of every event read by [`read_ics`].
fn events(ics: &Value) -> Vec<(String, String, String)> {
    ics["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap().to_string();
            (text("uid"), text("dtstart"), text("status"))
        })
        .collect()
}
