//! The API's lists in pages (issue 12 item 3): `GET /api/v1/runs`, `/runs/{id}/steps` and
//! `/runs/{id}/events` take `limit` and `after` and give `next`; walking the cursor over a run
//! of 2,500 host rows returns each row once, in order.

use patchday_tests::daemon::{Daemon, request, serve_command};
use patchday_tests::{api_token, inventory, patchday, scratch, stderr};
use serde_json::Value;

const HOSTS: usize = 2_500;

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
        let out = patchday()
            .current_dir(&dir)
            .args(["run", "runbooks/fan.yaml", "--database", &database])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let (token, tokens) = api_token(&dir, "reader");
    let mut serve = serve_command(&dir, &database, &dir.join("outbox"));
    serve.env("PATCHDAY_SECURITY_API_TOKENS_FILE", &tokens);
    let daemon = Daemon::start(serve);
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
    let (_, detail) = get_json(addr, &token, &format!("/api/v1/runs/{id}"));
    assert_eq!(
        &Value::Array(rows),
        &detail["steps"],
        "the pages join into the whole list"
    );

    // Its events: the same as the run's whole audit trail, in seq order.
    let (events, _) = walk(
        addr,
        &token,
        &format!("/api/v1/runs/{id}/events?limit=1000"),
        "events",
    );
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in seq order");
    assert_eq!(&Value::Array(events), &detail["audit"]);

    // A cursor that is not one, an unknown run.
    let (status, body) = get_json(addr, &token, "/api/v1/runs?after=no-such-run");
    assert_eq!(status, 400, "{body}");
    let (status, body) = get_json(addr, &token, &format!("/api/v1/runs/{id}/steps?after=x"));
    assert_eq!(status, 400, "{body}");
    let (status, _) = get_json(addr, &token, "/api/v1/runs/no-such-run/events");
    assert_eq!(status, 404);
}
