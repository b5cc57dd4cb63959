//! `report`: the cycle report rendered to Markdown and HTML, written, and emailed to a real
//! SMTP server.

use patchday_connectors::inputs::ReportFormat;
use patchday_connectors::settings::SmtpTls;
use patchday_connectors::{ConnectorError, CycleReport, builtin, render_report};
use serde_json::{Value, json};

use crate::support::{SmtpMode, SmtpServer, ctx_with};

fn report_json() -> Value {
    json!({
        "runbook": "monthly-windows",
        "cycle": "2026-12",
        "patch_tuesday": "2026-12-08",
        "generated_at": "2026-12-12T04:00:00-05:00",
        "run_id": "run-7",
        "rows": [
            { "host": "sql01a", "step": "snapshot-vms", "status": "succeeded",
              "started": "2026-12-11T21:00:00-05:00", "finished": "2026-12-11T21:05:30-05:00" },
            { "host": "sql01a", "step": "patch-node1", "status": "patched", "approver": "cab-chair@example.com",
              "started": "2026-12-11T22:00:00-05:00", "finished": "2026-12-11T22:40:00-05:00" },
            { "host": "sql01b", "step": "patch-node2", "status": "failed", "reason": "exit code 100 | dpkg lock",
              "started": "2026-12-11T23:00:00-05:00", "finished": "2026-12-11T23:01:00-05:00" },
            { "host": "legacy01", "step": "patch-node1", "status": "excepted",
              "reason": "vendor <acme> does not support the update", "approver": "ciso@example.com" }
        ],
        "approvals": [
            { "step": "cab-approval", "who": "cab-chair@example.com", "decision": "approve",
              "when": "2026-12-07T10:12:00-05:00", "from_ip": "10.1.2.3" }
        ],
        "overdue": [
            { "step": "patch-node2", "host": "sql01b", "deadline": "2026-12-12T04:00:00-05:00" }
        ]
    })
}

fn report() -> CycleReport {
    serde_json::from_value(report_json()).unwrap()
}

#[test]
fn markdown_has_every_row_approval_and_overdue_step() {
    let md = render_report(&report(), ReportFormat::Markdown, None)
        .unwrap()
        .markdown
        .unwrap();
    assert!(
        md.starts_with("# Patch report: monthly-windows 2026-12\n"),
        "{md}"
    );
    assert!(
        md.contains(
            "Hosts: 3 (patched 1, succeeded without patching 0, failed 1, excepted 1, skipped 0)"
        ),
        "{md}"
    );
    assert!(md.contains("| sql01a | patched | 3d 22h 40m |"), "{md}");
    assert!(md.contains("| sql01b | failed | — |"), "{md}");
    assert!(md.contains("| sql01a | patch-node1 | patched | — | cab-chair@example.com | 2026-12-11 22:00 -05:00 | 2026-12-11 22:40 -05:00 | 40m 0s |"), "{md}");
    assert!(
        md.contains("| sql01b | patch-node2 | failed | exit code 100 \\| dpkg lock |"),
        "{md}"
    );
    assert!(md.contains("| legacy01 | patch-node1 | excepted | vendor <acme> does not support the update | ciso@example.com |"), "{md}");
    assert!(md.contains("| cab-approval | cab-chair@example.com | approve | 2026-12-07 10:12 -05:00 | 10.1.2.3 |"), "{md}");
    assert!(
        md.contains("| patch-node2 | sql01b | 2026-12-12 04:00 -05:00 | — |"),
        "{md}"
    );
}

#[test]
fn html_escapes_and_shows_the_same_rows() {
    let html = render_report(&report(), ReportFormat::Html, None)
        .unwrap()
        .html
        .unwrap();
    assert!(
        html.contains("<td>sql01a</td><td class=\"patched\">patched</td><td>3d 22h 40m</td>"),
        "{html}"
    );
    assert!(
        html.contains("vendor &lt;acme&gt; does not support the update"),
        "{html}"
    );
    assert!(
        html.contains("<td>cab-approval</td><td>cab-chair@example.com</td><td>approve</td>"),
        "{html}"
    );
}

#[tokio::test]
async fn report_is_written_and_emailed_with_attachments() {
    let server = SmtpServer::start(SmtpMode::Plain, false);
    let ctx = ctx_with(server.settings(SmtpTls::None, false), server.dir.path());
    let inputs = json!({ "to": "committee", "output": "reports/2026-12", "report": report_json() });
    let out = builtin("report")
        .unwrap()
        .execute(inputs, &ctx)
        .await
        .unwrap();
    assert_eq!(
        out["totals"],
        json!({ "hosts": 3, "patched": 1, "succeeded": 0, "failed": 1, "excepted": 1, "skipped": 0 })
    );
    let md_path = server.dir.path().join("reports/2026-12.md");
    assert_eq!(out["markdown_path"], md_path.display().to_string());
    let md = std::fs::read_to_string(&md_path).unwrap();
    assert!(md.contains("| sql01a | patched | 3d 22h 40m |"));
    assert!(
        std::fs::read_to_string(server.dir.path().join("reports/2026-12.html"))
            .unwrap()
            .contains("<h1>")
    );
    assert_eq!(
        out["emailed_to"],
        json!(["chair@example.com", "ops@example.com"])
    );

    let [mail] = server.messages().try_into().unwrap();
    assert_eq!(
        mail["headers"]["subject"],
        "Patch report: monthly-windows 2026-12"
    );
    assert_eq!(
        mail["rcpt_tos"],
        json!(["chair@example.com", "ops@example.com"])
    );
    let attachments = mail["attachments"].as_array().unwrap();
    let names: Vec<&str> = attachments
        .iter()
        .map(|a| a["filename"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "patch-report-monthly-windows-2026-12.md",
            "patch-report-monthly-windows-2026-12.html",
            "patch-report-monthly-windows-2026-12.json"
        ]
    );
    assert_eq!(
        attachments[0]["content"]
            .as_str()
            .unwrap()
            .replace("\r\n", "\n"),
        md
    );
    assert!(mail["html"].as_str().unwrap().contains("<td>sql01a</td>"));
}

#[tokio::test]
async fn a_runbook_template_overrides_the_default() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("templates")).unwrap();
    std::fs::write(
        dir.path().join("templates/report.hbs"),
        "Custom {{runbook}} {{cycle}}:{{#each rows}} {{host}}={{status}}{{/each}}\n",
    )
    .unwrap();
    let ctx = ctx_with(Default::default(), dir.path());
    let report = builtin("report").unwrap();
    let inputs = json!({ "template": "templates/report.hbs", "format": "markdown", "output": "out/report.md", "report": report_json() });
    report.execute(inputs, &ctx).await.unwrap();
    let written = std::fs::read_to_string(dir.path().join("out/report.md")).unwrap();
    assert_eq!(
        written,
        "Custom monthly-windows 2026-12: sql01a=succeeded sql01a=patched sql01b=failed legacy01=excepted\n"
    );

    std::fs::write(dir.path().join("templates/bad.hbs"), "{{no_such_field}}").unwrap();
    let inputs =
        json!({ "template": "templates/bad.hbs", "format": "markdown", "report": report_json() });
    assert!(matches!(
        report.execute(inputs, &ctx).await.unwrap_err(),
        ConnectorError::Fatal(_)
    ));
    let err = report
        .execute(json!({ "format": "html" }), &ctx)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Fatal(m) if m.contains("`report`")),
        "{err:?}"
    );
    let line = report
        .dry_run(&json!({ "to": "committee", "output": "r.md" }), &ctx)
        .unwrap();
    assert_eq!(
        line,
        "would render the cycle report (Markdown and HTML), write it to r.md, email it to committee"
    );
}

/// The report template the example runbooks use (`runbooks/templates/report.hbs`) renders in
/// strict mode against a cycle report: a field it names that the report lacks would fail the
/// `summary-email` step of every monthly run.
#[tokio::test]
async fn the_example_runbooks_report_template_renders() {
    let runbooks = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks");
    let ctx = ctx_with(Default::default(), &runbooks);
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("report.md");
    let inputs = json!({ "template": "templates/report.hbs", "format": "markdown", "output": output, "report": report_json() });
    builtin("report")
        .unwrap()
        .execute(inputs, &ctx)
        .await
        .unwrap();
    let md = std::fs::read_to_string(&output).unwrap();
    assert!(
        md.contains("| sql01b | patch-node2 | failed | exit code 100 \\| dpkg lock | 1m 0s |"),
        "{md}"
    );
    assert!(
        md.contains("- cab-approval: approve by cab-chair@example.com at 2026-12-07 10:12 -05:00 from 10.1.2.3"),
        "{md}"
    );
}
