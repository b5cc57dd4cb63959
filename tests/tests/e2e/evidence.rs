//! Evidence an auditor can trust (issue 14): signed checkpoints kept outside the database catch
//! what the hash chain alone cannot. Someone with write access to the database (SQLite file or
//! PostgreSQL role) truncates the log, deletes or edits an event, rewrites the whole chain
//! consistently with a new head, or rolls the file back; someone with the checkpoint folder
//! forges a checkpoint or signs one with another key. `patchday audit verify --checkpoints`
//! names each, on both backends, and the independent verifier docs/verify_audit.py (Python,
//! `cryptography`) agrees on every case. Proofs made by `patchday audit prove` check with
//! `patchday audit check-proof` and with the Python script; altered ones do not.

use std::path::PathBuf;

use patchday_tests::postgres::Schema;
use patchday_tests::sql::{execute, quote};
use patchday_tests::{assert_exit, patchday, repo_root, scratch, stderr, stdout};

const RUNBOOK: &str = "name: evidence\nsteps:\n  check:\n    uses: noop\n  patch:\n    needs: [check]\n    uses: command\n    with: { run: \"exit 1\" }\n";

#[derive(Clone, Copy, PartialEq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A log of three runs, signed after the first and the second (the third is not signed yet).
struct Log {
    dir: PathBuf,
    database: String,
    backend: Backend,
    /// Sizes of checkpoints 1 and 2.
    signed: [u64; 2],
    _schema: Option<Schema>,
}

impl Log {
    fn build(backend: Backend, name: &str) -> Log {
        let dir = scratch(&format!("evidence-{name}"));
        std::fs::write(dir.join("evidence.yaml"), RUNBOOK).unwrap();
        let schema =
            (backend == Backend::Postgres).then(|| Schema::create(&name.replace('-', "_")));
        let database = match &schema {
            Some(schema) => schema.url.clone(),
            None => format!("sqlite://{}", dir.join("log.db").display()),
        };
        let mut log = Log {
            dir,
            database,
            backend,
            signed: [0, 0],
            _schema: schema,
        };
        let key = log.path("key");
        log.ok(&[
            "audit",
            "keygen",
            "--name",
            "patchday.test/e2e",
            "--out",
            &key,
        ]);
        for i in 0..2 {
            log.run();
            log.checkpoint("key");
            log.signed[i] = log.checkpoint_size(i + 1);
        }
        log.run();
        assert!(log.signed[0] >= 5 && log.signed[1] > log.signed[0] + 3);
        log
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn patchday(&self, args: &[&str]) -> (Option<i32>, String) {
        let out = patchday()
            .args(args)
            .args(["--database", &self.database])
            .current_dir(&self.dir)
            .output()
            .unwrap();
        (
            out.status.code(),
            format!("{}{}", stdout(&out), stderr(&out)),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, text) = self.patchday(args);
        assert_eq!(code, Some(0), "patchday {args:?}: {text}");
        text
    }

    /// One run of the runbook (its `patch` step fails: `step.failed`, `run.failed`).
    fn run(&self) {
        let (code, text) = self.patchday(&["run", "evidence.yaml"]);
        assert_eq!(code, Some(1), "{text}");
    }

    fn checkpoint(&self, key: &str) -> String {
        self.ok(&["audit", "checkpoint", "--key", key, "--dir", "checkpoints"])
    }

    fn checkpoint_file(&self, n: usize) -> PathBuf {
        self.dir.join(format!("checkpoints/{n:08}.checkpoint"))
    }

    fn checkpoint_size(&self, n: usize) -> u64 {
        let note = std::fs::read_to_string(self.checkpoint_file(n)).unwrap();
        note.lines().nth(1).unwrap().parse().unwrap()
    }

    /// `patchday audit verify --checkpoints checkpoints --key key.pub`.
    fn verify(&self) -> (Option<i32>, String) {
        self.patchday(&[
            "audit",
            "verify",
            "--checkpoints",
            "checkpoints",
            "--key",
            "key.pub",
        ])
    }

    /// docs/verify_audit.py on `patchday audit export` and the checkpoint folder.
    fn python(&self) -> (Option<i32>, String) {
        let export = self.ok(&["audit", "export"]);
        std::fs::write(self.dir.join("export.jsonl"), export).unwrap();
        python(&[
            &self.path("key.pub"),
            &self.path("checkpoints"),
            &self.path("export.jsonl"),
        ])
    }

    /// Raw SQL with the append-only triggers dropped first, as a DBA would.
    fn tamper(&self, sql: &str) {
        let drop = match self.backend {
            Backend::Sqlite => "DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete;",
            Backend::Postgres => "DROP TRIGGER events_no_update ON events;",
        };
        execute(&self.database, &format!("{drop} {sql}"));
    }

    /// Sets the recorded chain head to the last event, hiding a deleted tail from the chain.
    fn reset_head(&self) {
        execute(
            &self.database,
            "UPDATE chain_head SET seq = (SELECT MAX(seq) FROM events), \
             hash = (SELECT hash FROM events WHERE seq = (SELECT MAX(seq) FROM events))",
        );
    }

    /// Both verifiers fail, patchday saying `patchday_says`, the script `python_says`.
    fn assert_caught(&self, patchday_says: &str, python_says: &str) {
        let (code, text) = self.verify();
        assert_eq!(code, Some(1), "{text}");
        assert!(
            text.contains(patchday_says),
            "expected `{patchday_says}`: {text}"
        );
        let (code, text) = self.python();
        assert_eq!(code, Some(1), "{text}");
        assert!(
            text.contains(python_says),
            "expected `{python_says}`: {text}"
        );
    }
}

fn python(args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new("python3")
        .arg(repo_root().join("docs/verify_audit.py"))
        .args(args)
        .output()
        .expect("python3 runs (bash .ci/deps-python.sh)");
    (
        out.status.code(),
        format!("{}{}", stdout(&out), stderr(&out)),
    )
}

/// Every tampering, each on a fresh log.
fn tampering_is_caught(backend: Backend, name: &str) {
    // Untouched: both agree it is sound.
    let log = Log::build(backend, &format!("{name}-sound"));
    let (code, text) = log.verify();
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("checkpoints ok: 2 signed checkpoint(s)"),
        "{text}"
    );
    let (code, text) = log.python();
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("ok: "), "{text}");

    // The case: the last three events deleted and the head moved: the chain alone
    // says ok, the checkpoints do not.
    let log = Log::build(backend, &format!("{name}-truncated"));
    let keep = log.signed[1] - 3;
    log.tamper(&format!("DELETE FROM events WHERE seq > {keep};"));
    log.reset_head();
    let (code, text) = log.patchday(&["audit", "verify"]);
    assert_eq!(code, Some(0), "the chain alone cannot see it: {text}");
    log.assert_caught(
        &format!(
            "truncated: checkpoint 00000002.checkpoint signs {} events but the log has only {keep}",
            log.signed[1]
        ),
        "truncated: 00000002.checkpoint",
    );

    let log = Log::build(backend, &format!("{name}-middle"));
    log.tamper("DELETE FROM events WHERE seq = 3;");
    log.assert_caught("audit chain BROKEN at seq 4", "chain broken at seq 4");

    let log = Log::build(backend, &format!("{name}-edited"));
    log.tamper("UPDATE events SET actor = 'cli:mallory' WHERE seq = 2;");
    log.assert_caught("audit chain BROKEN at seq 2", "chain broken at seq 2");

    let log = Log::build(backend, &format!("{name}-rewritten"));
    rewrite_consistently(&log, 2);
    let (code, text) = log.patchday(&["audit", "verify"]);
    assert_eq!(
        code,
        Some(0),
        "a consistent rewrite fools the chain: {text}"
    );
    log.assert_caught(
        &format!("rewritten: the first {} events", log.signed[0]),
        &format!("rewritten: the first {} events", log.signed[0]),
    );

    let log = Log::build(backend, &format!("{name}-forged"));
    let file = log.checkpoint_file(2);
    let note = std::fs::read_to_string(&file).unwrap();
    let forged = note.replacen(
        &format!("\n{}\n", log.signed[1]),
        &format!("\n{}\n", log.signed[1] - 1),
        1,
    );
    assert_ne!(note, forged);
    std::fs::write(&file, forged).unwrap();
    log.assert_caught(
        "does not verify: the note was altered or forged",
        "signature:",
    );

    let log = Log::build(backend, &format!("{name}-other-key"));
    let other = log.path("other");
    log.ok(&[
        "audit",
        "keygen",
        "--name",
        "patchday.test/e2e",
        "--out",
        &other,
    ]);
    log.ok(&[
        "audit",
        "checkpoint",
        "--key",
        &other,
        "--dir",
        "other-checkpoints",
    ]);
    std::fs::copy(
        log.dir.join("other-checkpoints/00000001.checkpoint"),
        log.checkpoint_file(1),
    )
    .unwrap();
    log.assert_caught(
        "no signature by key patchday.test/e2e+",
        "has no signature by",
    );

    let log = Log::build(backend, &format!("{name}-removed-checkpoint"));
    std::fs::remove_file(log.checkpoint_file(1)).unwrap();
    log.assert_caught("removed, replaced or reordered", "checkpoint chain:");
}

/// Changes the details of event `seq` and rehashes it and every later event, then moves the
/// head: a rewrite the hash chain cannot tell from the real thing.
fn rewrite_consistently(log: &Log, seq: i64) {
    let export = log.ok(&["audit", "export"]);
    let mut prev: Option<String> = None;
    let mut sql = String::new();
    for line in export.lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        let mut event = patchday::audit::event_from_json(&value).unwrap();
        if event.seq < seq {
            continue;
        }
        if event.seq == seq {
            event.details = serde_json::json!({"forged": true});
        }
        if let Some(prev) = prev {
            event.prev_hash = prev;
        }
        event.hash = patchday::audit::row_hash(&event);
        sql.push_str(&format!(
            "UPDATE events SET details = {}, prev_hash = {}, hash = {} WHERE seq = {};\n",
            quote(&event.details.to_string()),
            quote(&event.prev_hash),
            quote(&event.hash),
            event.seq
        ));
        prev = Some(event.hash);
    }
    log.tamper(&sql);
    log.reset_head();
}

#[test]
fn checkpoints_catch_every_tampering_on_sqlite() {
    tampering_is_caught(Backend::Sqlite, "sqlite");
}

#[test]
fn checkpoints_catch_every_tampering_on_postgres() {
    tampering_is_caught(Backend::Postgres, "pg");
}

/// The database file restored from an old copy: the log is shorter than the last checkpoint;
/// the checkpointer refuses to sign it; once it grows again, its history differs.
#[test]
fn a_rolled_back_database_file_is_caught_and_never_signed() {
    let log = Log::build(Backend::Sqlite, "rolled-back");
    let db = log.dir.join("log.db");
    // An old copy, as a backup restored over the live file would be.
    let old = scratch("evidence-rolled-back-old").join("old.db");
    let keep = log.signed[0];
    execute(
        &log.database,
        &format!("VACUUM INTO {}", quote(&old.display().to_string())),
    );
    execute(
        &format!("sqlite://{}", old.display()),
        &format!(
            "DROP TRIGGER events_no_delete; DELETE FROM events WHERE seq > {keep}; \
             UPDATE chain_head SET seq = {keep}, hash = (SELECT hash FROM events WHERE seq = {keep});"
        ),
    );
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(log.dir.join(format!("log.db{suffix}")));
    }
    std::fs::copy(&old, &db).unwrap();
    log.assert_caught(
        &format!(
            "truncated: checkpoint 00000002.checkpoint signs {}",
            log.signed[1]
        ),
        "truncated: 00000002.checkpoint",
    );

    let (code, text) = log.patchday(&[
        "audit",
        "checkpoint",
        "--key",
        "key",
        "--dir",
        "checkpoints",
    ]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("no longer matches the last checkpoint 00000002.checkpoint"),
        "{text}"
    );
    assert!(!log.checkpoint_file(3).exists());

    // The rolled-back log grows past the checkpoint again: different history at its size.
    log.run();
    log.run();
    log.assert_caught(
        &format!("rewritten: the first {} events", log.signed[1]),
        &format!("rewritten: the first {} events", log.signed[1]),
    );
}

#[test]
fn proofs_check_with_the_key_and_fail_when_altered() {
    let log = Log::build(Backend::Sqlite, "proofs");
    let proof = log.ok(&[
        "audit",
        "prove",
        "--seq",
        "3",
        "--checkpoints",
        "checkpoints",
    ]);
    let value: serde_json::Value = serde_json::from_str(&proof).unwrap();
    assert_eq!(value["tree_size"], log.signed[1]);
    assert_eq!(value["event"]["seq"], 3);
    std::fs::write(log.dir.join("inclusion.json"), &proof).unwrap();
    let text = log.ok(&["audit", "check-proof", "inclusion.json", "--key", "key.pub"]);
    assert!(text.contains("proof ok: event 3"), "{text}");
    let (code, text) = python(&[&log.path("key.pub"), "--proof", &log.path("inclusion.json")]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("ok: event 3 is in the signed log"), "{text}");

    let consistency = log.ok(&[
        "audit",
        "prove",
        "--from",
        "checkpoints/00000001.checkpoint",
        "--to",
        "checkpoints/00000002.checkpoint",
    ]);
    std::fs::write(log.dir.join("consistency.json"), consistency).unwrap();
    let text = log.ok(&[
        "audit",
        "check-proof",
        "consistency.json",
        "--key",
        "key.pub",
    ]);
    assert!(
        text.contains(&format!(
            "the log of {} events extends the log of {} events",
            log.signed[1], log.signed[0]
        )),
        "{text}"
    );

    // An altered event, a proof for another event, another key: each fails.
    let mut altered = value.clone();
    altered["event"]["actor"] = "cli:mallory".into();
    let mut moved = value.clone();
    moved["event"] =
        serde_json::from_str(log.ok(&["audit", "export"]).lines().nth(4).unwrap()).unwrap();
    for (name, bad) in [("altered", &altered), ("moved", &moved)] {
        let file = log.path(&format!("{name}.json"));
        std::fs::write(&file, bad.to_string()).unwrap();
        let (code, text) = log.patchday(&["audit", "check-proof", &file, "--key", "key.pub"]);
        assert_eq!(code, Some(1), "{name}: {text}");
        assert!(text.contains("proof FAILED"), "{text}");
        let (code, text) = python(&[&log.path("key.pub"), "--proof", &file]);
        assert_eq!(code, Some(1), "{name}: {text}");
    }
    let other = log.path("other");
    log.ok(&[
        "audit",
        "keygen",
        "--name",
        "patchday.test/e2e",
        "--out",
        &other,
    ]);
    let (code, text) = log.patchday(&[
        "audit",
        "check-proof",
        "inclusion.json",
        "--key",
        "other.pub",
    ]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("no signature by key"), "{text}");
}

/// `keygen` never replaces a key and writes the private half for its owner only.
#[test]
fn keygen_writes_a_private_key_once() {
    let dir = scratch("evidence-keygen");
    let key = dir.join("key").display().to_string();
    let out = patchday()
        .args([
            "audit",
            "keygen",
            "--name",
            "patchday.example/prod",
            "--out",
            &key,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let public = std::fs::read_to_string(format!("{key}.pub")).unwrap();
    assert!(public.starts_with("patchday.example/prod+"), "{public}");
    assert!(stdout(&out).contains(public.trim()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = patchday()
        .args(["audit", "keygen", "--name", "x", "--out", &key])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("not replacing a key"),
        "{}",
        stderr(&again)
    );
    assert_eq!(
        std::fs::read_to_string(format!("{key}.pub")).unwrap(),
        public
    );
}

const SCHEDULED: &str = "name: signed\ntimezone: UTC\nschedule:\n  - at: patch_tuesday 10:00\ncatch_up: 1h\nsteps:\n  hello:\n    uses: noop\n  say:\n    needs: [hello]\n    uses: command\n    with: { run: \"echo patched\" }\n";

/// The daemon signs a checkpoint when a run ends and at shutdown, chains them across a restart,
/// and refuses to sign a log that no longer extends them (recording the gap in the log).
#[test]
fn the_daemon_signs_checkpoints_across_restarts_and_refuses_a_rewritten_log() {
    use patchday_tests::daemon::{Daemon, audit_events, count, poll, serve_command};
    use std::time::Duration;

    let dir = scratch("evidence-daemon");
    std::fs::create_dir_all(dir.join("runbooks")).unwrap();
    std::fs::write(dir.join("runbooks/signed.yaml"), SCHEDULED).unwrap();
    std::fs::write(
        dir.join("patchday.toml"),
        "[audit]\ncheckpoint_key_file = \"key\"\ncheckpoint_dir = \"checkpoints\"\ncheckpoint_every = \"1h\"\norigin = \"patchday/e2e\"\n",
    )
    .unwrap();
    let key = dir.join("key").display().to_string();
    let out = patchday()
        .args([
            "audit",
            "keygen",
            "--name",
            "patchday.test/daemon",
            "--out",
            &key,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let database = format!("sqlite://{}", dir.join("d.db").display());
    let checkpoint = |n: usize| dir.join(format!("checkpoints/{n:08}.checkpoint"));
    let serve = || {
        let mut cmd = serve_command(&dir, &database, &dir.join("outbox"));
        cmd.args(["--config", "patchday.toml"]);
        Daemon::start(cmd)
    };
    let verify = || {
        let out = patchday()
            .current_dir(&dir)
            .args([
                "audit",
                "verify",
                "--config",
                "patchday.toml",
                "--database",
                &database,
            ])
            .output()
            .unwrap();
        (out.status.code(), stdout(&out))
    };

    // The cycle fires at 10:00 (virtual clock); its end is signed.
    let mut daemon = serve();
    poll("the run's checkpoint", Duration::from_secs(30), || {
        let events = audit_events(&database);
        (count(&events, "run.finished") == 1 && checkpoint(1).exists()).then_some(())
    });
    assert_eq!(daemon.terminate().code(), Some(0));
    let first = std::fs::read_to_string(checkpoint(1)).unwrap();
    assert!(first.starts_with("patchday/e2e\n"), "{first}");
    assert!(
        first.contains("\n\n\u{2014} patchday.test/daemon "),
        "{first}"
    );

    // A restart appends (runbook.loaded ...) and signs at shutdown, chained to the last one.
    let mut daemon = serve();
    assert_eq!(daemon.terminate().code(), Some(0));
    let files = std::fs::read_dir(dir.join("checkpoints")).unwrap().count();
    assert!(files >= 2, "{files} checkpoint(s)");
    let (code, text) = verify();
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&format!("checkpoints ok: {files} signed")),
        "{text}"
    );
    let signed: usize = std::fs::read_to_string(checkpoint(files))
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        signed,
        audit_events(&database).len(),
        "the shutdown signed the whole log"
    );

    // Someone deletes the tail and moves the head: the daemon signs nothing more and records
    // the gap; `audit verify` (configured: it checks the folder by default) names it.
    execute(
        &database,
        &format!(
            "DROP TRIGGER events_no_delete; DELETE FROM events WHERE seq > {}; \
             UPDATE chain_head SET seq = {0}, hash = (SELECT hash FROM events WHERE seq = {0});",
            signed - 2
        ),
    );
    let mut daemon = serve();
    let reason = poll("checkpoint.unavailable", Duration::from_secs(30), || {
        let events = audit_events(&database);
        events
            .iter()
            .find(|e| e["action"] == "checkpoint.unavailable")
            .map(|e| e["details"]["reason"].as_str().unwrap().to_string())
    });
    assert!(
        reason.contains("no longer matches the last checkpoint"),
        "{reason}"
    );
    assert_eq!(daemon.terminate().code(), Some(0));
    let after = std::fs::read_dir(dir.join("checkpoints")).unwrap().count();
    assert_eq!(after, files, "nothing signed over a rewritten log");
    let (code, text) = verify();
    assert_eq!(code, Some(1), "{text}");
    // The daemon appended to the shortened log (how much depends on when it was stopped, and
    // how many checkpoints the first two runs signed): the first checkpoint past the cut names
    // either a history that differs at its size or a log shorter than it.
    assert!(
        text.contains("audit log does NOT match its checkpoints"),
        "{text}"
    );
    assert!(
        text.contains("rewritten: the first ") || text.contains("truncated: checkpoint "),
        "{text}"
    );
}

const GATED: &str = "name: gated\ntimezone: UTC\nroles:\n  cab: [alice@example.com]\nsteps:\n  prepare:\n    uses: noop\n  cab-approval:\n    needs: [prepare]\n    uses: approval\n    with: { approvers: [cab], quorum: 1 }\n  patch:\n    needs: [cab-approval]\n    uses: command\n    with: { run: \"echo patched\" }\n";

/// A run approved through the daemon is packed with its approval shown before the patch step;
/// the pack verifies offline; an altered file, a removed approval or a swapped checkpoint
/// (even a genuine one) fails `evidence verify`. A genuine pack whose decision came after work
/// that depended on it began verifies with the finding printed (and in `--format json`), and
/// fails `--strict`.
#[test]
fn an_evidence_pack_verifies_offline_and_fails_when_altered() {
    use patchday_tests::daemon::{Daemon, poll};
    use std::process::Command;
    use std::time::Duration;

    let dir = scratch("evidence-pack");
    std::fs::create_dir_all(dir.join("runbooks")).unwrap();
    std::fs::write(dir.join("runbooks/gated.yaml"), GATED).unwrap();
    std::fs::write(
        dir.join("patchday.toml"),
        "[audit]\ncheckpoint_key_file = \"key\"\ncheckpoint_dir = \"checkpoints\"\n",
    )
    .unwrap();
    let (token, tokens) = patchday_tests::api_token(&dir, "ci");
    let database = format!("sqlite://{}", dir.join("p.db").display());
    let pd = |args: &[&str]| {
        patchday()
            .current_dir(&dir)
            .args(args)
            .args(["--config", "patchday.toml", "--database", &database])
            .output()
            .unwrap()
    };
    let out = pd(&[
        "audit",
        "keygen",
        "--name",
        "patchday.test/pack",
        "--out",
        "key",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut serve = patchday();
    serve
        .current_dir(&dir)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--config",
            "patchday.toml",
        ])
        .args([
            "--database",
            &database,
            "--runbooks",
            "runbooks",
            "--outbox",
            "outbox",
        ])
        .env("PATCHDAY_SECURITY_API_TOKENS_FILE", &tokens);
    let mut daemon = Daemon::start(serve);
    let server = format!("http://{}", daemon.addr);
    let cli = |args: &[&str]| {
        patchday()
            .args(args)
            .args(["--server", &server])
            .env("PATCHDAY_API_TOKEN", &token)
            .output()
            .unwrap()
    };
    let out = cli(&["trigger", "gated"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run = stdout(&out).split(' ').nth(1).unwrap().to_string();
    let state = |step: &str| -> String {
        let out = cli(&["status", &run, "--format", "json"]);
        let detail: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        if step == "run" {
            return detail["run"]["state"].as_str().unwrap().to_string();
        }
        detail["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == step)
            .map(|s| s["state"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    poll("the approval to wait", Duration::from_secs(60), || {
        (state("cab-approval") == "awaiting_input").then_some(())
    });
    let out = cli(&[
        "approve",
        &run,
        "--step",
        "cab-approval",
        "--comment",
        "go",
        "--reason",
        "the CAB met by phone",
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    poll("the run to succeed", Duration::from_secs(60), || {
        (state("run") == "succeeded").then_some(())
    });
    assert_eq!(daemon.terminate().code(), Some(0));

    let out = pd(&["evidence", &run, "--out", "pack.tar"]);
    assert_exit(&out, 0);
    let verify = |pack: &str| {
        let out = pd(&["evidence", "verify", pack, "--key", "key.pub"]);
        (out.status.code(), stdout(&out))
    };
    let (code, text) = verify("pack.tar");
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("1 decision(s) before the work they gated"),
        "{text}"
    );

    // What the pack says, read with the system's tar.
    let unpacked = dir.join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    let status = Command::new("tar")
        .args(["-xf", "pack.tar", "-C", "unpacked"])
        .current_dir(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    let approvals: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(unpacked.join("approvals.json")).unwrap())
            .unwrap();
    assert_eq!(approvals[0]["step"], "cab-approval");
    assert_eq!(approvals[0]["actor"], "api:ci");
    assert_eq!(approvals[0]["before_work"], true);
    let report = std::fs::read_to_string(unpacked.join("report.md")).unwrap();
    assert!(
        report.contains("| cab-approval | api:ci | approve |"),
        "{report}"
    );
    assert!(unpacked.join("runbook/gated.yaml").exists());
    let proofs = std::fs::read_to_string(unpacked.join("proofs.jsonl")).unwrap();
    let events = std::fs::read_to_string(unpacked.join("audit.jsonl")).unwrap();
    assert_eq!(proofs.lines().count(), events.lines().count());
    // One proof checks with the independent script too.
    std::fs::write(dir.join("one-proof.json"), proofs.lines().nth(1).unwrap()).unwrap();
    let (code, text) = python(&[
        &dir.join("key.pub").display().to_string(),
        "--proof",
        &dir.join("one-proof.json").display().to_string(),
    ]);
    assert_eq!(code, Some(0), "{text}");

    // Repacked with one file changed: each is caught.
    let files = [
        "report.md",
        "run.json",
        "steps.json",
        "approvals.json",
        "exceptions.json",
        "snapshots.json",
        "tickets.json",
        "findings.json",
        "cycle-report.json",
        "cycle-report.md",
        "cycle-report.html",
        "plan.json",
        "audit.jsonl",
        "proofs.jsonl",
        "checkpoint",
        "runbook/gated.yaml",
        "MANIFEST",
    ];
    let repack = |name: &str, change: &dyn Fn(&str) -> String, expected: &str| {
        let copy = dir.join(format!("copy-{}", name.replace('/', "-")));
        let _ = std::fs::remove_dir_all(&copy);
        std::fs::create_dir_all(copy.join("runbook")).unwrap();
        for file in files {
            std::fs::copy(unpacked.join(file), copy.join(file)).unwrap();
        }
        let text = std::fs::read_to_string(copy.join(name)).unwrap();
        std::fs::write(copy.join(name), change(&text)).unwrap();
        let tar = format!("{}.tar", copy.display());
        let status = Command::new("tar")
            .args([
                "--format=ustar",
                "-cf",
                &tar,
                "-C",
                &copy.display().to_string(),
            ])
            .args(files)
            .status()
            .unwrap();
        assert!(status.success());
        let (code, out) = verify(&tar);
        assert_eq!(code, Some(1), "{name}: {out}");
        assert!(
            out.contains(expected),
            "{name}: expected `{expected}`: {out}"
        );
    };
    repack(
        "steps.json",
        &|t| t.replace("\"succeeded\"", "\"failed\""),
        "steps.json was altered",
    );
    repack(
        "approvals.json",
        &|_| "[]\n".into(),
        "approvals.json was altered",
    );
    let genuine_older =
        std::fs::read_to_string(dir.join("checkpoints/00000001.checkpoint")).unwrap();
    repack(
        "checkpoint",
        &|_| genuine_older.clone(),
        "checkpoint was altered",
    );
    repack(
        "MANIFEST",
        &|t| t.replacen("approvals.json", "approvals.jsonx", 1),
        "MANIFEST: the signature by key",
    );
    // A file added to the pack.
    let mut extra = files.to_vec();
    std::fs::write(unpacked.join("extra.txt"), "x").unwrap();
    extra.push("extra.txt");
    let status = Command::new("tar")
        .args(["--format=ustar", "-cf", "extra.tar", "-C", "unpacked"])
        .args(&extra)
        .current_dir(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    let (code, out) = verify("extra.tar");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("files not in MANIFEST"), "{out}");
    let out = pd(&[
        "evidence", "verify", "pack.tar", "--key", "key.pub", "--strict",
    ]);
    assert_exit(&out, 0);

    // A late decision. The engine starts a step only once its needs finished, so the log is
    // rewritten before it is packed: prepare's `step.started` (before the approval) becomes
    // patch's, the chain rehashed from there, packed against checkpoints of its own. The pack
    // is genuine (it holds what the database holds, signed); its decision came after work that
    // depended on it began: a compliance finding, printed, failing only `--strict`.
    let (moved, decided) = start_patch_before_the_approval(&dir, &database);
    std::fs::write(
        dir.join("late.toml"),
        "[audit]\ncheckpoint_key_file = \"key\"\ncheckpoint_dir = \"late-checkpoints\"\n",
    )
    .unwrap();
    let out = patchday()
        .current_dir(&dir)
        .args(["evidence", &run, "--out", "late.tar"])
        .args(["--config", "late.toml", "--database", &database])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let finding = format!(
        "the decision on `cab-approval` (event {decided}) came after work that depended on it began (event {moved})"
    );
    let (code, text) = verify("late.tar");
    assert_eq!(code, Some(0), "genuine: {text}");
    assert!(text.contains(&format!("finding: {finding}")), "{text}");
    assert!(text.contains("1 decision(s), 1 after work"), "{text}");
    let out = pd(&[
        "evidence", "verify", "late.tar", "--key", "key.pub", "--strict",
    ]);
    assert_exit(&out, 1);
    assert!(stdout(&out).contains(&finding), "named: {}", stdout(&out));
    assert!(
        stdout(&out).contains("FAILED (--strict)"),
        "{}",
        stdout(&out)
    );
    let as_json = |strict: &[&str]| -> serde_json::Value {
        let out = pd(&[
            &[
                "evidence", "verify", "late.tar", "--key", "key.pub", "--format", "json",
            ],
            strict,
        ]
        .concat());
        serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
    };
    let checked = as_json(&[]);
    assert_eq!(checked["ok"], true, "{checked}");
    assert_eq!(checked["genuine"], true);
    assert_eq!(
        checked["findings"][0]["text"],
        finding.as_str(),
        "{checked}"
    );
    assert_eq!(checked["findings"].as_array().unwrap().len(), 1);
    let checked = as_json(&["--strict"]);
    assert_eq!(
        (&checked["ok"], &checked["genuine"]),
        (&false.into(), &true.into())
    );
    // The pack's own findings say it too; hiding it is tampering.
    let late = dir.join("late-unpacked");
    std::fs::create_dir_all(&late).unwrap();
    let status = Command::new("tar")
        .args(["-xf", "late.tar", "-C", "late-unpacked"])
        .current_dir(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    let findings = std::fs::read_to_string(late.join("findings.json")).unwrap();
    assert!(findings.contains(&finding), "{findings}");
    let approvals = std::fs::read_to_string(late.join("approvals.json")).unwrap();
    assert!(approvals.contains("\"before_work\": false"), "{approvals}");
    std::fs::write(
        late.join("approvals.json"),
        approvals.replace("\"before_work\": false", "\"before_work\": true"),
    )
    .unwrap();
    let status = Command::new("tar")
        .args([
            "--format=ustar",
            "-cf",
            "late-hidden.tar",
            "-C",
            "late-unpacked",
        ])
        .args(files)
        .current_dir(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    let (code, out) = verify("late-hidden.tar");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("approvals.json was altered"), "{out}");
}

/// Rewrites the SQLite log at `database` so that the run's `step.started` of `prepare` is
/// `patch`'s, rehashing the chain from it and moving the head (as `rewrite_consistently`):
/// the seq of that event and of the `approval.decided` it now comes before.
fn start_patch_before_the_approval(dir: &std::path::Path, database: &str) -> (i64, i64) {
    let out = patchday()
        .current_dir(dir)
        .args(["audit", "export", "--database", database])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let events: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seq_of = |action: &str, step: &str| {
        let found = events
            .iter()
            .find(|e| e["action"] == action && (step.is_empty() || e["step_id"] == step));
        found.expect(action)["seq"].as_i64().unwrap()
    };
    let (moved, decided) = (
        seq_of("step.started", "prepare"),
        seq_of("approval.decided", ""),
    );
    assert!(moved < decided);
    let mut sql = String::from("DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete;\n");
    let mut prev: Option<String> = None;
    for value in &events {
        let mut event = patchday::audit::event_from_json(value).unwrap();
        if event.seq < moved {
            continue;
        }
        if event.seq == moved {
            event.step_id = Some("patch".into());
        }
        if let Some(prev) = prev {
            event.prev_hash = prev;
        }
        event.hash = patchday::audit::row_hash(&event);
        sql.push_str(&format!(
            "UPDATE events SET step_id = {}, prev_hash = {}, hash = {} WHERE seq = {};\n",
            event.step_id.as_deref().map_or("NULL".into(), quote),
            quote(&event.prev_hash),
            quote(&event.hash),
            event.seq
        ));
        prev = Some(event.hash);
    }
    sql.push_str(
        "UPDATE chain_head SET seq = (SELECT MAX(seq) FROM events), \
         hash = (SELECT hash FROM events WHERE seq = (SELECT MAX(seq) FROM events));",
    );
    execute(database, &sql);
    (moved, decided)
}

/// Patch SLAs: a November cycle patched in time and a December one patched after its 14 days
/// (the deadline at local midnight, New York): the late hosts are named with the deadline; an
/// emergency run measured from its `released` param, at the severity its param gives.
#[test]
fn compliance_names_the_late_hosts_against_the_sla() {
    let dir = scratch("evidence-sla");
    std::fs::write(
        dir.join("hosts.yaml"),
        "hosts:\n  web1: { address: 10.0.0.1 }\n  web2: { address: 10.0.0.2 }\n  db1: { address: 10.0.0.3 }\ngroups:\n  all: [web1, web2]\nexceptions:\n  - { host: web1, until: 2026-11-10, reason: change freeze, approved_by: ciso@example.com }\n  - { host: db1, until: 2027-03-31, reason: vendor | support, approved_by: ciso@example.com }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("monthly.yaml"),
        "name: monthly-sla\ntimezone: America/New_York\ninventory: hosts.yaml\nsla: { critical: 14d, important: 30d }\nseverity: critical\nsteps:\n  patch:\n    uses: noop\n    for_each: { group: all }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("emergency.yaml"),
        "name: emergency-sla\ntimezone: UTC\nsla: { critical: 2d, important: 7d }\nparams:\n  released: {}\n  severity: { default: critical }\nsteps:\n  patch: { uses: noop }\n",
    )
    .unwrap();
    let database = format!("sqlite://{}", dir.join("s.db").display());
    let pd = |args: &[&str]| {
        let out = patchday()
            .current_dir(&dir)
            .args(args)
            .args(["--database", &database])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    };
    pd(&[
        "run",
        "monthly.yaml",
        "--cycle",
        "2026-11",
        "--now",
        "2026-11-20T12:00:00Z",
    ]);
    pd(&[
        "run",
        "monthly.yaml",
        "--cycle",
        "2026-12",
        "--now",
        "2026-12-30T12:00:00Z",
    ]);
    pd(&[
        "run",
        "emergency.yaml",
        "--param",
        "released=2026-12-01",
        "--param",
        "severity=important",
        "--now",
        "2026-12-06T12:00:00Z",
    ]);
    let text = pd(&["compliance", "--from", "2026-11-01", "--to", "2027-01-01"]);
    assert!(
        text.contains("3 of 5 hosts patched within their SLA (60.0%)"),
        "{text}"
    );
    assert!(
        text.contains("| monthly-sla | 2026-12 | web2 | patched 2026-12-30T12:00:00.000000Z after the deadline 2026-12-22T05:00:00.000000Z |"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&pd(&[
        "compliance",
        "--from",
        "2026-11-01",
        "--to",
        "2027-01-01",
        "--format",
        "json",
    ]))
    .unwrap();
    let late: Vec<(&str, &str)> = json["late"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["cycle"].as_str().unwrap(), l["host"].as_str().unwrap()))
        .collect();
    assert_eq!(late, [("2026-12", "web1"), ("2026-12", "web2")]);
    let emergency = json["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["runbook"] == "emergency-sla")
        .unwrap();
    assert_eq!(emergency["severity"], "important");
    assert_eq!(emergency["deadline"], "2026-12-08T00:00:00.000000Z");
    assert_eq!(emergency["hosts"][0]["within_sla"], true);

    // The inventory's exceptions, once each: the one that ended in November expired, the one
    // until March still open at the period's end; neither left a host out of these runs.
    let exceptions: Vec<(&str, &str)> = json["exceptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["host"].as_str().unwrap(), e["status"].as_str().unwrap()))
        .collect();
    assert_eq!(exceptions, [("web1", "expired"), ("db1", "open")]);
    assert_eq!(
        json["exceptions"][1]["left_out_in_runs"],
        serde_json::json!([])
    );
    assert!(
        text.contains("| db1 | 2027-03-31 | open | vendor   support | ciso@example.com |  |"),
        "{text}"
    );
    let html = pd(&[
        "compliance",
        "--from",
        "2026-11-01",
        "--to",
        "2027-01-01",
        "--format",
        "html",
    ]);
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(
        html.contains("<h2>Exceptions</h2>") && html.contains("<td>vendor | support</td>"),
        "{html}"
    );
    assert!(html.contains("web2"), "the late host is named: {html}");
}

/// A configured key that cannot be read is a gap in the evidence: logged, and recorded in the
/// audit log as `checkpoint.unavailable` (once), while the daemon goes on.
#[test]
fn a_missing_checkpoint_key_is_recorded_as_a_gap() {
    use patchday_tests::daemon::{Daemon, audit_events, count, poll, serve_command};
    use std::time::Duration;

    let dir = scratch("evidence-gap");
    std::fs::create_dir_all(dir.join("runbooks")).unwrap();
    std::fs::write(
        dir.join("patchday.toml"),
        "[audit]\ncheckpoint_key_file = \"missing.key\"\ncheckpoint_every = \"1s\"\n",
    )
    .unwrap();
    let database = format!("sqlite://{}", dir.join("g.db").display());
    let mut cmd = serve_command(&dir, &database, &dir.join("outbox"));
    cmd.args(["--config", "patchday.toml"])
        .stderr(std::process::Stdio::piped());
    let mut daemon = Daemon::start(cmd);
    let passes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stderr_lines = daemon.child.stderr.take().unwrap();
    let counter = passes.clone();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stderr_lines)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("no audit checkpoint: ") {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    });
    let reason = poll("checkpoint.unavailable", Duration::from_secs(30), || {
        audit_events(&database)
            .into_iter()
            .find(|e| e["action"] == "checkpoint.unavailable")
            .map(|e| e["details"]["reason"].as_str().unwrap().to_string())
    });
    assert!(reason.contains("missing.key"), "{reason}");
    // Looked at again every second (each pass logs it): still one event for the same problem.
    poll("three passes", Duration::from_secs(30), || {
        (passes.load(std::sync::atomic::Ordering::SeqCst) >= 3).then_some(())
    });
    assert_eq!(count(&audit_events(&database), "checkpoint.unavailable"), 1);
    assert_eq!(daemon.terminate().code(), Some(0));
    assert!(!dir.join("checkpoints").exists());
}

/// Answers each HTTP request on a loopback port with a ServiceNow-shaped change (`201`,
/// `{"result": {"number": ...}}`) until the test ends. Returns the port.
fn change_api(number: &'static str) -> u16 {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let reply = format!("{{\"result\":{{\"number\":\"{number}\",\"sys_id\":\"abc123\"}}}}");
            let _ = write!(
                reader.get_mut(),
                "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    port
}

/// The pack of a run with an exception (one host left out), a snapshot step (libvirt's test
/// driver through virsh) and a change ticket (an HTTP step against a loopback change API)
/// holds each, with the cycle report in three formats, the plan and bounded outputs; it
/// verifies, and a pack missing a required file fails naming it.
#[test]
fn an_evidence_pack_holds_exceptions_snapshots_tickets_reports_and_the_plan() {
    use std::process::Command;
    let dir = scratch("evidence-complete");
    let port = change_api("CHG0042");
    std::fs::write(
        dir.join("hosts.yaml"),
        "hosts:\n  web1: { address: 127.0.0.1 }\n  web2: { address: 127.0.0.1 }\n\
         groups:\n  web: [web1, web2]\n\
         exceptions:\n  - { host: web2, until: 2099-01-31, reason: vendor freeze, approved_by: ciso@example.com }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("r.yaml"),
        format!(
            "name: complete\ninventory: hosts.yaml\nsteps:\n\
             \x20 open-change:\n    uses: http\n    with: {{ method: POST, url: \"http://127.0.0.1:{port}/api/now/table/change_request\", json: {{ short_description: patch }}, expect: {{ status: [201] }} }}\n\
             \x20 snap:\n    needs: [open-change]\n    uses: snapshot\n    with: {{ provider: libvirt, uri: \"test:///default\", action: create, vm: test, name: pre-patch }}\n\
             \x20 patch:\n    needs: [snap]\n    for_each: {{ group: web }}\n    uses: command\n    with: {{ run: \"head -c 10000 /dev/zero | tr '\\\\0' x\" }}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("patchday.toml"),
        "[audit]\ncheckpoint_key_file = \"key\"\ncheckpoint_dir = \"checkpoints\"\n",
    )
    .unwrap();
    let database = format!("sqlite://{}", dir.join("p.db").display());
    let pd = |args: &[&str]| {
        patchday()
            .current_dir(&dir)
            .args(args)
            .args(["--config", "patchday.toml", "--database", &database])
            .output()
            .unwrap()
    };
    let out = pd(&[
        "audit",
        "keygen",
        "--name",
        "patchday.test/complete",
        "--out",
        "key",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = pd(&["run", "r.yaml"]);
    assert_exit(&out, 0);
    let export = stdout(&pd(&["audit", "export"]));
    let first: serde_json::Value = serde_json::from_str(export.lines().next().unwrap()).unwrap();
    let run = first["run_id"].as_str().unwrap().to_string();
    let out = pd(&["evidence", &run, "--out", "pack.tar"]);
    assert_exit(&out, 0);
    let out = pd(&["evidence", "verify", "pack.tar", "--key", "key.pub"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    let unpacked = dir.join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    let status = Command::new("tar")
        .args(["-xf", "pack.tar", "-C", "unpacked"])
        .current_dir(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    let read = |name: &str| std::fs::read_to_string(unpacked.join(name)).unwrap();
    let json = |name: &str| -> serde_json::Value { serde_json::from_str(&read(name)).unwrap() };
    let exceptions = json("exceptions.json");
    assert_eq!(exceptions[0]["host"], "web2");
    assert_eq!(exceptions[0]["approved_by"], "ciso@example.com");
    assert_eq!(exceptions[0]["until"], "2099-01-31");
    assert_eq!(exceptions[0]["applied_in_this_run"], true);
    let snapshots = json("snapshots.json");
    assert_eq!(snapshots[0]["name"], "pre-patch", "{snapshots}");
    assert_eq!(snapshots[0]["vm"], "test");
    let tickets = json("tickets.json");
    assert_eq!(tickets[0]["id"], "CHG0042", "{tickets}");
    assert_eq!(tickets[0]["step"], "open-change");
    let report = json("cycle-report.json");
    assert_eq!(report["run_id"], run.as_str());
    assert!(
        read("cycle-report.md").contains("web1"),
        "{}",
        read("cycle-report.md")
    );
    assert!(
        read("cycle-report.html").contains("<table"),
        "{}",
        read("cycle-report.html")
    );
    let plan = json("plan.json");
    assert_eq!(
        plan["critical_path"],
        serde_json::json!(["open-change", "snap", "patch"])
    );
    let steps = json("steps.json");
    let patched = steps
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "patch" && s["host"] == "web1")
        .unwrap();
    let output = patched["outputs"]["stdout"].as_str().unwrap();
    assert!(
        output.len() < 4_200 && output.contains("more bytes not kept"),
        "{}",
        output.len()
    );
    assert_eq!(json("findings.json"), serde_json::json!([]));
    assert!(read("report.md").contains("None: every decision came before the work it gated."));
    assert!(
        unpacked.join("runbook/r.yaml").exists() && unpacked.join("runbook/hosts.yaml").exists()
    );

    // A pack without one of the files it must hold (the manifest re-signed cannot be made
    // without the key, so the file is dropped from both): named.
    let files: Vec<String> = read("MANIFEST")
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once("  ").map(|(_, n)| n.to_string()))
        .filter(|n| n != "exceptions.json")
        .collect();
    let status = Command::new("tar")
        .args(["--format=ustar", "-cf", "short.tar", "-C", "unpacked"])
        .args(&files)
        .arg("MANIFEST")
        .current_dir(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    let out = pd(&["evidence", "verify", "short.tar", "--key", "key.pub"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("exceptions.json is listed in MANIFEST but missing"),
        "{}",
        stdout(&out)
    );
}
