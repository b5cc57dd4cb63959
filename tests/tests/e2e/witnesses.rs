//! Witnessed checkpoints (issue 14 item 2): with `[audit] witnesses`, every checkpoint the
//! daemon writes is also mailed through the outbox to the witnesses, through a real SMTP server:
//! the body and the `.txt` attachment are the checkpoint file verbatim, the subject names the
//! origin and the tree size, and the mailed checkpoints alone verify the log with
//! `patchday audit verify --checkpoints`. A restart sends what the last one queued at shutdown,
//! and nothing twice.

use std::collections::BTreeMap;
use std::time::Duration;

use patchday_tests::daemon::{Daemon, audit_events, count, poll, serve_command};
use patchday_tests::smtp::{SmtpOptions, SmtpServer};
use patchday_tests::{assert_exit, patchday, scratch, stderr, stdout};

const SCHEDULED: &str = "name: witnessed\ntimezone: UTC\nschedule:\n  - at: patch_tuesday 10:00\ncatch_up: 1h\nsteps:\n  hello:\n    uses: noop\n";

const LIMIT: Duration = Duration::from_secs(30);

/// The checkpoint files in the folder: file name to text.
fn files(dir: &std::path::Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().path())
                .map(|p| {
                    let name = p.file_name().unwrap().to_string_lossy().into_owned();
                    (name, std::fs::read_to_string(&p).unwrap())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The mailed checkpoints: attachment name without `.txt` to (subject, body, attachment).
fn mailed(smtp: &SmtpServer) -> Vec<(String, String, String, String)> {
    smtp.messages()
        .iter()
        .filter(|m| m["subject"].as_str().unwrap().contains("audit checkpoint"))
        .map(|m| {
            assert_eq!(m["rcpt_tos"], serde_json::json!(["auditor@example.com"]));
            let attachment = &m["attachments"][0];
            let name = attachment["filename"].as_str().unwrap();
            (
                name.strip_suffix(".txt").unwrap().to_string(),
                m["subject"].as_str().unwrap().to_string(),
                m["text"].as_str().unwrap().to_string(),
                attachment["content"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn checkpoints_are_mailed_to_the_witnesses_once_and_verify_the_log() {
    let dir = scratch("witnesses");
    std::fs::create_dir_all(dir.join("runbooks")).unwrap();
    std::fs::write(dir.join("runbooks/witnessed.yaml"), SCHEDULED).unwrap();
    let smtp = SmtpServer::start(&dir.join("mail"), &SmtpOptions::default());
    std::fs::write(
        dir.join("patchday.toml"),
        format!(
            "{}[audit]\ncheckpoint_key_file = \"key\"\ncheckpoint_dir = \"checkpoints\"\n\
             checkpoint_every = \"1h\"\norigin = \"patchday/witnessed\"\n\
             witnesses = [\"Auditor@Example.com\"]\n",
            smtp.config()
        ),
    )
    .unwrap();
    let key = dir.join("key").display().to_string();
    let out = patchday()
        .args([
            "audit",
            "keygen",
            "--name",
            "patchday.test/w",
            "--out",
            &key,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let database = format!("sqlite://{}", dir.join("w.db").display());
    let serve = || {
        let mut cmd = serve_command(&dir, &database, &dir.join("outbox"));
        cmd.args(["--config", "patchday.toml"]);
        Daemon::start(cmd)
    };
    let checkpoints = dir.join("checkpoints");

    // The cycle runs at 10:00 (virtual clock); the checkpoint of its end reaches the auditor.
    let mut daemon = serve();
    poll("the run's checkpoint in the mailbox", LIMIT, || {
        let finished = count(&audit_events(&database), "run.finished") == 1;
        (finished && !mailed(&smtp).is_empty()).then_some(())
    });
    let (name, subject, body, attachment) = mailed(&smtp).remove(0);
    assert_eq!(name, "00000001.checkpoint");
    let file = std::fs::read_to_string(checkpoints.join(&name)).unwrap();
    // Text travels with CRLF line ends (RFC 5322); the base64 attachment keeps the bytes.
    assert_eq!(
        body.replace("\r\n", "\n"),
        file,
        "the body is the checkpoint"
    );
    assert_eq!(
        attachment, file,
        "the attachment is the checkpoint verbatim"
    );
    let size = file.lines().nth(1).unwrap();
    assert_eq!(
        subject,
        format!("[patchday] audit checkpoint patchday/witnessed: tree size {size}")
    );
    assert_eq!(daemon.terminate().code(), Some(0));

    // The shutdown signed a last checkpoint; the next start mails it (and nothing again).
    let before_restart = files(&checkpoints);
    assert!(before_restart.len() >= 2, "{before_restart:?}");
    let mut daemon = serve();
    poll("every checkpoint of the first daemon mailed", LIMIT, || {
        let names: Vec<String> = mailed(&smtp).into_iter().map(|m| m.0).collect();
        before_restart
            .keys()
            .all(|n| names.contains(n))
            .then_some(())
    });
    assert_eq!(daemon.terminate().code(), Some(0));

    let all = mailed(&smtp);
    let on_disk = files(&checkpoints);
    let mut seen = BTreeMap::new();
    for (name, _, body, attachment) in &all {
        assert_eq!(
            Some(attachment),
            on_disk.get(name),
            "{name} as mailed and as filed"
        );
        assert_eq!(&body.replace("\r\n", "\n"), attachment);
        assert!(
            seen.insert(name.clone(), ()).is_none(),
            "{name} mailed twice"
        );
    }
    let sent = audit_events(&database)
        .into_iter()
        .filter(|e| e["action"] == "email.sent")
        .filter(|e| {
            e["details"]["key"]
                .as_str()
                .is_some_and(|k| k.starts_with("checkpoint:"))
        })
        .count();
    assert_eq!(sent, all.len(), "one email.sent per witness email");

    // The mailed copies alone (written out as the auditor would keep them) verify the log.
    let kept = dir.join("auditor");
    std::fs::create_dir_all(&kept).unwrap();
    for (name, _, _, attachment) in &all {
        std::fs::write(kept.join(name), attachment).unwrap();
    }
    let out = patchday()
        .current_dir(&dir)
        .args(["audit", "verify", "--database", &database])
        .args(["--checkpoints", "auditor", "--key", "key.pub"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains(&format!("checkpoints ok: {} signed", all.len())),
        "{}",
        stdout(&out)
    );
}
