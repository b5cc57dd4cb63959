//! Every kind rendered with its built-in template; the variables each kind has; overrides.

use super::*;

fn t(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

fn run() -> RunFacts {
    RunFacts {
        cycle: "2026-12".into(),
        run_id: "monthly-20261208T150000-ab12".into(),
        run_url: "https://patchday.example.com/runs/monthly-20261208T150000-ab12".into(),
    }
}

fn ask(quorum: u32) -> Box<Ask> {
    Box::new(Ask {
        step: "cab-approval".into(),
        host: String::new(),
        description: "The CAB approves the cycle".into(),
        message: "Approve patch cycle 2026-12\n".into(),
        choices: vec!["approve".into(), "reject".into()],
        quorum,
        expires: t("2026-12-10T15:00:00Z"),
        hosts: vec!["sql01a".into(), "sql01b".into()],
        link: "https://patchday.example.com/links/TOKEN-alice".into(),
        recipient: "alice@example.com".into(),
    })
}

fn cycle(reason: &str) -> CycleFacts {
    CycleFacts {
        cycle: "2026-12".into(),
        due: t("2026-12-01T14:00:00Z"),
        reason: reason.into(),
    }
}

/// One notification of each kind.
fn samples() -> Vec<Notification> {
    let facts = vec![
        Facts::Approval(run(), ask(2)),
        Facts::Task(run(), ask(1)),
        Facts::Failure {
            run: run(),
            step: "patch-node1".into(),
            host: String::new(),
            reason: "2 of 4 hosts failed".into(),
        },
        Facts::Overdue {
            run: run(),
            step: "qa-testing".into(),
            deadline: t("2026-12-13T09:00:00Z"),
        },
        Facts::Finished {
            run: run(),
            state: "succeeded".into(),
        },
        Facts::Skipped(cycle("blacked out: year-end change freeze")),
        Facts::Missed(cycle("due and not fired within the catch-up window")),
        Facts::Rejected {
            file: "runbooks/monthly.yaml".into(),
            errors: vec!["runbooks/monthly.yaml:3:5: error: one".into(), "two".into()],
            content_hash: "abc123".into(),
            commit: "0d5d8d4".into(),
        },
        Facts::Undeliverable {
            run: run(),
            to: vec!["gone@example.com".into()],
            subject: "[patchday] Approve monthly-windows 2026-12: cab-approval".into(),
            error: "SMTP: permanent error (550): no such user".into(),
        },
        Facts::Interrupted {
            run: run(),
            step: "patch-node1".into(),
            host: "sql01a".into(),
            reason: "found running after a restart".into(),
        },
        Facts::Moot(
            run(),
            Box::new(Moot {
                step: "cab-approval".into(),
                host: String::new(),
                heading: "Approve patch cycle 2026-12".into(),
                why: "the quorum was reached: approve by bob@example.com".into(),
                recipient: "alice@example.com".into(),
            }),
        ),
    ];
    facts
        .into_iter()
        .map(|facts| Notification {
            runbook: "monthly-windows".into(),
            at: t("2026-12-08T15:00:00Z"),
            tz: chrono_tz::America::New_York,
            dashboard_url: "https://patchday.example.com/".into(),
            facts,
        })
        .collect()
}

#[test]
fn every_kind_has_exactly_its_documented_variables() {
    let samples = samples();
    assert_eq!(
        samples.iter().map(|n| n.facts.kind()).collect::<Vec<_>>(),
        NoticeKind::ALL
    );
    for n in &samples {
        let mut keys: Vec<String> = n.context().as_object().unwrap().keys().cloned().collect();
        let mut want: Vec<String> = variables(n.facts.kind())
            .iter()
            .map(|v| v.to_string())
            .collect();
        keys.sort();
        want.sort();
        assert_eq!(keys, want, "{:?}", n.facts.kind());
    }
}

/// A run without a cycle (a manual run) shows none: no empty "Cycle:" line, no gap in the
/// subject.
#[test]
fn a_run_without_a_cycle_shows_none_in_its_emails() {
    let templates = Templates::default();
    for mut n in samples() {
        let facts_run = match &mut n.facts {
            Facts::Approval(run, _) | Facts::Task(run, _) | Facts::Moot(run, _) => run,
            Facts::Interrupted { run, .. }
            | Facts::Failure { run, .. }
            | Facts::Overdue { run, .. }
            | Facts::Finished { run, .. }
            | Facts::Undeliverable { run, .. } => run,
            _ => continue,
        };
        facts_run.cycle = String::new();
        let email = templates.render(&n);
        assert!(!email.body.contains("Cycle:"), "{}", email.body);
        assert!(!email.subject.contains("  "), "{}", email.subject);
        assert!(!email.subject.contains(" :"), "{}", email.subject);
    }
}

#[test]
fn every_built_in_template_has_a_subject_and_names_only_its_variables() {
    for kind in NoticeKind::ALL {
        let template = Template::parse(default_text(kind));
        assert!(template.subject.is_some(), "{kind:?}");
        let known = variables(kind);
        for var in template.variables().unwrap() {
            assert!(
                known.contains(&var.segments[0].as_str()),
                "{kind:?}: {}",
                var.raw
            );
        }
    }
}

#[test]
fn every_email_says_what_when_which_runbook_and_links_to_a_page() {
    let templates = Templates::default();
    for n in samples() {
        let kind = n.facts.kind();
        let email = templates.render(&n);
        assert!(
            email.subject.starts_with("[patchday] "),
            "{kind:?}: {}",
            email.subject
        );
        assert!(email.subject.contains("monthly-windows"), "{kind:?}");
        let body = &email.body;
        assert!(
            body.contains("Runbook: monthly-windows") || body.contains("runbook monthly-windows"),
            "{kind:?}:\n{body}"
        );
        assert!(
            body.contains("When: Tue 2026-12-08 10:00 EST"),
            "{kind:?}:\n{body}"
        );
        let page = match kind {
            NoticeKind::Skipped | NoticeKind::Missed | NoticeKind::Rejected => {
                "https://patchday.example.com/\n"
            }
            _ => "Run page: https://patchday.example.com/runs/monthly-20261208T150000-ab12\n",
        };
        assert!(body.ends_with(page), "{kind:?}:\n{body}");
        if kind != NoticeKind::Rejected {
            assert!(body.contains("Cycle: 2026-12"), "{kind:?}:\n{body}");
        }
        assert!(
            !body.contains("\n\n\n"),
            "{kind:?}: blank lines pile up:\n{body}"
        );
    }
}

fn rendered(kind: NoticeKind) -> Rendered {
    let n = samples()
        .into_iter()
        .find(|n| n.facts.kind() == kind)
        .unwrap();
    Templates::default().render(&n)
}

#[test]
fn the_approval_email_carries_the_recipients_link_and_what_is_asked() {
    let email = rendered(NoticeKind::Approval);
    assert_eq!(
        email.subject,
        "[patchday] Approve monthly-windows 2026-12: cab-approval"
    );
    assert_eq!(
        email.body,
        "Your approval is requested: step cab-approval.

Approve patch cycle 2026-12

Runbook: monthly-windows
Cycle: 2026-12
Run: monthly-20261208T150000-ab12
Step: cab-approval
About: The CAB approves the cycle
Hosts: sql01a, sql01b
Approvals needed: 2
Choices: approve, reject
When: Tue 2026-12-08 10:00 EST
Decide by: Thu 2026-12-10 10:00 EST

Open this link to decide (it shows what is being decided; only a button on that page decides):
https://patchday.example.com/links/TOKEN-alice

The link is for alice@example.com only, works once, and expires Thu 2026-12-10 10:00 EST.

Run page: https://patchday.example.com/runs/monthly-20261208T150000-ab12
"
    );
    let task = rendered(NoticeKind::Task);
    assert_eq!(
        task.subject,
        "[patchday] Task monthly-windows 2026-12: cab-approval"
    );
    assert!(!task.body.contains("Approvals needed"), "{}", task.body);
    assert_eq!(task.body.matches("/links/").count(), 1);
}

#[test]
fn the_run_notifications_keep_their_subjects() {
    assert_eq!(
        rendered(NoticeKind::Failure).subject,
        "[patchday] monthly-windows 2026-12: step patch-node1 failed"
    );
    assert_eq!(
        rendered(NoticeKind::Overdue).subject,
        "[patchday] monthly-windows 2026-12: step qa-testing is overdue"
    );
    assert_eq!(
        rendered(NoticeKind::Finished).subject,
        "[patchday] monthly-windows 2026-12: run succeeded"
    );
    assert_eq!(
        rendered(NoticeKind::Failure).body,
        "step patch-node1 failed

Runbook: monthly-windows
Cycle: 2026-12
Run: monthly-20261208T150000-ab12
Step: patch-node1
When: Tue 2026-12-08 10:00 EST
Reason: 2 of 4 hosts failed

Run page: https://patchday.example.com/runs/monthly-20261208T150000-ab12
"
    );
    assert!(
        rendered(NoticeKind::Overdue)
            .body
            .contains("Its deadline was Sun 2026-12-13 04:00 EST."),
    );
}

#[test]
fn the_cycle_and_rejection_notifications_keep_their_subjects() {
    assert_eq!(
        rendered(NoticeKind::Skipped).subject,
        "[patchday] monthly-windows 2026-12: cycle skipped"
    );
    let missed = rendered(NoticeKind::Missed);
    assert_eq!(
        missed.subject,
        "[patchday] monthly-windows 2026-12: cycle missed"
    );
    assert!(
        missed.body.contains("Due: Tue 2026-12-01 09:00 EST\n"),
        "{}",
        missed.body
    );
    let rejected = rendered(NoticeKind::Rejected);
    assert_eq!(
        rejected.subject,
        "[patchday] monthly-windows: change rejected (runbooks/monthly.yaml)"
    );
    assert!(
        rejected.body.contains(
            "When: Tue 2026-12-08 10:00 EST\n\nrunbooks/monthly.yaml:3:5: error: one\n\ntwo\n\n\
             The last good version keeps running (content hash abc123, commit 0d5d8d4)."
        ),
        "{}",
        rejected.body
    );
}

#[test]
fn a_subject_line_is_optional_and_the_body_follows_the_blank_line() {
    assert_eq!(
        Template::parse("subject: Hi {{runbook}}\r\n\r\nBody\n"),
        Template {
            subject: Some("Hi {{runbook}}".into()),
            body: "Body\n".into()
        }
    );
    assert_eq!(
        Template::parse("Only a body\n"),
        Template {
            subject: None,
            body: "Only a body\n".into()
        }
    );
}

#[test]
fn an_override_replaces_the_body_and_keeps_the_built_in_subject_unless_it_sets_one() {
    let finished = samples().remove(4);
    let mut templates = Templates::default();
    templates.set(
        NoticeKind::Finished,
        Template::parse("{{runbook}} is {{state}}.\n"),
    );
    let email = templates.render(&finished);
    assert_eq!(
        email.subject,
        "[patchday] monthly-windows 2026-12: run succeeded"
    );
    assert_eq!(email.body, "monthly-windows is succeeded.\n");
    // A failing override falls back to the built-in template.
    templates.set(NoticeKind::Finished, Template::parse("{{nope}}\n"));
    let email = templates.render(&finished);
    assert!(
        email.body.starts_with("run succeeded\n\nRunbook:"),
        "{}",
        email.body
    );
}

#[test]
fn a_subject_never_spans_lines() {
    let mut failure = samples().remove(2);
    if let Facts::Failure { reason, .. } = &mut failure.facts {
        *reason = "exit 1\nBcc: everyone@example.com".into();
    }
    let mut templates = Templates::default();
    templates.set(
        NoticeKind::Failure,
        Template::parse("Subject: {{reason}}\n\n{{what}}\n"),
    );
    let email = templates.render(&failure);
    assert_eq!(email.subject, "exit 1 Bcc: everyone@example.com");
    assert_eq!(email.body, "step patch-node1 failed\n");
}

#[test]
fn the_monthly_runbook_s_cycle_finished_template_renders_both_outcomes() {
    let text = include_str!("../../../runbooks/templates/cycle-finished.hbs");
    let mut templates = Templates::default();
    templates.set(NoticeKind::Finished, Template::parse(text));
    let mut finished = samples().remove(4);
    let email = templates.render(&finished);
    assert_eq!(
        email.subject,
        "[patchday] Patch cycle 2026-12 succeeded (monthly-windows)"
    );
    assert!(email.body.contains("ended: succeeded.\n"), "{}", email.body);
    assert!(
        email.body.contains("\nEvery step is done."),
        "{}",
        email.body
    );
    finished.facts = Facts::Finished {
        run: run(),
        state: "failed".into(),
    };
    let email = templates.render(&finished);
    assert!(
        email.body.contains("Not every step went through."),
        "{}",
        email.body
    );
    assert!(
        !email.body.contains("Every step is done."),
        "{}",
        email.body
    );
    assert!(
        email.body.contains("\nhttps://patchday.example.com/runs/"),
        "{}",
        email.body
    );
}

#[test]
fn each_key_under_notify_templates_is_the_kind_it_names() {
    let keys: Vec<&str> = NoticeKind::ALL.iter().map(|k| k.key()).collect();
    let lines: String = keys.iter().map(|k| format!("    {k}: {k}\n")).collect();
    let yaml = format!("name: t\nnotify:\n  templates:\n{lines}steps:\n  a: {{ uses: noop }}\n");
    let loaded = crate::runbook::load_runbook("t.yaml", &yaml);
    let runbook = loaded
        .runbook
        .unwrap_or_else(|| panic!("{:#?}", loaded.diagnostics));
    let files: Vec<(NoticeKind, String)> = runbook
        .notify
        .unwrap()
        .templates
        .files()
        .map(|(kind, file)| (kind, file.value.clone()))
        .collect();
    let want: Vec<(NoticeKind, String)> = NoticeKind::ALL
        .iter()
        .map(|k| (*k, k.key().to_string()))
        .collect();
    assert_eq!(files, want);
}

/// The README's variable table lists exactly what each kind's context holds.
#[test]
fn the_readme_documents_every_kind_s_variables() {
    let readme = include_str!("../../../README.md");
    let section = readme.split("\n## Notifications\n").nth(1).unwrap();
    let section = section.split("\n## ").next().unwrap();
    let table = section
        .split("| variable | kinds | value |")
        .nth(1)
        .unwrap();
    let names = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    let mut documented: BTreeMap<NoticeKind, Vec<String>> = BTreeMap::new();
    for row in table.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split('|').collect();
        let kinds = names(cells[2]);
        for kind in NoticeKind::ALL {
            if cells[2].trim() == "all" || kinds.iter().any(|k| k == kind.key()) {
                documented.entry(kind).or_default().extend(names(cells[1]));
            }
        }
    }
    for kind in NoticeKind::ALL {
        let mut got = documented.remove(&kind).unwrap_or_default();
        let mut want: Vec<String> = variables(kind).iter().map(|v| v.to_string()).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "README, variables of `{}`", kind.key());
    }
}
