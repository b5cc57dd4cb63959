//! The API's lists in pages (issue 12 item 3): `GET /api/v1/runs`, `/runs/{id}/steps` and
//! `/runs/{id}/events` take `limit` and `after` and give `next`; walking the cursor over a run
//! of 2,500 host rows returns each row once, in order. `GET /api/v1/runs/{id}` is bounded: the
//! run's rows counted and the first page of rows and events, whose `steps_next` and
//! `audit_next` continue through the paged routes to every row and event exactly once; a small
//! run's answer holds its whole lists. `patchday status` lists every row of a small run, and of
//! a large one the counts and the rows not succeeded, pending or waiting (`--all`: every row).

use patchday_tests::daemon::{Daemon, request, serve_command};
use patchday_tests::{api_token, inventory, patchday, scratch, stderr, stdout};
use serde_json::Value;

const HOSTS: usize = 2_500;
/// The first page of `GET /api/v1/runs/{id}` (the paged routes' default `limit`).
const DETAIL_PAGE: usize = 50;
/// The mixed run's hosts (more than a page), and the one whose patch fails.
const MIXED_HOSTS: usize = 60;
const FAILING: &str = "h0007";

/// `GET path` with the bearer token: the status and the JSON body.
fn get_json(addr: &str, token: &str, path: &str) -> (u16, Value) {
    let bearer = format!("Bearer {token}");
    let (status, _, body) = request(addr, "GET", path, &[("Authorization", &bearer)], "");
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (status, json)
}

/// Walks `path` (a list route, `?limit=N` included) page by page through `next`: each page's
/// `key` items, and how many pages it took.
fn walk(addr: &str, token: &str, path: &str, key: &str) -> (Vec<Value>, usize) {
    let (mut items, mut pages, mut after) = (Vec::new(), 0, None::<String>);
    loop {
        let url = match &after {
            None => path.to_string(),
            Some(after) => format!("{path}&after={after}"),
        };
        let (status, page) = get_json(addr, token, &url);
        assert_eq!(status, 200, "{url}: {page}");
        pages += 1;
        items.extend(page[key].as_array().unwrap().iter().cloned());
        after = match &page["next"] {
            Value::Null => return (items, pages),
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        };
        assert!(pages < 100, "the cursor does not end");
    }
}

/// `patchday run runbooks/RUNBOOK.yaml` into `database`, which must exit with `code`.
fn run_to_the_end(dir: &std::path::Path, runbook: &str, database: &str, code: i32) {
    let out = patchday()
        .current_dir(dir)
        .args(["run", &format!("runbooks/{runbook}.yaml")])
        .args(["--database", database])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(code), "{runbook}: {}", stderr(&out));
}

/// The daemon on `database`, and an API token (named `reader`) it accepts.
fn serve_with_a_reader(dir: &std::path::Path, database: &str) -> (Daemon, String) {
    let (token, tokens) = api_token(dir, "reader");
    let mut serve = serve_command(dir, database, &dir.join("outbox"));
    serve.env("PATCHDAY_SECURITY_API_TOKENS_FILE", &tokens);
    (Daemon::start(serve), token)
}

#[test]
fn walking_the_cursors_returns_every_run_row_and_event_once_in_order() {
    let dir = scratch("cursors");
    let runbooks = dir.join("runbooks");
    std::fs::create_dir_all(&runbooks).unwrap();
    let hosts: Vec<String> = (0..HOSTS).map(|h| format!("h{h:04}")).collect();
    std::fs::write(runbooks.join("hosts.yaml"), inventory(&hosts)).unwrap();
    std::fs::write(
        runbooks.join("fan.yaml"),
        "name: fan\ntimezone: UTC\ninventory: hosts.yaml\nsteps:\n  before: { uses: noop }\n  patch:\n    needs: [before]\n    uses: noop\n    for_each: { group: all }\n",
    )
    .unwrap();
    let database = format!("sqlite://{}", dir.join("c.db").display());
    for _ in 0..3 {
        run_to_the_end(&dir, "fan", &database, 0);
    }
    let (daemon, token) = serve_with_a_reader(&dir, &database);
    let addr = daemon.addr.as_str();

    // Runs: one a page, newest first, each once; the same list as one page of all.
    let (_, all) = get_json(addr, &token, "/api/v1/runs");
    assert_eq!(all["next"], Value::Null, "{all}");
    let ids: Vec<&Value> = all["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["id"])
        .collect();
    assert_eq!(ids.len(), 3);
    let (walked, pages) = walk(addr, &token, "/api/v1/runs?limit=1", "runs");
    let walked_ids: Vec<&Value> = walked.iter().map(|r| &r["id"]).collect();
    assert_eq!(walked_ids, ids);
    assert_eq!(pages, 4, "three full pages, then an empty last one");

    // A run's rows: 1,000 a page, every host once, in the order the run recorded them.
    let id = ids[0].as_str().unwrap();
    let (rows, pages) = walk(
        addr,
        &token,
        &format!("/api/v1/runs/{id}/steps?limit=1000"),
        "steps",
    );
    assert_eq!(pages, 3);
    let host_rows: Vec<&str> = rows
        .iter()
        .filter(|r| r["step"] == "patch" && r["host"] != "")
        .map(|r| r["host"].as_str().unwrap())
        .collect();
    assert_eq!(host_rows, hosts, "each host once, in inventory order");
    assert_eq!(
        rows.len(),
        HOSTS + 2,
        "the hosts and the two steps' own rows"
    );
    assert!(
        rows.iter().all(|r| r["state"] == "succeeded"),
        "the run finished"
    );

    // Its events: in seq order, each once.
    let (events, _) = walk(
        addr,
        &token,
        &format!("/api/v1/runs/{id}/events?limit=1000"),
        "events",
    );
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in seq order");

    // The run's detail: bounded, counted, and its cursors lead on to every row and event once.
    let (status, detail) = get_json(addr, &token, &format!("/api/v1/runs/{id}"));
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["steps"].as_array().unwrap().len(), DETAIL_PAGE);
    assert_eq!(detail["audit"].as_array().unwrap().len(), DETAIL_PAGE);
    assert_eq!(detail["counts"]["rows"], HOSTS + 2, "{}", detail["counts"]);
    assert_eq!(detail["counts"]["by_state"]["succeeded"], HOSTS + 2);
    let patch = detail["counts"]["by_step"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["step"] == "patch")
        .unwrap();
    assert_eq!(patch["rows"], HOSTS + 1, "the hosts and the step's own row");
    let continued = |list: &str, next: &str, route: &str, key: &str| -> Vec<Value> {
        let mut all = detail[list].as_array().unwrap().clone();
        let mut after = detail[next].clone();
        assert!(after.is_i64(), "a cursor: there is more: {after}");
        while let Some(cursor) = after.as_i64() {
            let path = format!("/api/v1/runs/{id}/{route}?limit=1000&after={cursor}");
            let (status, page) = get_json(addr, &token, &path);
            assert_eq!(status, 200, "{path}: {page}");
            all.extend(page[key].as_array().unwrap().iter().cloned());
            after = page["next"].clone();
        }
        all
    };
    assert_eq!(
        continued("steps", "steps_next", "steps", "steps"),
        rows,
        "the first page and the pages steps_next leads to: every row once, in order"
    );
    assert_eq!(
        continued("audit", "audit_next", "events", "events"),
        events,
        "the first page and the pages audit_next leads to: every event once, in order"
    );
    let bytes = serde_json::to_string(&detail).unwrap().len();
    assert!(
        bytes < 200_000,
        "the detail of a 2,500-host run is one page: {bytes} bytes"
    );

    // `patchday status` of the large run: the counts, no row needs anyone; `--all` streams
    // every row through the paged route, each once.
    let status = |args: &[&str]| {
        let out = patchday()
            .arg("status")
            .args(args)
            .args(["--server", &daemon.url(), "--token", &token])
            .output()
            .unwrap();
        (out.status.code(), stdout(&out), stderr(&out))
    };
    let (code, text, err) = status(&[id]);
    assert_eq!(code, Some(0), "{text}{err}");
    assert!(
        text.contains(&format!("{} rows: {} succeeded", HOSTS + 2, HOSTS + 2)),
        "{text}"
    );
    assert!(text.contains("(none)"), "{text}");
    assert!(
        text.contains(&format!(
            "({} rows succeeded, pending or waiting not listed)",
            HOSTS + 2
        )),
        "{text}"
    );
    assert!(text.lines().count() < 20, "{text}");
    let (code, text, err) = status(&[id, "--all"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        listed_rows(&text),
        triples(&rows),
        "every row once, in order"
    );

    // A cursor that is not one, an unknown run.
    let (status, body) = get_json(addr, &token, "/api/v1/runs?after=no-such-run");
    assert_eq!(status, 400, "{body}");
    let (status, body) = get_json(addr, &token, &format!("/api/v1/runs/{id}/steps?after=x"));
    assert_eq!(status, 400, "{body}");
    let (status, _) = get_json(addr, &token, "/api/v1/runs/no-such-run/events");
    assert_eq!(status, 404);
}

/// A run with more rows than a page, one host failing: `patchday status` gives the counts and
/// lists exactly the rows not succeeded, pending or waiting, the failed host among them, and
/// exits 1; the counts are the walked rows tallied. A small run: its detail holds every row
/// and event with null cursors, and `patchday status` lists every row as before.
#[test]
fn status_of_a_large_run_lists_what_needs_attention_and_a_small_run_whole() {
    let dir = scratch("cursors-status");
    let runbooks = dir.join("runbooks");
    std::fs::create_dir_all(&runbooks).unwrap();
    let hosts: Vec<String> = (0..MIXED_HOSTS).map(|h| format!("h{h:04}")).collect();
    std::fs::write(runbooks.join("hosts.yaml"), inventory(&hosts)).unwrap();
    std::fs::write(
        runbooks.join("few.yaml"),
        inventory(&["f1", "f2", "f3"].map(String::from)),
    )
    .unwrap();
    std::fs::write(
        runbooks.join("mixed.yaml"),
        format!("name: mixed\ntimezone: UTC\ninventory: hosts.yaml\nsteps:\n  before: {{ uses: noop }}\n  patch:\n    needs: [before]\n    uses: command\n    for_each: {{ group: all }}\n    with: {{ run: \"test {{{{host.name}}}} != {FAILING}\" }}\n"),
    )
    .unwrap();
    std::fs::write(
        runbooks.join("small.yaml"),
        "name: small\ntimezone: UTC\ninventory: few.yaml\nsteps:\n  before: { uses: noop }\n  patch:\n    needs: [before]\n    uses: noop\n    for_each: { group: all }\n",
    )
    .unwrap();
    let database = format!("sqlite://{}", dir.join("s.db").display());
    for (runbook, code) in [("mixed", 1), ("small", 0)] {
        run_to_the_end(&dir, runbook, &database, code);
    }
    let (daemon, token) = serve_with_a_reader(&dir, &database);
    let addr = daemon.addr.as_str();
    let (_, list) = get_json(addr, &token, "/api/v1/runs");
    let id_of = |runbook: &str| -> String {
        let run = list["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["runbook"] == runbook);
        run.unwrap_or_else(|| panic!("{list}"))["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let status = |args: &[&str]| {
        let out = patchday()
            .arg("status")
            .args(args)
            .args(["--server", &daemon.url(), "--token", &token])
            .output()
            .unwrap();
        (out.status.code(), stdout(&out), stderr(&out))
    };

    // The mixed run: more rows than a page; the counts are its rows tallied.
    let mixed = id_of("mixed");
    let (_, detail) = get_json(addr, &token, &format!("/api/v1/runs/{mixed}"));
    assert_eq!(detail["steps"].as_array().unwrap().len(), DETAIL_PAGE);
    assert!(detail["steps_next"].is_i64(), "{}", detail["steps_next"]);
    let (rows, _) = walk(
        addr,
        &token,
        &format!("/api/v1/runs/{mixed}/steps?limit=1000"),
        "steps",
    );
    assert_eq!(rows.len(), MIXED_HOSTS + 2);
    let mut tally = serde_json::Map::new();
    for row in &rows {
        let n = tally
            .entry(text_of(&row["state"]))
            .or_insert(Value::from(0));
        *n = Value::from(n.as_u64().unwrap() + 1);
    }
    assert_eq!(detail["counts"]["by_state"], Value::Object(tally));
    assert_eq!(detail["counts"]["rows"], rows.len());
    let (code, text, err) = status(&[&mixed]);
    assert_eq!(code, Some(1), "the run failed: {text}{err}");
    assert!(text.contains(&format!("{} rows: ", rows.len())), "{text}");
    let needing: Vec<(String, String, String)> = triples(&rows)
        .into_iter()
        .filter(|(_, _, state)| !["succeeded", "pending", "waiting"].contains(&state.as_str()))
        .collect();
    assert!(
        needing.contains(&("patch".into(), FAILING.into(), "failed".into())),
        "{needing:?}"
    );
    assert_eq!(listed_rows(&text), needing, "{text}");
    assert!(
        text.contains(&format!(
            "({} rows succeeded, pending or waiting not listed)",
            rows.len() - needing.len()
        )),
        "{text}"
    );

    // The small run: every row and event in the detail, null cursors, every row listed.
    let small = id_of("small");
    let (_, detail) = get_json(addr, &token, &format!("/api/v1/runs/{small}"));
    assert_eq!(detail["steps_next"], Value::Null);
    assert_eq!(detail["audit_next"], Value::Null);
    let (rows, _) = walk(
        addr,
        &token,
        &format!("/api/v1/runs/{small}/steps?limit=1000"),
        "steps",
    );
    let (events, _) = walk(
        addr,
        &token,
        &format!("/api/v1/runs/{small}/events?limit=1000"),
        "events",
    );
    assert_eq!(rows.len(), 5, "three hosts and two steps' own rows");
    assert_eq!(detail["steps"], Value::Array(rows.clone()));
    assert_eq!(detail["audit"], Value::Array(events));
    let (code, text, err) = status(&[&small]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(listed_rows(&text), triples(&rows), "{text}");
    assert!(
        !text.contains(" rows: "),
        "no counts for a small run: {text}"
    );
}

fn text_of(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_string()
}

/// Each row's (step, host, state).
fn triples(rows: &[Value]) -> Vec<(String, String, String)> {
    rows.iter()
        .map(|r| {
            (
                text_of(&r["step"]),
                text_of(&r["host"]),
                text_of(&r["state"]),
            )
        })
        .collect()
}

/// The rows `patchday status` printed, as (step, host, state): the lines after the rows'
/// header, in its columns (step 28 wide, host and state 14), up to a note in parentheses.
fn listed_rows(text: &str) -> Vec<(String, String, String)> {
    let column = |line: &str, from: usize, to: usize| -> String {
        line.get(from..to.min(line.len()))
            .unwrap_or("")
            .trim()
            .to_string()
    };
    text.lines()
        .skip_while(|l| !(l.starts_with("step ") && l.contains(" host ")))
        .skip(1)
        .take_while(|l| !l.starts_with('('))
        .map(|l| (column(l, 0, 28), column(l, 29, 43), column(l, 44, 58)))
        .collect()
}
