//! Runs that last for weeks (issue 10): a run keeps the runbook version it started with while
//! its file is edited (a step added before and after its approval, its commands and its gate
//! changed, a host added to its inventory) or deleted, through daemon restarts (SQLite) and
//! takeovers by another daemon (PostgreSQL, the daemon driving it killed with SIGKILL).
//!
//! One run passes three waiting points, each followed by an edit and a restart (or takeover):
//! an approval; a step whose `at` is a day after the start (the daemons run on a fixed clock,
//! `--now`, and the next one starts past it); the middle of a fan-out (a `check` per host that
//! passes when the test creates the host's gate file; two hosts of four passed). Every command
//! appends a line to a ledger; at the end it holds exactly the started version's lines, once
//! each, and the fan-out covered exactly the started version's hosts.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use patchday_tests::daemon::{
    Daemon, audit_events, count, emails_with, hidden_field, link_token, poll, request,
};
use patchday_tests::postgres::Schema;
use patchday_tests::{assert_exit, patchday, stderr, stdout};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);
/// The first daemons' clock: the run starts then, and its `wait` step is due a day later.
const T0: &str = "2026-12-08T10:00:00Z";
/// The clock of the daemons after the edits at the waiting step: past `wait`'s `at`.
const T1: &str = "2026-12-09T11:00:00Z";

/// The runbook as version `v` has it. `A` is the one the run starts with; any other is an
/// edit: a step inserted first and one after the approval, every line and the gate's file
/// renamed, so that anything of it that ran would show in the ledger or hold the run up.
fn runbook(v: &str, dir: &Path) -> String {
    let ledger = dir.join("ledger").display().to_string();
    let gates = dir.join("gates").display().to_string();
    let edited = v != "A";
    let mut text = String::from(
        "name: lasting\ntimezone: UTC\ninventory: hosts.yaml\nroles:\n  cab: [cab@example.com]\n  committee: [committee@example.com]\nsteps:\n",
    );
    if edited {
        text.push_str(&format!(
            "  inserted:\n    uses: command\n    with: {{ run: \"echo {v} inserted >> {ledger}\" }}\n"
        ));
    }
    let first_needs = if edited {
        "\n    needs: [inserted]"
    } else {
        ""
    };
    text.push_str(&format!(
        "  first:{first_needs}\n    uses: command\n    with: {{ run: \"echo {v} first >> {ledger}\" }}\n"
    ));
    text.push_str("  approve:\n    needs: [first]\n    uses: approval\n    with: { approvers: cab, quorum: 1 }\n");
    if edited {
        text.push_str(&format!(
            "  extra:\n    needs: [approve]\n    uses: command\n    with: {{ run: \"echo {v} extra >> {ledger}\" }}\n"
        ));
    }
    let wait_needs = if edited { "extra" } else { "approve" };
    let gate = if edited {
        format!("{gates}/{v}-{{{{host.name}}}}")
    } else {
        format!("{gates}/{{{{host.name}}}}")
    };
    text.push_str(&format!(
        "  wait:\n    needs: [{wait_needs}]\n    at: start+1d\n    uses: command\n    with: {{ run: \"echo {v} wait >> {ledger}\" }}\n\
         \x20 gate:\n    needs: [wait]\n    uses: check\n    for_each: {{ group: all, batch: 2 }}\n    with: {{ command: \"test -f {gate}\", interval: 1s, within: 1h }}\n\
         \x20 fan:\n    needs: [gate]\n    uses: command\n    for_each: {{ group: all }}\n    with: {{ run: \"echo {v} fan {{{{host.name}}}} >> {ledger}\" }}\n\
         \x20 last:\n    needs: [fan]\n    uses: command\n    with: {{ run: \"echo {v} last >> {ledger}\" }}\n"
    ));
    text
}

/// The inventory: four hosts in `A`, a fifth in every edit.
fn hosts(v: &str) -> String {
    let n = if v == "A" { 4 } else { 5 };
    let hosts: Vec<String> = (1..=n).map(|i| format!("h{i}")).collect();
    patchday_tests::inventory(&hosts)
}

/// The test's folder: runbooks, gates, ledger, outboxes.
struct Folder {
    dir: PathBuf,
}

impl Folder {
    fn new(name: &str) -> Folder {
        let dir = patchday_tests::scratch(name);
        std::fs::create_dir_all(dir.join("runbooks")).unwrap();
        std::fs::create_dir_all(dir.join("gates")).unwrap();
        let folder = Folder { dir };
        folder.write("A");
        folder
    }

    /// Makes version `v` the runbook in the folder.
    fn write(&self, v: &str) {
        let runbooks = self.dir.join("runbooks");
        std::fs::write(runbooks.join("lasting.yaml"), runbook(v, &self.dir)).unwrap();
        std::fs::write(runbooks.join("hosts.yaml"), hosts(v)).unwrap();
    }

    /// Deletes the runbook and its inventory.
    fn delete(&self) {
        let runbooks = self.dir.join("runbooks");
        std::fs::remove_file(runbooks.join("lasting.yaml")).unwrap();
        std::fs::remove_file(runbooks.join("hosts.yaml")).unwrap();
    }

    fn open_gate(&self, host: &str) {
        std::fs::write(self.dir.join("gates").join(host), "").unwrap();
    }

    fn ledger(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("ledger"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn outbox(&self, node: &str) -> PathBuf {
        self.dir.join(format!("outbox-{node}"))
    }

    /// `patchday serve` on `database` at the fixed time `now`, as node `node`.
    fn serve(&self, database: &str, node: &str, now: &str, env: &[(&str, &str)]) -> Daemon {
        let log = patchday_tests::artifacts_dir().join(format!(
            "lasting-{}-{node}.log",
            self.dir.file_name().unwrap().to_string_lossy()
        ));
        let mut command = patchday();
        command
            .current_dir(&self.dir)
            .args(["serve", "--listen", "127.0.0.1:0", "--database", database])
            .args([
                "--runbooks",
                &self.dir.join("runbooks").display().to_string(),
            ])
            .args(["--outbox", &self.outbox(node).display().to_string()])
            .args(["--now", now, "--grace", "0"])
            .env("PATCHDAY_SERVER_NODE_ID", node)
            .envs(env.iter().copied())
            .stderr(Stdio::from(std::fs::File::create(log).unwrap()));
        Daemon::start(command)
    }

    /// The approval email's link token, from whichever daemon's outbox has it.
    fn approval_link(&self, nodes: &[&str]) -> String {
        let email = poll("the approval email", LIMIT, || {
            nodes
                .iter()
                .find_map(|n| emails_with(&self.outbox(n), "Approve lasting").pop())
        });
        link_token(&email)
    }
}

/// The JSON API of a daemon, with a token.
struct Api<'a> {
    daemon: &'a Daemon,
    token: &'a str,
}

impl<'a> Api<'a> {
    fn of(daemon: &'a Daemon, token: &'a str) -> Api<'a> {
        Api { daemon, token }
    }

    fn get(&self, path: &str) -> Value {
        let auth = format!("Bearer {}", self.token);
        let (status, _, body) = request(
            &self.daemon.addr,
            "GET",
            &format!("/api/v1{path}"),
            &[("Authorization", &auth)],
            "",
        );
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// The state of row (step, host) of run `id` ("" when there is no such row).
    fn state(&self, id: &str, step: &str, host: &str) -> String {
        let detail = self.get(&format!("/runs/{id}"));
        detail["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == step && s["host"] == host)
            .map(|s| s["state"].as_str().unwrap().to_string())
            .unwrap_or_default()
    }

    fn wait_for(&self, id: &str, step: &str, host: &str, state: &str) {
        poll(&format!("{step} [{host}] to be {state}"), LIMIT, || {
            (self.state(id, step, host) == state).then_some(())
        });
    }
}

/// Starts a run of `lasting` on `daemon`; its id.
fn trigger(daemon: &Daemon, token: &str) -> String {
    let out = patchday()
        .args([
            "trigger",
            "lasting",
            "--server",
            &daemon.url(),
            "--token",
            token,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.ends_with(" started: lasting (manual run)\n"), "{text}");
    text.split_whitespace().nth(1).unwrap().to_string()
}

/// Approves through the link's page on `daemon` (GET shows it, POST decides).
fn approve(daemon: &Daemon, token: &str, content_hash: &str) {
    let path = format!("/links/{token}");
    let (status, _, page) = request(&daemon.addr, "GET", &path, &[], "");
    assert_eq!(status, 200, "{page}");
    // The page shows the version the run started with.
    assert!(page.contains(&content_hash[..12]), "{page}");
    let form = format!("csrf={}&choice=approve", hidden_field(&page, "csrf"));
    let (status, _, body) = request(&daemon.addr, "POST", &path, &[], &form);
    assert_eq!(status, 200, "{body}");
}

/// What a finished run must show: version A's lines, each once; A's four hosts.
fn assert_ran_version_a(folder: &Folder, api: &Api, id: &str) {
    let mut ledger = folder.ledger();
    ledger.sort();
    let mut want: Vec<String> = ["A first", "A wait", "A last"]
        .iter()
        .map(|s| s.to_string())
        .chain((1..=4).map(|h| format!("A fan h{h}")))
        .collect();
    want.sort();
    assert_eq!(
        ledger, want,
        "the ledger holds version A's commands, once each"
    );
    let detail = api.get(&format!("/runs/{id}"));
    assert_eq!(detail["run"]["state"], "succeeded", "{detail:#}");
    let mut hosts: Vec<String> = detail["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["step"] == "fan" && s["host"] != "")
        .map(|s| s["host"].as_str().unwrap().to_string())
        .collect();
    hosts.sort();
    assert_eq!(hosts, ["h1", "h2", "h3", "h4"], "version A's inventory");
    let steps: Vec<&str> = detail["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert!(
        !steps.contains(&"inserted") && !steps.contains(&"extra"),
        "{steps:?}"
    );
}

/// The local API token a daemon on SQLite file `db` wrote next to it.
fn local_token(db: &Path) -> String {
    let file = format!("{}.local-token", db.display());
    std::fs::read_to_string(file).unwrap().trim().to_string()
}

#[test]
fn a_run_keeps_its_version_through_edits_and_restarts_and_outlives_its_file() {
    let folder = Folder::new("lasting-sqlite");
    let db = folder.dir.join("p.db");
    let database = format!("sqlite://{}", db.display());

    // The run starts with version A and waits for its approval.
    let mut daemon = folder.serve(&database, "one", T0, &[]);
    let token = local_token(&db);
    let id = trigger(&daemon, &token);
    let link = folder.approval_link(&["one"]);
    let content_hash = Api {
        daemon: &daemon,
        token: &token,
    }
    .get(&format!("/runs/{id}"))["run"]["content_hash"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(daemon.terminate().code(), Some(0));

    // 1. Edited while it waits for its approval (a step inserted before it and one after),
    //    the daemon restarted: the edit is recorded at the start, the approval is given, and
    //    the run goes on to `wait` (a day after its start).
    folder.write("B");
    let mut daemon = folder.serve(&database, "one", T0, &[]);
    let api = Api {
        daemon: &daemon,
        token: &token,
    };
    let events = audit_events(&database);
    assert_eq!(
        count(&events, "runbook.updated"),
        1,
        "the edit made while down"
    );
    approve(&daemon, &link, &content_hash);
    api.wait_for(&id, "wait", "", "waiting");
    assert_eq!(daemon.terminate().code(), Some(0));

    // 2. Edited while `wait` waits; restarted a day later: `wait` runs, then the gate's first
    //    two hosts pass and the other two are being checked.
    folder.write("C");
    let mut daemon = folder.serve(&database, "one", T1, &[]);
    let api = Api {
        daemon: &daemon,
        token: &token,
    };
    api.wait_for(&id, "gate", "h1", "running");
    folder.open_gate("h1");
    folder.open_gate("h2");
    api.wait_for(&id, "gate", "h3", "running");
    assert_eq!(daemon.terminate().code(), Some(0));

    // 3. Mid fan-out, the runbook file and its inventory are deleted: the run still finishes
    //    with version A, and its page renders.
    folder.delete();
    let mut daemon = folder.serve(&database, "one", T1, &[]);
    let api = Api {
        daemon: &daemon,
        token: &token,
    };
    folder.open_gate("h3");
    folder.open_gate("h4");
    poll("the run to finish", LIMIT, || {
        let detail = api.get(&format!("/runs/{id}"));
        (detail["run"]["state"] != "running").then_some(())
    });
    assert_ran_version_a(&folder, &api, &id);
    let (status, page) = daemon.page(&format!("/runs/{id}"));
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(&id) && page.contains("succeeded"), "{page}");
    let events = audit_events(&database);
    assert_eq!(count(&events, "runbook.updated"), 2, "B, then C");
    assert_eq!(count(&events, "runbook.removed"), 1);
    assert_eq!(count(&events, "run.failed"), 0);
    assert_eq!(daemon.terminate().code(), Some(0));
    patchday_tests::assert_audit_verifies(&database);
    let _ = std::fs::remove_dir_all(&folder.dir);
}

fn kill9(mut daemon: Daemon) {
    daemon.child.kill().unwrap(); // SIGKILL
    daemon.child.wait().unwrap();
}

#[test]
fn a_run_keeps_its_version_through_edits_and_takeovers_on_postgresql() {
    let schema = Schema::create("lasting");
    let folder = Folder::new("lasting-pg");
    let (token, tokens) = patchday_tests::api_token(&folder.dir, "ops");
    let secret = folder.dir.join("link-secret");
    std::fs::write(
        &secret,
        "a link secret the daemons share, 32 bytes and more\n",
    )
    .unwrap();
    let (tokens, secret) = (tokens.display().to_string(), secret.display().to_string());
    let env = [
        ("PATCHDAY_SERVER_LEASE_TTL", "2s"),
        ("PATCHDAY_SECURITY_API_TOKENS_FILE", tokens.as_str()),
        ("PATCHDAY_SECURITY_LINK_SECRET_FILE", secret.as_str()),
    ];
    let serve = |node: &str, now: &str| folder.serve(&schema.url, node, now, &env);

    // x starts the run (and drives it); y runs beside it.
    let x = serve("x", T0);
    let y = serve("y", T0);
    let id = trigger(&x, &token);
    let link = folder.approval_link(&["x", "y"]);
    let content_hash = Api::of(&x, &token).get(&format!("/runs/{id}"))["run"]["content_hash"]
        .as_str()
        .unwrap()
        .to_string();

    // 1. x dies while the run waits for its approval; the runbook is edited; the approval
    //    reaches y, which drives the run on with version A to `wait`.
    kill9(x);
    folder.write("B");
    approve(&y, &link, &content_hash);
    Api::of(&y, &token).wait_for(&id, "wait", "", "waiting");

    // 2. z (a day later) joins; y dies while `wait` waits; edited again; z takes the run over
    //    and gets the gate's first two hosts through.
    let z = serve("z", T1);
    kill9(y);
    folder.write("C");
    Api::of(&z, &token).wait_for(&id, "gate", "h1", "running");
    folder.open_gate("h1");
    folder.open_gate("h2");
    Api::of(&z, &token).wait_for(&id, "gate", "h3", "running");

    // 3. w joins; z dies mid fan-out; edited once more; w takes over and finishes the run.
    let w = serve("w", T1);
    kill9(z);
    folder.write("D");
    poll("w to take the run over", LIMIT, || {
        let events = audit_events(&schema.url);
        events
            .iter()
            .any(|e| e["action"] == "step.resumed" && e["step_id"] == "gate")
            .then_some(())
    });
    folder.open_gate("h3");
    folder.open_gate("h4");
    poll("the run to finish", LIMIT, || {
        let detail = Api::of(&w, &token).get(&format!("/runs/{id}"));
        (detail["run"]["state"] != "running").then_some(())
    });
    assert_ran_version_a(&folder, &Api::of(&w, &token), &id);
    let events = audit_events(&schema.url);
    assert_eq!(count(&events, "run.failed"), 0);
    assert_eq!(count(&events, "run.started"), 1);
    let mut w = w;
    assert_eq!(w.terminate().code(), Some(0));
    patchday_tests::assert_audit_verifies(&schema.url);
    let _ = std::fs::remove_dir_all(&folder.dir);
}

// --- the CLI -------------------------------------------------------------------------------

fn cli(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(patchday_tests::patchday_bin())
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

/// `patchday run --config FILE` reads `[smtp]` (with its password file) like the daemon: an
/// `email` step logs in to a real SMTP server and sends. The password is in no output.
#[test]
fn patchday_run_sends_an_email_step_through_the_configured_smtp() {
    const PASSWORD: &str = "pa55-for-the-cli-run";
    let dir = patchday_tests::scratch("run-config-smtp");
    std::fs::write(dir.join("smtp-password"), format!("{PASSWORD}\n")).unwrap();
    let smtp =
        patchday_tests::smtp::SmtpServer::with_login(&dir.join("mail"), &dir.join("smtp-password"));
    let config = dir.join("site.toml");
    std::fs::write(
        &config,
        format!(
            "{}username = \"patchday\"\npassword_file = \"{}\"\n\n[database]\nurl = \"sqlite://{}\"\n",
            smtp.config(),
            dir.join("smtp-password").display(),
            dir.join("p.db").display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("mail.yaml"),
        "name: mail\nroles:\n  ops: [ops@example.com]\nsteps:\n  tell:\n    uses: email\n    with: { to: ops, subject: \"Run {{run.id}}\", body: \"Patching starts.\" }\n",
    )
    .unwrap();
    let out = cli(
        &dir,
        &[
            "run",
            "mail.yaml",
            "--config",
            &config.display().to_string(),
        ],
    );
    assert_exit(&out, 0);
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert_eq!(
        messages[0]["rcpt_tos"],
        serde_json::json!(["ops@example.com"])
    );
    assert_eq!(messages[0]["authenticated"], true);
    assert!(
        messages[0]["subject"]
            .as_str()
            .unwrap()
            .starts_with("Run mail-")
    );
    assert!(!stdout(&out).contains(PASSWORD) && !stderr(&out).contains(PASSWORD));
    // The run is in the configured database, not in ./patchday.db.
    assert!(dir.join("p.db").exists() && !dir.join("patchday.db").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Manual runs are not cycles: two runs of one unscheduled runbook in the same second both
/// run (and get different ids); a cycle is run once, and again only on purpose, audited.
#[test]
fn manual_runs_of_one_runbook_all_run_and_a_cycle_runs_again_only_on_purpose() {
    let dir = patchday_tests::scratch("manual-runs");
    std::fs::write(
        dir.join("local.yaml"),
        "name: local\nsteps:\n  a: { uses: noop }\n",
    )
    .unwrap();
    let database = format!("sqlite://{}", dir.join("p.db").display());
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "local.yaml",
            "--database",
            &database,
            "--now",
            "2026-12-08T10:00:00Z",
        ];
        args.extend_from_slice(extra);
        cli(&dir, &args)
    };
    let started = |out: &std::process::Output| {
        assert_eq!(out.status.code(), Some(0), "{}{}", stdout(out), stderr(out));
        stdout(out).lines().next().unwrap().to_string()
    };
    let first = started(&run(&[]));
    let second = started(&run(&[]));
    assert!(first.ends_with(" started: local (manual run)"), "{first}");
    assert!(second.ends_with(" started: local (manual run)"), "{second}");
    assert_ne!(first, second, "two runs, two ids");
    // A cycle, by hand: once; a second run of it is refused and says how to re-run it.
    started(&run(&["--cycle", "2026-12"]));
    let refused = run(&["--cycle", "2026-12"]);
    assert_eq!(refused.status.code(), Some(2));
    let why = stderr(&refused);
    assert!(
        why.contains("already has a run for cycle 2026-12") && why.contains("--rerun"),
        "{why}"
    );
    let again = started(&run(&[
        "--cycle",
        "2026-12",
        "--rerun",
        "--reason",
        "the first run's hosts were unreachable",
    ]));
    assert!(again.ends_with(" started: local cycle 2026-12"), "{again}");
    let events = audit_events(&database);
    let reruns: Vec<&Value> = events
        .iter()
        .filter(|e| e["action"] == "run.started" && e["details"]["rerun"].is_object())
        .collect();
    assert_eq!(reruns.len(), 1);
    assert_eq!(
        reruns[0]["details"]["rerun"]["reason"],
        "the first run's hosts were unreachable"
    );
    assert!(reruns[0]["actor"].as_str().unwrap().starts_with("cli:"));
    assert_eq!(count(&events, "run.finished"), 4);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `patchday resume` goes on with the version the run stored (no `--runbook` needed); given
/// a runbook file that differs from it, it refuses and says why.
#[test]
fn resume_uses_the_stored_version_and_refuses_a_different_file() {
    let dir = patchday_tests::scratch("resume-version");
    let (ledger, stop) = (dir.join("ledger"), dir.join("stop"));
    let runbook = |v: &str| {
        format!(
            "name: resumed\nsteps:\n  a:\n    uses: command\n    with: {{ run: \"echo {v} a >> {l}; while [ ! -f {s} ]; do sleep 0.05; done\" }}\n  b:\n    needs: [a]\n    uses: command\n    with: {{ run: \"echo {v} b >> {l}\" }}\n",
            l = ledger.display(),
            s = stop.display()
        )
    };
    std::fs::write(dir.join("resumed.yaml"), runbook("A")).unwrap();
    let database = format!("sqlite://{}", dir.join("p.db").display());
    // `patchday run` dies (SIGKILL) while `a` runs.
    let mut child = Command::new(patchday_tests::patchday_bin())
        .current_dir(&dir)
        .args(["run", "resumed.yaml", "--database", &database])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    use std::io::BufRead as _;
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut first).unwrap();
    let id = first.split_whitespace().nth(1).unwrap().to_string();
    // Read on (a closed pipe would end the process before it is killed).
    let reader = std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    poll("`a` to run", LIMIT, || {
        std::fs::read_to_string(&ledger)
            .ok()
            .filter(|l| l.contains("A a"))
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = reader.join();
    std::fs::write(&stop, "").unwrap();
    // Edited meanwhile: `resume --runbook` with the edited file is refused, and says why.
    std::fs::write(dir.join("resumed.yaml"), runbook("B")).unwrap();
    let resume = |extra: &[&str]| {
        let mut args = vec!["resume", id.as_str(), "--database", &database];
        args.extend_from_slice(extra);
        cli(&dir, &args)
    };
    let refused = resume(&["--runbook", "resumed.yaml"]);
    assert_eq!(refused.status.code(), Some(2));
    let why = stderr(&refused);
    assert!(
        why.contains("is not the version run") && why.contains("without --runbook"),
        "{why}"
    );
    // Without --runbook: the stored version. `a` was cut off: the operator says it is done.
    let waiting = resume(&[]);
    assert_eq!(waiting.status.code(), Some(1), "{}", stdout(&waiting));
    assert!(
        stdout(&waiting).contains("interrupted: a was running"),
        "{}",
        stdout(&waiting)
    );
    let done = resume(&["--step", "a", "--skip"]);
    assert_exit(&done, 0);
    assert_eq!(
        std::fs::read_to_string(&ledger).unwrap(),
        "A a\nA b\n",
        "version A's `b`"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
