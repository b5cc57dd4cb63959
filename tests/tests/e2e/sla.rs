//! Patch SLA warnings before a cycle runs (issue 14 item 5): `plan`, `calendar` and
//! `validate --strict` warn when a cycle's patching steps are planned after the SLA deadline
//! (Patch Tuesday 00:00 in the runbook's zone plus the severity's days on the calendar), naming
//! the runbook file, the cycle, the step, the planned time and the deadline. DST changes in New
//! York, Berlin and Sydney and month ends, each just met and just missed; a December cycle a
//! freeze skips. The cycle report names late hosts; the monthly compliance email goes once.

use std::path::{Path, PathBuf};

use patchday_tests::{inventory, patchday, scratch, stderr, stdout};

/// A monthly runbook in `zone` whose `patch` step (fanned out) starts at `patch_at`.
fn runbook(zone: &str, sla: &str, patch_at: &str, blackout: &str) -> String {
    format!(
        "name: sla-check\ntimezone: {zone}\nschedule:\n  - at: patch_tuesday 09:00\n{blackout}\
         sla: {{ critical: {sla}, low: 90d }}\nseverity: critical\ninventory: hosts.yaml\n\
         steps:\n  approve:\n    uses: noop\n  patch:\n    needs: [approve]\n    at: {patch_at}\n\
         \x20   for_each: {{ group: all }}\n    uses: command\n    with: {{ run: \"echo patched\" }}\n  \
         report:\n    needs: [patch]\n    at: patch_tuesday+60d 09:00\n    uses: noop\n"
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    std::fs::write(dir.join("hosts.yaml"), inventory(&["web1".into()])).unwrap();
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    file
}

/// `patchday plan FILE --cycle CYCLE`: exit code and stderr.
fn plan(file: &Path, cycle: &str) -> (Option<i32>, String) {
    let out = patchday()
        .current_dir(file.parent().unwrap())
        .args(["plan", &file.display().to_string(), "--cycle", cycle])
        .output()
        .unwrap();
    (out.status.code(), stderr(&out))
}

#[test]
fn plan_warns_when_patching_falls_after_the_sla_across_dst_and_month_ends() {
    let dir = scratch("sla-plan");
    // (zone, cycle, sla, patch `at`, the deadline as printed, late?)
    let cases = [
        // New York: DST ends on 2026-11-01; 30 days after Tuesday 2026-10-13 is 2026-11-12
        // 00:00 EST (720 hours would end at 23:00 the day before).
        (
            "America/New_York",
            "2026-10",
            "30d",
            "patch_tuesday+29d 23:30",
            "2026-11-12T00:00:00-05:00",
            false,
        ),
        (
            "America/New_York",
            "2026-10",
            "30d",
            "patch_tuesday+30d 00:01",
            "2026-11-12T00:00:00-05:00",
            true,
        ),
        // Berlin: DST starts on 2026-03-29; 20 days after 2026-03-10 is 2026-03-30 00:00 CEST.
        (
            "Europe/Berlin",
            "2026-03",
            "20d",
            "patch_tuesday+19d 23:59",
            "2026-03-30T00:00:00+02:00",
            false,
        ),
        (
            "Europe/Berlin",
            "2026-03",
            "20d",
            "patch_tuesday+20d 00:30",
            "2026-03-30T00:00:00+02:00",
            true,
        ),
        // Sydney: DST starts on 2026-10-04; 30 days after 2026-09-08 is 2026-10-08 00:00 AEDT.
        // On the deadline itself is within it.
        (
            "Australia/Sydney",
            "2026-09",
            "30d",
            "patch_tuesday+30d 00:00",
            "2026-10-08T00:00:00+11:00",
            false,
        ),
        (
            "Australia/Sydney",
            "2026-09",
            "30d",
            "patch_tuesday+30d 00:01",
            "2026-10-08T00:00:00+11:00",
            true,
        ),
        // Month ends: February 2027 (28 days) and the turn of the year.
        (
            "UTC",
            "2027-02",
            "20d",
            "patch_tuesday+19d 23:59",
            "2027-03-01T00:00:00+00:00",
            false,
        ),
        (
            "UTC",
            "2027-02",
            "20d",
            "patch_tuesday+20d 00:01",
            "2027-03-01T00:00:00+00:00",
            true,
        ),
        (
            "UTC",
            "2026-12",
            "24d",
            "patch_tuesday+23d 23:59",
            "2027-01-01T00:00:00+00:00",
            false,
        ),
        (
            "UTC",
            "2026-12",
            "24d",
            "patch_tuesday+24d 00:01",
            "2027-01-01T00:00:00+00:00",
            true,
        ),
    ];
    for (i, (zone, cycle, sla, at, deadline, late)) in cases.into_iter().enumerate() {
        let name = format!("case{i}.yaml");
        let file = write(&dir, &name, &runbook(zone, sla, at, ""));
        let (code, err) = plan(&file, cycle);
        assert_eq!(code, Some(0), "{zone} {at}: {err}");
        if late {
            assert!(
                err.contains(&format!(
                    "warning: {}: cycle {cycle}: step `patch` is planned at ",
                    file.display()
                )) && err.contains(&format!(
                    "after the SLA deadline {deadline} (critical: {sla} from the release on "
                )),
                "{zone} {at}: {err}"
            );
            // Only the fan-out steps are patching: the later `report` is not named.
            assert!(!err.contains("`report`"), "{err}");
        } else {
            assert!(!err.contains("warning"), "{zone} {at}: {err}");
        }
    }
}

#[test]
fn a_december_cycle_skipped_by_a_freeze_is_named_and_validate_strict_fails() {
    let dir = scratch("sla-freeze");
    let freeze = "blackouts:\n  - { from: 2026-12-01, to: 2027-01-05, reason: year-end freeze }\n";
    let file = write(
        &dir,
        "monthly.yaml",
        &runbook("America/New_York", "14d", "patch_tuesday+2d 22:00", freeze),
    );
    let path = file.display().to_string();

    let out = patchday()
        .current_dir(&dir)
        .args([
            "--now",
            "2026-10-01T00:00:00Z",
            "calendar",
            &path,
            "--count",
            "4",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("skipped: year-end freeze"),
        "{}",
        stdout(&out)
    );
    let warnings: Vec<String> = stderr(&out)
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .map(str::to_string)
        .collect();
    assert_eq!(
        warnings,
        [format!(
            "warning: {path}: cycle 2026-12: the blackout `year-end freeze` skips the cycle, so its patching (`patch`) does not run before the SLA deadline 2026-12-22T00:00:00-05:00 (critical: 14d from the release on 2026-12-08)"
        )]
    );

    // validate warns at the `sla:` entry; --strict makes it fail.
    let validate = |strict: bool| {
        let mut cmd = patchday();
        cmd.current_dir(&dir)
            .args(["--now", "2026-10-01T00:00:00Z", "validate", &path]);
        if strict {
            cmd.arg("--strict");
        }
        cmd.output().unwrap()
    };
    let out = validate(false);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = validate(true);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{path}:7:18: warning: cycle 2026-12: the blackout `year-end freeze` skips the cycle"
        )) && err.contains("(`sla.critical`)"),
        "{err}"
    );
    // Without the freeze, the same runbook passes --strict: nothing else is late.
    write(
        &dir,
        "monthly.yaml",
        &runbook("America/New_York", "14d", "patch_tuesday+2d 22:00", ""),
    );
    let out = validate(true);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn validate_strict_names_the_late_step_and_the_sla_line() {
    let dir = scratch("sla-validate");
    let file = write(
        &dir,
        "late.yaml",
        &runbook("Europe/Berlin", "7d", "patch_tuesday+7d 22:00", ""),
    );
    let path = file.display().to_string();
    let out = patchday()
        .current_dir(&dir)
        .args([
            "--now",
            "2026-10-01T00:00:00Z",
            "validate",
            "--strict",
            &path,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    // October 2026: Patch Tuesday the 13th, deadline the 20th 00:00 CEST, patch at 22:00 CEST.
    assert!(
        err.contains(&format!(
            "{path}:5:18: warning: cycle 2026-10: step `patch` is planned at 2026-10-20T22:00:00+02:00, after the SLA deadline 2026-10-20T00:00:00+02:00 (critical: 7d from the release on 2026-10-13) (`sla.critical`)"
        )),
        "{err}"
    );
    // One warning per cycle checked (a year of them), each at the `sla:` line.
    assert_eq!(err.matches(": warning: cycle ").count(), 12, "{err}");
}

/// The cycle report gives each host's time to patch against the SLA and names the late ones,
/// in its Markdown, HTML and JSON: November patched in time but for a host that failed;
/// December patched after its 14 days (deadline 2026-12-22 00:00 New York).
#[test]
fn the_cycle_report_names_late_hosts_against_the_sla() {
    let dir = scratch("sla-report");
    std::fs::write(
        dir.join("hosts.yaml"),
        inventory(&["web1".into(), "web2".into(), "web3".into()]),
    )
    .unwrap();
    std::fs::write(
        dir.join("monthly.yaml"),
        "name: monthly-sla\ntimezone: America/New_York\ninventory: hosts.yaml\n\
         sla: { critical: 14d }\nseverity: critical\nsteps:\n  patch:\n    uses: command\n\
         \x20   for_each: { group: all }\n    with: { run: \"test {{host.name}} != web2\" }\n\
         \x20 report:\n    needs: [patch]\n    if: always\n    uses: report\n\
         \x20   with: { format: both, output: \"report-{{cycle}}.md\" }\n",
    )
    .unwrap();
    let database = format!("sqlite://{}", dir.join("r.db").display());
    for (cycle, now) in [
        ("2026-11", "2026-11-20T12:00:00Z"),
        ("2026-12", "2026-12-30T12:00:00Z"),
    ] {
        let out = patchday()
            .current_dir(&dir)
            .args(["run", "monthly.yaml", "--cycle", cycle, "--now", now])
            .args(["--database", &database])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "web2 fails: {}", stderr(&out));
    }
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();

    let november = read("report-2026-11.md");
    assert!(
        november.contains("Severity critical: released 2026-11-10 00:00 -05:00, deadline 2026-11-24 00:00 -05:00. Late hosts (1): web2."),
        "{november}"
    );
    assert!(
        november.contains("| web1 | 2026-11-20 07:00 -05:00 | 10d 7h 0m | yes | — |"),
        "{november}"
    );
    assert!(november.contains("| web2 | "), "{november}");
    assert!(
        november.contains("| LATE | step `patch` Failed"),
        "{november}"
    );

    let december = read("report-2026-12.html");
    assert!(
        december
            .contains("deadline 2026-12-22 00:00 -05:00. Late hosts (3): web1, web2, web3.</p>"),
        "{december}"
    );
    assert!(
        december.contains("<tr><td>web1</td><td>2026-12-30 07:00 -05:00</td><td>22d 7h 0m</td><td class=\"LATE\">LATE</td><td>patched 2026-12-30T12:00:00.000000Z after the deadline 2026-12-22T05:00:00.000000Z</td></tr>"),
        "{december}"
    );

    let json: serde_json::Value = serde_json::from_str(&read("report-2026-12.json")).unwrap();
    let sla = &json["sla"];
    assert_eq!(sla["severity"], "critical");
    assert_eq!(sla["deadline"], "2026-12-22T00:00:00-05:00");
    let late: Vec<(&str, bool)> = sla["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["host"].as_str().unwrap(), h["late_reason"].is_string()))
        .collect();
    assert_eq!(late, [("web1", true), ("web2", true), ("web3", true)]);
    let november: serde_json::Value = serde_json::from_str(&read("report-2026-11.json")).unwrap();
    let within: Vec<bool> = november["sla"]["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["late_reason"].is_null())
        .collect();
    assert_eq!(within, [true, false, true]);
}

/// `[compliance]`: the leader mails last month's compliance report once its day comes, through
/// the real SMTP server: the virtual clock crosses from November into December, one email
/// (Markdown body, HTML and JSON attached); a restart in December sends no second one.
#[test]
fn the_monthly_compliance_email_goes_once_across_a_month_boundary_and_a_restart() {
    use patchday_tests::daemon::{Daemon, audit_events, count, poll};
    use patchday_tests::smtp::{SmtpOptions, SmtpServer};
    use std::time::Duration;

    let dir = scratch("sla-monthly-mail");
    std::fs::create_dir_all(dir.join("runbooks")).unwrap();
    std::fs::write(
        dir.join("runbooks/hosts.yaml"),
        inventory(&["web1".into(), "web2".into()]),
    )
    .unwrap();
    std::fs::write(
        dir.join("runbooks/monthly.yaml"),
        "name: monthly-mail\ntimezone: UTC\nschedule:\n  - at: patch_tuesday 10:00\ncatch_up: 1h\n\
         inventory: hosts.yaml\nsla: { critical: 14d }\nseverity: critical\nsteps:\n  patch:\n\
         \x20   uses: noop\n    for_each: { group: all }\n",
    )
    .unwrap();
    let smtp = SmtpServer::start(&dir.join("mail"), &SmtpOptions::default());
    std::fs::write(
        dir.join("patchday.toml"),
        format!(
            "{}[compliance]\nto = [\"cab@example.com\"]\nday = 1\n",
            smtp.config()
        ),
    )
    .unwrap();
    let database = format!("sqlite://{}", dir.join("m.db").display());
    // November's cycle, patched on the 20th (within 14 days of the 10th).
    let out = patchday()
        .current_dir(&dir)
        .args(["run", "runbooks/monthly.yaml", "--cycle", "2026-11"])
        .args(["--now", "2026-11-20T12:00:00Z", "--database", &database])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let serve = |now: &str| {
        let mut cmd = patchday();
        cmd.current_dir(&dir)
            .args(["--config", "patchday.toml"])
            .args(["serve", "--listen", "127.0.0.1:0", "--database", &database])
            .args(["--runbooks", "runbooks", "--now", now, "--virtual-clock"]);
        Daemon::start(cmd)
    };
    let compliance_mail = || -> Vec<serde_json::Value> {
        smtp.messages()
            .into_iter()
            .filter(|m| {
                m["subject"]
                    .as_str()
                    .unwrap()
                    .contains("patch SLA compliance")
            })
            .collect()
    };

    // Two minutes before December: October's report is due already (its day, November 1st,
    // has come and November is not over), then the clock jumps to December 1st: November's.
    let mut daemon = serve("2026-11-30T23:58:00Z");
    let mail = poll(
        "November's compliance email",
        Duration::from_secs(30),
        || compliance_mail().into_iter().nth(1),
    );
    assert_eq!(daemon.terminate().code(), Some(0));
    assert_eq!(
        compliance_mail()[0]["subject"],
        "[patchday] patch SLA compliance 2026-10: 0 of 0 hosts within SLA"
    );
    assert_eq!(mail["rcpt_tos"], serde_json::json!(["cab@example.com"]));
    assert_eq!(
        mail["subject"],
        "[patchday] patch SLA compliance 2026-11: 2 of 2 hosts within SLA"
    );
    let body = mail["text"].as_str().unwrap();
    assert!(
        body.contains(
            "# Patch SLA compliance 2026-11-01T00:00:00.000000Z to 2026-12-01T00:00:00.000000Z"
        ) && body.contains("2 of 2 hosts patched within their SLA (100.0%)"),
        "{body}"
    );
    let names: Vec<&str> = mail["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["filename"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "patch-sla-compliance-2026-11.html",
            "patch-sla-compliance-2026-11.json"
        ]
    );
    let html = mail["attachments"][0]["content"].as_str().unwrap();
    assert!(
        html.contains("<h1>Patch SLA compliance 2026-11-01"),
        "{html}"
    );
    let json: serde_json::Value =
        serde_json::from_str(mail["attachments"][1]["content"].as_str().unwrap()).unwrap();
    assert_eq!(json["hosts_within_sla"], 2);

    // Restarted in December: its first pass finds November mailed; then December's cycle runs.
    let mut daemon = serve("2026-12-01T00:30:00Z");
    poll("December's run", Duration::from_secs(30), || {
        (count(&audit_events(&database), "run.finished") == 2).then_some(())
    });
    assert_eq!(daemon.terminate().code(), Some(0));
    let subjects: Vec<String> = compliance_mail()
        .iter()
        .map(|m| m["subject"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        subjects.len(),
        2,
        "one email a month, not two: {subjects:?}"
    );
}
