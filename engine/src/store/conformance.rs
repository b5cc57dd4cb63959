//! The store conformance suite: what every backend must do, written once as generic async
//! functions over any [`Store`]. A backend runs all of it with
//! `conformance_suite!(path::to::factory)` in its test module, where the factory is an
//! `async fn() -> (S, Guard)` giving a fresh, empty store (the guard keeps e.g. a temporary
//! folder alive). Each case becomes one `#[tokio::test]`. [`persists_across_reopen`] takes an
//! open and a close function and is called by hand.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;

use super::{
    AuditCursor, AuditQuery, Change, ClaimScope, EmailAttempt, EventFilter, FeedStamp, Fence,
    HOT_QUERIES, LEADER, NewDecision, NewEmail, NewEvent, NewSession, OutboxFigures, RunRow,
    RunState, STEP_DURATION_BUCKETS_MS, SessionWrite, StepRow, StepState, StepWrite, Store,
    StoreError,
};
use crate::audit;

/// Generates one `#[tokio::test]` per conformance case for a backend.
macro_rules! conformance_suite {
    ($factory:path) => {
        $crate::store::conformance::conformance_suite!(@cases $factory;
            create_and_read_run_and_steps,
            unique_runbook_and_cycle,
            commit_applies_everything_atomically,
            conflict_in_a_batch_writes_nothing,
            insert_of_an_existing_row_conflicts,
            missing_run_writes_nothing,
            chain_is_contiguous_and_verifies,
            concurrent_commits_serialize,
            events_filter_by_run_and_since,
            a_run_s_events_come_in_pages,
            a_run_s_step_events_leave_out_each_host_s,
            runs_and_unfinished_runs_order,
            due_emails_and_email_attempted,
            timestamps_round_trip_exactly,
            json_round_trips,
            steps_keep_insertion_order,
            a_decision_commits_with_its_event,
            a_second_decision_by_one_recipient_writes_nothing,
            a_reused_nonce_conflicts,
            two_holders_race_for_the_leader_lease_and_one_wins,
            an_expired_lease_is_taken_over_with_a_higher_epoch,
            a_fenced_commit_is_refused_and_changes_nothing,
            runs_are_claimed_by_one_daemon_at_a_time,
            a_cancellation_is_requested_from_the_holder,
            two_claimers_of_outbox_rows_get_disjoint_sets,
            dead_letters_and_the_backlog_after_an_outage,
            a_rerun_shares_its_cycle_and_unfinished_versions_are_listed,
            sessions_open_once_per_link_and_close_with_their_events,
            aggregates_read_what_is_active_and_hot_queries_use_their_indexes,
            a_feed_event_s_sequence_moves_only_when_the_event_does,
            the_audit_browser_filters_and_pages_by_seq_newest_first,
            a_keyed_email_is_queued_once_with_its_attachments,
            step_figures_follow_every_step_write,
            the_run_page_reads_own_rows_one_page_of_hosts_and_counts,
            stored_merkle_nodes_are_the_tree_of_the_events,
            keyset_pages_walk_runs_rows_and_events_once_in_order,
        );
        $crate::store::conformance::conformance_suite!(@threaded $factory;
            concurrent_commits_of_one_decision_record_it_once,
        );
    };
    (@threaded $factory:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let (store, _guard) = $factory().await;
                $crate::store::conformance::$case(&store).await;
            }
        )*
    };
    (@cases $factory:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let (store, _guard) = $factory().await;
                $crate::store::conformance::$case(&store).await;
            }
        )*
    };
}
pub(crate) use conformance_suite;

// --- builders ---------------------------------------------------------------------------------

pub(crate) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 8, 14, 0, 0).unwrap()
}

pub(crate) fn run_row(
    id: &str,
    runbook: &str,
    cycle: Option<&str>,
    started: DateTime<Utc>,
) -> RunRow {
    RunRow {
        id: id.into(),
        runbook: runbook.into(),
        cycle: cycle.map(Into::into),
        content_hash: "c0ffee".into(),
        commit: Some("abc123".into()),
        snapshot: json!({"runbook": "name: x\n", "params": {"kb_list": "KB1"}}),
        state: RunState::Running,
        started_at: started,
        finished_at: None,
        rerun: None,
    }
}

pub(crate) fn step_row(run_id: &str, step: &str, host: &str, state: StepState) -> StepRow {
    StepRow {
        run_id: run_id.into(),
        step: step.into(),
        host: host.into(),
        state,
        attempt: 0,
        not_before: None,
        started_at: None,
        finished_at: None,
        outputs: json!({}),
        reason: None,
    }
}

pub(crate) fn event(
    action: &str,
    run_id: Option<&str>,
    step: Option<&str>,
    at: DateTime<Utc>,
) -> NewEvent {
    NewEvent {
        at,
        actor: "scheduler".into(),
        action: action.into(),
        run_id: run_id.map(Into::into),
        step_id: step.map(Into::into),
        details: json!({"n": 1, "why": "test"}),
    }
}

pub(crate) fn email(run_id: Option<&str>, subject: &str, at: DateTime<Utc>) -> NewEmail {
    NewEmail {
        run_id: run_id.map(Into::into),
        to: vec!["cab-chair@example.com".into(), "ops@example.com".into()],
        subject: subject.into(),
        body: "Please approve.".into(),
        html: Some("<p>Please approve.</p>".into()),
        created_at: at,
        attachments: Vec::new(),
        key: None,
    }
}

/// Creates run `id` with steps `a` and `b` (pending).
async fn create_simple<S: Store>(store: &S, id: &str, cycle: Option<&str>) {
    store
        .create_run(
            run_row(id, "monthly", cycle, t0()),
            vec![
                step_row(id, "a", "", StepState::Pending),
                step_row(id, "b", "", StepState::Pending),
            ],
            event("run.started", Some(id), None, t0()),
        )
        .await
        .unwrap();
}

fn transition(
    run_id: &str,
    step: &str,
    from: StepState,
    to: StepState,
    at: DateTime<Utc>,
) -> Change {
    let mut row = step_row(run_id, step, "", to);
    row.attempt = 1;
    row.started_at = Some(at);
    Change {
        steps: vec![StepWrite {
            expect: Some(from),
            row,
        }],
        run: None,
        events: vec![event(
            &format!("step.{to:?}").to_lowercase(),
            Some(run_id),
            Some(step),
            at,
        )],
        emails: vec![],
        decisions: vec![],
        fence: None,
        sessions: vec![],
    }
}

async fn verify_all<S: Store>(store: &S) -> usize {
    let events = store.events(EventFilter::default()).await.unwrap();
    let head = store.chain_head().await.unwrap();
    audit::verify(&events, head.as_ref()).unwrap()
}

// --- cases ------------------------------------------------------------------------------------

pub(crate) async fn create_and_read_run_and_steps<S: Store>(store: &S) {
    assert_eq!(store.run("r1").await.unwrap(), None);
    assert!(store.chain_head().await.unwrap().is_none());
    let run = run_row("r1", "monthly", Some("2026-12"), t0());
    let steps = vec![
        step_row("r1", "notify", "", StepState::Pending),
        step_row("r1", "patch", "", StepState::Pending),
    ];
    store
        .create_run(
            run.clone(),
            steps.clone(),
            event("run.started", Some("r1"), None, t0()),
        )
        .await
        .unwrap();
    assert_eq!(store.run("r1").await.unwrap(), Some(run.clone()));
    assert_eq!(store.steps("r1").await.unwrap(), steps);
    assert_eq!(store.steps("nope").await.unwrap(), vec![]);
    let events = store.events(EventFilter::default()).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].seq, 1);
    assert_eq!(events[0].action, "run.started");
    assert_eq!(events[0].prev_hash, audit::GENESIS_HASH);
    let head = store.chain_head().await.unwrap().unwrap();
    assert_eq!((head.seq, head.hash.as_str()), (1, events[0].hash.as_str()));
    assert_eq!(store.runs(10).await.unwrap(), vec![run]);
}

pub(crate) async fn unique_runbook_and_cycle<S: Store>(store: &S) {
    create_simple(store, "r1", Some("2026-12")).await;
    let err = store
        .create_run(
            run_row("r2", "monthly", Some("2026-12"), t0()),
            vec![step_row("r2", "a", "", StepState::Pending)],
            event("run.started", Some("r2"), None, t0()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::DuplicateCycle { runbook, cycle } if runbook == "monthly" && cycle == "2026-12"),
        "{err:?}"
    );
    // Nothing of the refused run was written.
    assert_eq!(store.run("r2").await.unwrap(), None);
    assert_eq!(store.steps("r2").await.unwrap(), vec![]);
    assert_eq!(verify_all(store).await, 1);
    // Another cycle, another runbook, and manual runs (no cycle) are fine.
    create_simple(store, "r3", Some("2027-01")).await;
    store
        .create_run(
            run_row("r4", "emergency", Some("2026-12"), t0()),
            vec![],
            event("run.started", Some("r4"), None, t0()),
        )
        .await
        .unwrap();
    create_simple(store, "m1", None).await;
    create_simple(store, "m2", None).await;
    assert_eq!(store.runs(100).await.unwrap().len(), 5);
    assert_eq!(verify_all(store).await, 5);
}

pub(crate) async fn commit_applies_everything_atomically<S: Store>(store: &S) {
    create_simple(store, "r1", None).await;
    let t1 = t0() + Duration::minutes(5);
    let mut done = step_row("r1", "a", "", StepState::Succeeded);
    done.attempt = 1;
    done.started_at = Some(t0());
    done.finished_at = Some(t1);
    done.outputs = json!({"status": 200, "body": "ok"});
    let change = Change {
        steps: vec![
            StepWrite {
                expect: Some(StepState::Pending),
                row: done.clone(),
            },
            StepWrite {
                expect: None,
                row: step_row("r1", "b", "host1", StepState::Pending),
            },
        ],
        run: Some(("r1".into(), RunState::Succeeded, t1)),
        events: vec![
            event("step.succeeded", Some("r1"), Some("a"), t1),
            event("run.succeeded", Some("r1"), None, t1),
        ],
        emails: vec![email(Some("r1"), "Run succeeded", t1)],
        decisions: vec![],
        fence: None,
        sessions: vec![],
    };
    store.commit(vec![change]).await.unwrap();
    let steps = store.steps("r1").await.unwrap();
    assert_eq!(steps.len(), 3);
    assert_eq!(steps[0], done);
    assert_eq!(steps[2], step_row("r1", "b", "host1", StepState::Pending));
    let run = store.run("r1").await.unwrap().unwrap();
    assert_eq!(
        (run.state, run.finished_at),
        (RunState::Succeeded, Some(t1))
    );
    let events = store.events(EventFilter::default()).await.unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["run.started", "step.succeeded", "run.succeeded"]);
    let emails = store.due_emails(t1, 10).await.unwrap();
    assert_eq!(emails.len(), 1);
    assert_eq!(emails[0].email, email(Some("r1"), "Run succeeded", t1));
    assert_eq!(
        (
            emails[0].attempts,
            emails[0].next_attempt_at,
            emails[0].sent_at
        ),
        (0, t1, None)
    );
    assert_eq!(verify_all(store).await, 3);
    // An empty batch is fine and writes nothing.
    store.commit(vec![]).await.unwrap();
    store.commit(vec![Change::default()]).await.unwrap();
    assert_eq!(verify_all(store).await, 3);
}

pub(crate) async fn conflict_in_a_batch_writes_nothing<S: Store>(store: &S) {
    create_simple(store, "r1", None).await;
    let t1 = t0() + Duration::minutes(1);
    let good = Change {
        emails: vec![email(Some("r1"), "a started", t1)],
        ..transition("r1", "a", StepState::Pending, StepState::Running, t1)
    };
    // `b` is pending, not running: the second change of the batch conflicts.
    let bad = Change {
        run: Some(("r1".into(), RunState::Failed, t1)),
        emails: vec![email(Some("r1"), "b failed", t1)],
        ..transition("r1", "b", StepState::Running, StepState::Failed, t1)
    };
    let before_steps = store.steps("r1").await.unwrap();
    let before_head = store.chain_head().await.unwrap();
    let err = store.commit(vec![good.clone(), bad]).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { run_id, step, host, expected: Some(StepState::Running) }
            if run_id == "r1" && step == "b" && host.is_empty()),
        "{err:?}"
    );
    assert_eq!(store.steps("r1").await.unwrap(), before_steps);
    assert_eq!(store.chain_head().await.unwrap(), before_head);
    assert_eq!(store.events(EventFilter::default()).await.unwrap().len(), 1);
    assert_eq!(
        store.due_emails(t1 + Duration::days(1), 10).await.unwrap(),
        vec![]
    );
    assert_eq!(
        store.run("r1").await.unwrap().unwrap().state,
        RunState::Running
    );
    // The store is still usable and the chain continues without a gap.
    store.commit(vec![good]).await.unwrap();
    assert_eq!(
        store.steps("r1").await.unwrap()[0].state,
        StepState::Running
    );
    assert_eq!(store.due_emails(t1, 10).await.unwrap().len(), 1);
    assert_eq!(verify_all(store).await, 2);
    // The same transition again conflicts: `a` is no longer pending.
    let err = store
        .commit(vec![transition(
            "r1",
            "a",
            StepState::Pending,
            StepState::Running,
            t1,
        )])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    // A missing row conflicts too.
    let err = store
        .commit(vec![transition(
            "r1",
            "zzz",
            StepState::Pending,
            StepState::Running,
            t1,
        )])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    assert_eq!(verify_all(store).await, 2);
}

pub(crate) async fn insert_of_an_existing_row_conflicts<S: Store>(store: &S) {
    create_simple(store, "r1", None).await;
    let t1 = t0() + Duration::minutes(1);
    let insert = |host: &str| Change {
        steps: vec![StepWrite {
            expect: None,
            row: step_row("r1", "a", host, StepState::Pending),
        }],
        events: vec![event("step.fanned_out", Some("r1"), Some("a"), t1)],
        ..Change::default()
    };
    store
        .commit(vec![insert("h1"), insert("h2")])
        .await
        .unwrap();
    let err = store
        .commit(vec![insert("h3"), insert("h1")])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { step, host, expected: None, .. } if step == "a" && host == "h1"),
        "{err:?}"
    );
    // The step itself (host "") exists from create_run.
    let err = store.commit(vec![insert("")]).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { expected: None, .. }),
        "{err:?}"
    );
    let hosts: Vec<String> = store
        .steps("r1")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.host)
        .collect();
    assert_eq!(hosts, ["", "", "h1", "h2"]);
    assert_eq!(verify_all(store).await, 3);
    // Two rows with one key in one batch: the second conflicts, and neither is written.
    let err = store
        .commit(vec![insert("h9"), insert("h9")])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    assert_eq!(store.steps("r1").await.unwrap().len(), 4);
}

pub(crate) async fn missing_run_writes_nothing<S: Store>(store: &S) {
    create_simple(store, "r1", None).await;
    let t1 = t0() + Duration::minutes(1);
    let err = store
        .commit(vec![Change {
            run: Some(("ghost".into(), RunState::Cancelled, t1)),
            events: vec![event("run.cancelled", Some("ghost"), None, t1)],
            ..Change::default()
        }])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::NoSuchRun(id) if id == "ghost"),
        "{err:?}"
    );
    let err = store
        .commit(vec![
            transition("r1", "a", StepState::Pending, StepState::Running, t1),
            Change {
                steps: vec![StepWrite {
                    expect: None,
                    row: step_row("ghost", "a", "h1", StepState::Pending),
                }],
                ..Change::default()
            },
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::NoSuchRun(id) if id == "ghost"),
        "{err:?}"
    );
    assert_eq!(
        store.steps("r1").await.unwrap()[0].state,
        StepState::Pending
    );
    assert_eq!(verify_all(store).await, 1);
}

pub(crate) async fn chain_is_contiguous_and_verifies<S: Store>(store: &S) {
    create_simple(store, "r1", None).await;
    let hosts = 50;
    let mut at = t0();
    // Fan out, then move every host through running to succeeded, in batches of varying size.
    store
        .commit(
            (0..hosts)
                .map(|h| Change {
                    steps: vec![StepWrite {
                        expect: None,
                        row: step_row("r1", "a", &format!("h{h:02}"), StepState::Pending),
                    }],
                    events: vec![event("step.pending", Some("r1"), Some("a"), at)],
                    ..Change::default()
                })
                .collect(),
        )
        .await
        .unwrap();
    for (from, to) in [
        (StepState::Pending, StepState::Running),
        (StepState::Running, StepState::Succeeded),
    ] {
        for chunk in (0..hosts).collect::<Vec<_>>().chunks(7) {
            at += Duration::seconds(1);
            let batch = chunk
                .iter()
                .map(|h| {
                    let host = format!("h{h:02}");
                    let mut row = step_row("r1", "a", &host, to);
                    row.attempt = 1;
                    Change {
                        steps: vec![StepWrite {
                            expect: Some(from),
                            row,
                        }],
                        events: vec![NewEvent {
                            details: json!({"host": host, "attempt": 1}),
                            ..event(
                                &format!("step.{to:?}").to_lowercase(),
                                Some("r1"),
                                Some("a"),
                                at,
                            )
                        }],
                        ..Change::default()
                    }
                })
                .collect();
            store.commit(batch).await.unwrap();
        }
    }
    let total = 1 + 3 * hosts as usize;
    assert_eq!(verify_all(store).await, total);
    let mut paged = Vec::new();
    while let Some(last) = paged.last().map_or(Some(0), |e: &super::EventRow| {
        (paged.len() < total).then_some(e.seq)
    }) {
        let page = store.events_after(last, 17).await.unwrap();
        assert!(!page.is_empty() && page.len() <= 17);
        paged.extend(page);
    }
    assert_eq!(paged, store.events(EventFilter::default()).await.unwrap());
    assert!(
        store
            .events_after(total as i64, 17)
            .await
            .unwrap()
            .is_empty()
    );
    let hashes = store.event_hashes(40, 5).await.unwrap();
    let expected: Vec<(i64, String)> = paged[40..45]
        .iter()
        .map(|e| (e.seq, e.hash.clone()))
        .collect();
    assert_eq!(hashes, expected);
    let events = store.events(EventFilter::default()).await.unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=total as i64).collect::<Vec<_>>());
    for pair in events.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
    assert!(
        store
            .steps("r1")
            .await
            .unwrap()
            .iter()
            .filter(|s| !s.host.is_empty())
            .all(|s| s.state == StepState::Succeeded)
    );
}

pub(crate) async fn concurrent_commits_serialize<S: Store>(store: &S) {
    // Writers racing from many tasks: every commit lands once, the chain has no gap or fork.
    create_simple(store, "r1", None).await;
    let changes: Vec<Change> = (0..40)
        .map(|i| Change {
            steps: vec![StepWrite {
                expect: None,
                row: step_row("r1", "a", &format!("h{i}"), StepState::Pending),
            }],
            events: vec![event("step.pending", Some("r1"), Some("a"), t0())],
            ..Change::default()
        })
        .collect();
    let mut futures: Vec<BoxFuture<'_, Result<(), StoreError>>> = Vec::new();
    for change in changes {
        futures.push(Box::pin(store.commit(vec![change])));
    }
    let results = join_all(futures).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(verify_all(store).await, 41);
    assert_eq!(store.steps("r1").await.unwrap().len(), 42);
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Polls all futures concurrently on the current task (no extra dependency).
async fn join_all<T>(mut futures: Vec<BoxFuture<'_, T>>) -> Vec<T> {
    let mut slots: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        for (fut, slot) in futures.iter_mut().zip(slots.iter_mut()) {
            if slot.is_none()
                && let Poll::Ready(value) = fut.as_mut().poll(cx)
            {
                *slot = Some(value);
            }
        }
        if slots.iter().all(Option::is_some) {
            Poll::Ready(slots.iter_mut().map(|s| s.take().unwrap()).collect())
        } else {
            Poll::Pending
        }
    })
    .await
}

pub(crate) async fn events_filter_by_run_and_since<S: Store>(store: &S) {
    create_simple(store, "r1", None).await;
    create_simple(store, "r2", None).await;
    let t = |m: i64| t0() + Duration::minutes(m);
    store
        .commit(vec![
            Change {
                events: vec![event("step.running", Some("r1"), Some("a"), t(1))],
                ..Change::default()
            },
            Change {
                events: vec![event("step.running", Some("r2"), Some("a"), t(2))],
                ..Change::default()
            },
            Change {
                events: vec![event("link.rejected", None, None, t(3))],
                ..Change::default()
            },
            Change {
                events: vec![event("step.succeeded", Some("r1"), Some("a"), t(4))],
                ..Change::default()
            },
        ])
        .await
        .unwrap();
    let seqs = |events: Vec<super::EventRow>| events.into_iter().map(|e| e.seq).collect::<Vec<_>>();
    let all = store.events(EventFilter::default()).await.unwrap();
    assert_eq!(seqs(all), [1, 2, 3, 4, 5, 6]);
    let r1 = store
        .events(EventFilter {
            run_id: Some("r1".into()),
            since: None,
        })
        .await
        .unwrap();
    assert_eq!(seqs(r1), [1, 3, 6]);
    let since = store
        .events(EventFilter {
            run_id: None,
            since: Some(t(2)),
        })
        .await
        .unwrap();
    assert_eq!(seqs(since), [4, 5, 6], "since is inclusive");
    let both = store
        .events(EventFilter {
            run_id: Some("r1".into()),
            since: Some(t(2)),
        })
        .await
        .unwrap();
    assert_eq!(seqs(both), [6]);
    let none = store
        .events(EventFilter {
            run_id: Some("zzz".into()),
            since: None,
        })
        .await
        .unwrap();
    assert!(none.is_empty());
}

pub(crate) async fn a_run_s_events_come_in_pages<S: Store>(store: &S) {
    create_simple(store, "r1", None).await;
    create_simple(store, "r2", None).await;
    let t = |m: i64| t0() + Duration::minutes(m);
    let changes = (1..=5)
        .map(|m| Change {
            events: vec![event("step.running", Some("r1"), Some("a"), t(m))],
            ..Change::default()
        })
        .collect();
    store.commit(changes).await.unwrap();
    let seqs = |page: &super::EventPage| page.events.iter().map(|e| e.seq).collect::<Vec<_>>();
    // r1: its run.started (seq 1), then seqs 3..=7 (r2 started at seq 2).
    let page = |p: &super::EventPage| (seqs(p), p.total, p.offset);
    let first = store.run_events_page("r1", Some(1), 4).await.unwrap();
    assert_eq!(page(&first), (vec![1, 3, 4, 5], 6, 0));
    let second = store.run_events_page("r1", Some(2), 4).await.unwrap();
    assert_eq!(page(&second), (vec![6, 7], 6, 4));
    // The last page when none is asked for, and for a page past the end.
    let last = store.run_events_page("r1", None, 4).await.unwrap();
    assert_eq!(page(&last), (vec![6, 7], 6, 4));
    let past = store.run_events_page("r1", Some(40), 4).await.unwrap();
    assert_eq!(page(&past), (vec![6, 7], 6, 4));
    let other = store.run_events_page("r2", None, 10).await.unwrap();
    assert_eq!(page(&other), (vec![2], 1, 0));
    let none = store.run_events_page("r9", None, 10).await.unwrap();
    assert_eq!(page(&none), (vec![], 0, 0));
}

pub(crate) async fn a_run_s_step_events_leave_out_each_host_s<S: Store>(store: &S) {
    create_simple(store, "r1", None).await;
    let mut host = event("step.running", Some("r1"), Some("a"), t0());
    host.details = json!({ "host": "web1", "attempt": 1 });
    let mut whole = event("step.running", Some("r1"), Some("a"), t0());
    whole.details = json!({ "hosts": ["web1"], "note": "\"host\": in text" });
    let change = Change {
        events: vec![host, whole],
        ..Change::default()
    };
    store.commit(vec![change]).await.unwrap();
    let events = store.run_step_events("r1").await.unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        [1, 3],
        "run.started and the step-level event, not the host's"
    );
    assert!(store.run_step_events("nope").await.unwrap().is_empty());
}

pub(crate) async fn runs_and_unfinished_runs_order<S: Store>(store: &S) {
    for (i, id) in ["r1", "r2", "r3", "r4"].into_iter().enumerate() {
        store
            .create_run(
                run_row(id, "monthly", None, t0() + Duration::hours(i as i64)),
                vec![],
                event("run.started", Some(id), None, t0()),
            )
            .await
            .unwrap();
    }
    let t1 = t0() + Duration::days(1);
    store
        .commit(vec![
            Change {
                run: Some(("r2".into(), RunState::Failed, t1)),
                ..Change::default()
            },
            Change {
                run: Some(("r3".into(), RunState::Cancelled, t1)),
                ..Change::default()
            },
        ])
        .await
        .unwrap();
    let ids = |runs: Vec<RunRow>| runs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(store.unfinished_runs().await.unwrap()), ["r1", "r4"]);
    assert_eq!(ids(store.runs(10).await.unwrap()), ["r4", "r3", "r2", "r1"]);
    assert_eq!(ids(store.runs(2).await.unwrap()), ["r4", "r3"]);
    let r3 = store.run("r3").await.unwrap().unwrap();
    assert_eq!((r3.state, r3.finished_at), (RunState::Cancelled, Some(t1)));
}

pub(crate) async fn due_emails_and_email_attempted<S: Store>(store: &S) {
    create_simple(store, "r1", None).await;
    let t = |m: i64| t0() + Duration::minutes(m);
    store
        .commit(vec![Change {
            emails: vec![
                email(Some("r1"), "first", t(1)),
                email(None, "second", t(2)),
                email(None, "third", t(3)),
            ],
            ..Change::default()
        }])
        .await
        .unwrap();
    let subjects = |rows: &[super::EmailRow]| {
        rows.iter()
            .map(|r| r.email.subject.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(store.due_emails(t(0), 10).await.unwrap(), vec![]);
    assert_eq!(
        subjects(&store.due_emails(t(2), 10).await.unwrap()),
        ["first", "second"]
    );
    let due = store.due_emails(t(3), 2).await.unwrap();
    assert_eq!(subjects(&due), ["first", "second"]);
    // Both are handed to the server (marked, and the mark read back); recording the attempt
    // clears the mark.
    assert_eq!(due[1].delivering_since, None);
    for row in &due {
        store.email_delivering(row.id, t(4)).await.unwrap();
    }
    let marked = store.due_emails(t(3), 2).await.unwrap();
    assert!(marked.iter().all(|r| r.delivering_since == Some(t(4))));
    // The first is sent; the second failed and is retried at t(10).
    store
        .email_attempted(
            due[0].id,
            sent(t(4), event("email.sent", Some("r1"), None, t(4))),
        )
        .await
        .unwrap();
    store
        .email_attempted(
            due[1].id,
            failed(t(10), Some(event("email.failed", None, None, t(4)))),
        )
        .await
        .unwrap();
    assert_eq!(
        subjects(&store.due_emails(t(5), 10).await.unwrap()),
        ["third"]
    );
    let later = store.due_emails(t(10), 10).await.unwrap();
    assert_eq!(subjects(&later), ["third", "second"]);
    assert_eq!(
        (
            later[1].attempts,
            later[1].next_attempt_at,
            later[1].sent_at,
            later[1].delivering_since
        ),
        (1, t(10), None, None)
    );
    // An unknown id is an error and writes no event.
    let err = store
        .email_attempted(9999, sent(t(5), event("email.sent", None, None, t(5))))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Database(_)), "{err:?}");
    let actions: Vec<String> = store
        .events(EventFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["run.started", "email.sent", "email.failed"]);
    assert_eq!(verify_all(store).await, 3);
}

fn sent(at: DateTime<Utc>, event: NewEvent) -> EmailAttempt {
    EmailAttempt::Sent { at, event }
}

fn failed(next: DateTime<Utc>, event: Option<NewEvent>) -> EmailAttempt {
    EmailAttempt::Failed {
        next,
        error: "421 try later".into(),
        event,
    }
}

/// Months of operation: a failure that changes nothing writes no event; a dead letter is never
/// due again, is counted, and queues its notice (marked) in the same commit; a success brings
/// the rows waiting for a retry forward (not the dead ones, not the untried ones).
pub(crate) async fn dead_letters_and_the_backlog_after_an_outage<S: Store>(store: &S) {
    let t = |m: i64| t0() + Duration::minutes(m);
    let emails = ["refused", "waiting", "later", "fresh"]
        .iter()
        .map(|s| email(None, s, t(1)))
        .collect();
    store
        .commit(vec![Change {
            emails,
            ..Change::default()
        }])
        .await
        .unwrap();
    let due = store.due_emails(t(2), 10).await.unwrap();
    let id = |subject: &str| due.iter().find(|r| r.email.subject == subject).unwrap().id;
    // "waiting" fails once (an event), then again (none); "later" fails once.
    let first = Some(event("email.failed", None, None, t(2)));
    store
        .email_attempted(id("waiting"), failed(t(100), first))
        .await
        .unwrap();
    store
        .email_attempted(id("waiting"), failed(t(200), None))
        .await
        .unwrap();
    store
        .email_attempted(
            id("later"),
            failed(t(300), Some(event("email.failed", None, None, t(2)))),
        )
        .await
        .unwrap();
    // "refused" is refused for good: given up, its notice queued.
    let notice = email(Some("r1"), "notice", t(3));
    let dead = EmailAttempt::Dead {
        at: t(3),
        error: "550 no such user".into(),
        event: event("email.dead_lettered", None, None, t(3)),
        notice: Some(notice),
    };
    store.email_attempted(id("refused"), dead).await.unwrap();
    let figures = store.outbox_figures(t(4)).await.unwrap();
    assert_eq!(
        figures,
        OutboxFigures {
            depth: 4,
            due: 2,
            dead: 1
        },
        "waiting, later, fresh and the notice wait; fresh and the notice are due"
    );
    let due: Vec<_> = store.due_emails(t(1000), 10).await.unwrap();
    assert!(
        due.iter().all(|r| r.email.subject != "refused"),
        "a dead letter is never due"
    );
    let notice = due.iter().find(|r| r.email.subject == "notice").unwrap();
    assert_eq!(notice.notice_of, Some(id("refused")));
    let waiting = due.iter().find(|r| r.email.subject == "waiting").unwrap();
    assert_eq!(
        (waiting.attempts, waiting.last_error.as_deref()),
        (2, Some("421 try later"))
    );
    // "fresh" goes out at t(5): "waiting" and "later" come due at t(5) too.
    store
        .email_attempted(
            id("fresh"),
            sent(t(5), event("email.sent", None, None, t(5))),
        )
        .await
        .unwrap();
    let mut now_due: Vec<String> = store
        .due_emails(t(5), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.email.subject)
        .collect();
    now_due.sort();
    assert_eq!(now_due, ["later", "notice", "waiting"]);
    let actions: Vec<String> = store
        .events(EventFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        [
            "email.failed",
            "email.failed",
            "email.dead_lettered",
            "email.sent"
        ]
    );
    let refused = store
        .events_by_action(&["email.dead_lettered"])
        .await
        .unwrap();
    assert_eq!(refused.len(), 1);
    assert_eq!(verify_all(store).await, 4);
}

/// A run may re-run a cycle that has a run when it says why; without a reason the cycle is
/// still unique. Unfinished runs' versions are listed.
pub(crate) async fn a_rerun_shares_its_cycle_and_unfinished_versions_are_listed<S: Store>(
    store: &S,
) {
    let t = |m: i64| t0() + Duration::minutes(m);
    let first = run_row("first", "monthly", Some("2026-12"), t0());
    store
        .create_run(
            first,
            vec![],
            event("run.started", Some("first"), None, t0()),
        )
        .await
        .unwrap();
    let mut again = run_row("again", "monthly", Some("2026-12"), t(1));
    let dup = store
        .create_run(
            again.clone(),
            vec![],
            event("run.started", Some("again"), None, t(1)),
        )
        .await
        .unwrap_err();
    assert!(matches!(dup, StoreError::DuplicateCycle { .. }), "{dup:?}");
    again.rerun = Some("the first run's hosts were not reachable".into());
    store
        .create_run(
            again,
            vec![],
            event("run.started", Some("again"), None, t(1)),
        )
        .await
        .unwrap();
    let read = store.run("again").await.unwrap().unwrap();
    assert_eq!(
        read.rerun.as_deref(),
        Some("the first run's hosts were not reachable")
    );
    assert_eq!(store.run("first").await.unwrap().unwrap().rerun, None);
    let third = run_row("third", "monthly", Some("2026-12"), t(2));
    let dup = store
        .create_run(
            third,
            vec![],
            event("run.started", Some("third"), None, t(2)),
        )
        .await
        .unwrap_err();
    assert!(matches!(dup, StoreError::DuplicateCycle { .. }), "{dup:?}");
    let change = Change {
        run: Some(("first".into(), RunState::Succeeded, t(3))),
        ..Change::default()
    };
    store.commit(vec![change]).await.unwrap();
    let mut unfinished = store.unfinished_versions().await.unwrap();
    unfinished.sort();
    assert_eq!(unfinished, [("again".to_string(), "c0ffee".to_string())]);
}

pub(crate) async fn timestamps_round_trip_exactly<S: Store>(store: &S) {
    // Microsecond precision, including values whose text would sort wrongly without padding.
    let instants = [
        Utc.with_ymd_and_hms(2026, 3, 8, 7, 0, 0).unwrap() + Duration::microseconds(1),
        Utc.with_ymd_and_hms(1999, 12, 31, 23, 59, 59).unwrap() + Duration::microseconds(999_999),
        Utc.with_ymd_and_hms(2026, 12, 8, 14, 0, 0).unwrap() + Duration::microseconds(120_000),
    ];
    for (i, at) in instants.into_iter().enumerate() {
        let id = format!("r{i}");
        let mut run = run_row(&id, "monthly", None, at);
        run.finished_at = Some(at + Duration::microseconds(7));
        run.state = RunState::Succeeded;
        let mut step = step_row(&id, "a", "", StepState::Waiting);
        step.not_before = Some(at + Duration::microseconds(3));
        step.started_at = Some(at);
        step.finished_at = Some(at + Duration::seconds(1));
        store
            .create_run(
                run.clone(),
                vec![step.clone()],
                event("run.started", Some(&id), None, at),
            )
            .await
            .unwrap();
        store
            .commit(vec![Change {
                emails: vec![email(Some(&id), "x", at)],
                ..Change::default()
            }])
            .await
            .unwrap();
        assert_eq!(store.run(&id).await.unwrap().unwrap(), run);
        assert_eq!(store.steps(&id).await.unwrap(), vec![step]);
        let ev = store
            .events(EventFilter {
                run_id: Some(id.clone()),
                since: None,
            })
            .await
            .unwrap();
        assert_eq!(ev[0].at, at);
        let due = store.due_emails(at, 100).await.unwrap();
        assert!(
            due.iter()
                .any(|e| e.email.created_at == at && e.next_attempt_at == at)
        );
    }
    // `since` compares instants, not text.
    let since = store
        .events(EventFilter {
            run_id: None,
            since: Some(instants[0]),
        })
        .await
        .unwrap();
    assert_eq!(
        since.iter().map(|e| e.at).collect::<Vec<_>>(),
        [instants[0], instants[2]]
    );
    assert_eq!(verify_all(store).await, 3);
}

pub(crate) async fn json_round_trips<S: Store>(store: &S) {
    // Key order, unicode, escapes, big and awkward numbers survive, and the chain still verifies.
    let details = json!({
        "zeta": 1, "alpha": [0.1, 0.30000000000000004, 1e-300, 2.2250738585072014e-308, -0.0],
        "text": "naïve \"quoted\"\n\t\u{1F600} \\ /", "max": u64::MAX, "min": i64::MIN,
        "nested": {"b": {"d": null, "c": true}, "a": []},
    });
    let mut run = run_row("r1", "monthly", None, t0());
    run.snapshot = details.clone();
    let mut step = step_row("r1", "a", "", StepState::Pending);
    step.outputs = details.clone();
    step.reason = Some("exit 1: \"disk full\"\n".into());
    store
        .create_run(
            run.clone(),
            vec![step.clone()],
            NewEvent {
                details: details.clone(),
                ..event("run.started", Some("r1"), None, t0())
            },
        )
        .await
        .unwrap();
    let got = store.run("r1").await.unwrap().unwrap();
    assert_eq!(got, run);
    assert_eq!(
        got.snapshot.as_object().unwrap().keys().collect::<Vec<_>>(),
        details.as_object().unwrap().keys().collect::<Vec<_>>(),
        "key order is kept"
    );
    assert_eq!(store.steps("r1").await.unwrap(), vec![step]);
    let events = store.events(EventFilter::default()).await.unwrap();
    assert_eq!(events[0].details, details);
    assert_eq!(
        audit::canonical_json(&events[0].details),
        audit::canonical_json(&details)
    );
    assert_eq!(verify_all(store).await, 1);
}

pub(crate) async fn steps_keep_insertion_order<S: Store>(store: &S) {
    // Names that sort differently from insertion order.
    let names = ["zulu", "alpha", "mike", "bravo"];
    store
        .create_run(
            run_row("r1", "monthly", None, t0()),
            names
                .iter()
                .map(|n| step_row("r1", n, "", StepState::Pending))
                .collect(),
            event("run.started", Some("r1"), None, t0()),
        )
        .await
        .unwrap();
    let hosts = ["web9", "db1", "app3"];
    store
        .commit(
            hosts
                .iter()
                .map(|h| Change {
                    steps: vec![StepWrite {
                        expect: None,
                        row: step_row("r1", "mike", h, StepState::Pending),
                    }],
                    ..Change::default()
                })
                .collect(),
        )
        .await
        .unwrap();
    // Updating a row does not move it.
    store
        .commit(vec![transition(
            "r1",
            "alpha",
            StepState::Pending,
            StepState::Running,
            t0(),
        )])
        .await
        .unwrap();
    let got: Vec<(String, String)> = store
        .steps("r1")
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.step, s.host))
        .collect();
    let mut want: Vec<(String, String)> = names
        .iter()
        .map(|n| (n.to_string(), String::new()))
        .collect();
    want.extend(hosts.iter().map(|h| ("mike".to_string(), h.to_string())));
    assert_eq!(got, want);
}

// --- decisions --------------------------------------------------------------------------------

pub(crate) fn decision(
    run_id: &str,
    step: &str,
    recipient: &str,
    choice: &str,
    nonce: Option<&str>,
) -> NewDecision {
    NewDecision {
        run_id: run_id.into(),
        step: step.into(),
        host: String::new(),
        recipient: recipient.into(),
        choice: choice.into(),
        comment: Some("looks \"fine\"\nto me".into()),
        at: t0() + Duration::microseconds(123_457),
        actor: format!("link:{recipient}"),
        source_ip: Some("192.0.2.7".into()),
        nonce: nonce.map(Into::into),
    }
}

/// Creates run `id` whose step `cab` awaits input (and `after` is pending).
async fn create_awaiting<S: Store>(store: &S, id: &str) {
    let mut cab = step_row(id, "cab", "", StepState::AwaitingInput);
    cab.attempt = 1;
    cab.started_at = Some(t0());
    store
        .create_run(
            run_row(id, "monthly", None, t0()),
            vec![cab, step_row(id, "after", "", StepState::Pending)],
            event("run.started", Some(id), None, t0()),
        )
        .await
        .unwrap();
}

/// A decision with its audit event; `settle` also moves `cab` from awaiting input to it.
fn decided(d: NewDecision, settle: Option<StepState>) -> Change {
    let mut change = Change {
        events: vec![NewEvent {
            actor: d.actor.clone(),
            details: json!({"recipient": d.recipient, "choice": d.choice}),
            ..event("approval.decided", Some(&d.run_id), Some(&d.step), d.at)
        }],
        ..Change::default()
    };
    if let Some(state) = settle {
        let mut row = step_row(&d.run_id, &d.step, &d.host, state);
        row.attempt = 1;
        row.started_at = Some(t0());
        row.finished_at = Some(d.at);
        row.outputs = json!({"choice": d.choice, "decided_by": [d.recipient]});
        change.steps.push(StepWrite {
            expect: Some(StepState::AwaitingInput),
            row,
        });
    }
    change.decisions.push(d);
    change
}

pub(crate) async fn a_decision_commits_with_its_event<S: Store>(store: &S) {
    create_awaiting(store, "r1").await;
    assert_eq!(store.decisions("r1", "cab", "").await.unwrap(), vec![]);
    let first = decision("r1", "cab", "alice@example.com", "approve", Some("n-1"));
    store
        .commit(vec![decided(first.clone(), None)])
        .await
        .unwrap();
    let second = NewDecision {
        comment: None,
        source_ip: None,
        nonce: None,
        actor: "cli:bob".into(),
        ..decision("r1", "cab", "bob@example.com", "approve", None)
    };
    store
        .commit(vec![decided(second.clone(), Some(StepState::Succeeded))])
        .await
        .unwrap();
    let rows = store.decisions("r1", "cab", "").await.unwrap();
    assert_eq!(
        rows.iter().map(|r| r.decision.clone()).collect::<Vec<_>>(),
        [first, second],
        "every field round-trips, in insertion order"
    );
    assert!(rows[0].seq < rows[1].seq);
    assert_eq!(store.decisions("r1", "after", "").await.unwrap(), vec![]);
    assert_eq!(store.decisions("r1", "cab", "h1").await.unwrap(), vec![]);
    assert_eq!(store.decisions("r2", "cab", "").await.unwrap(), vec![]);
    let steps = store.steps("r1").await.unwrap();
    assert_eq!(steps[0].state, StepState::Succeeded);
    let events = store.events(EventFilter::default()).await.unwrap();
    let actors: Vec<&str> = events.iter().map(|e| e.actor.as_str()).collect();
    assert_eq!(actors, ["scheduler", "link:alice@example.com", "cli:bob"]);
    assert_eq!(verify_all(store).await, 3);
}

pub(crate) async fn a_second_decision_by_one_recipient_writes_nothing<S: Store>(store: &S) {
    create_awaiting(store, "r1").await;
    let alice =
        |choice: &str, nonce: &str| decision("r1", "cab", "alice@example.com", choice, Some(nonce));
    store
        .commit(vec![decided(alice("approve", "n-1"), None)])
        .await
        .unwrap();
    let before_steps = store.steps("r1").await.unwrap();
    let before_head = store.chain_head().await.unwrap();
    // Alone, and second in a batch whose first change is fine: nothing of either is written.
    let bob = decision("r1", "cab", "bob@example.com", "approve", Some("n-2"));
    for batch in [
        vec![decided(alice("reject", "n-3"), Some(StepState::Failed))],
        vec![
            decided(bob.clone(), None),
            decided(alice("reject", "n-3"), Some(StepState::Failed)),
        ],
    ] {
        let err = store.commit(batch).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::AlreadyDecided { run_id, step, host, recipient }
                if run_id == "r1" && step == "cab" && host.is_empty() && recipient == "alice@example.com"),
            "{err:?}"
        );
        assert_eq!(store.steps("r1").await.unwrap(), before_steps);
        assert_eq!(store.chain_head().await.unwrap(), before_head);
        let rows = store.decisions("r1", "cab", "").await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].decision.choice, "approve");
    }
    // The same recipient on another step row is a different decision.
    let mut other_host = alice("approve", "n-4");
    other_host.host = "h1".into();
    store.commit(vec![decided(other_host, None)]).await.unwrap();
    store.commit(vec![decided(bob, None)]).await.unwrap();
    assert_eq!(store.decisions("r1", "cab", "").await.unwrap().len(), 2);
    assert_eq!(store.decisions("r1", "cab", "h1").await.unwrap().len(), 1);
    assert_eq!(verify_all(store).await, 4);
}

pub(crate) async fn a_reused_nonce_conflicts<S: Store>(store: &S) {
    create_awaiting(store, "r1").await;
    create_awaiting(store, "r2").await;
    store
        .commit(vec![decided(
            decision("r1", "cab", "alice@example.com", "approve", Some("n-1")),
            None,
        )])
        .await
        .unwrap();
    // Another recipient, another step, another run: the nonce is spent everywhere.
    for reuse in [
        decision("r1", "cab", "bob@example.com", "approve", Some("n-1")),
        decision("r1", "after", "alice@example.com", "approve", Some("n-1")),
        decision("r2", "cab", "alice@example.com", "approve", Some("n-1")),
        // The very same link again: named as a used link.
        decision("r1", "cab", "alice@example.com", "approve", Some("n-1")),
    ] {
        let err = store
            .commit(vec![decided(reuse, Some(StepState::Succeeded))])
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::LinkUsed { nonce } if nonce == "n-1"),
            "{err:?}"
        );
    }
    assert_eq!(
        store.steps("r2").await.unwrap()[0].state,
        StepState::AwaitingInput
    );
    assert_eq!(store.decisions("r2", "cab", "").await.unwrap(), vec![]);
    // Decisions without a nonce (CLI, API) never collide with each other on it.
    for who in ["carol@example.com", "dave@example.com"] {
        store
            .commit(vec![decided(
                decision("r2", "cab", who, "approve", None),
                None,
            )])
            .await
            .unwrap();
    }
    assert_eq!(store.decisions("r2", "cab", "").await.unwrap().len(), 2);
    // A decision on a missing run writes nothing.
    let err = store
        .commit(vec![decided(
            decision("ghost", "cab", "alice@example.com", "approve", Some("n-9")),
            None,
        )])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::NoSuchRun(id) if id == "ghost"),
        "{err:?}"
    );
    assert_eq!(verify_all(store).await, 5);
}

pub(crate) async fn concurrent_commits_of_one_decision_record_it_once<S: Store + Clone>(store: &S) {
    concurrent_decisions(std::slice::from_ref(store)).await;
}

/// 50 tasks, spread over `stores` (one, or several sharing one database), commit the same
/// decision (one link, one nonce) with its event and the step's transition: exactly one
/// commits; the 49 others are refused and write nothing.
pub(crate) async fn concurrent_decisions<S: Store + Clone>(stores: &[S]) {
    let store = &stores[0];
    create_awaiting(store, "r1").await;
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = stores[i % stores.len()].clone();
            let d = decision("r1", "cab", "alice@example.com", "approve", Some("n-1"));
            tokio::spawn(async move {
                store
                    .commit(vec![decided(d, Some(StepState::Succeeded))])
                    .await
            })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => ok += 1,
            Err(StoreError::LinkUsed { .. }) => {}
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(store.decisions("r1", "cab", "").await.unwrap().len(), 1);
    assert_eq!(
        store.steps("r1").await.unwrap()[0].state,
        StepState::Succeeded
    );
    let decided_events = store
        .events(EventFilter::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "approval.decided")
        .count();
    assert_eq!(decided_events, 1);
    assert_eq!(verify_all(store).await, 2);
}

/// Everything committed survives closing and reopening the store (file-backed backends).
fn stamp(uid: &str, start: DateTime<Utc>, status: &str) -> FeedStamp {
    FeedStamp {
        uid: uid.into(),
        start,
        status: status.into(),
    }
}

/// A UID's SEQUENCE starts at 0, stays while its start and status do, and goes up by one
/// each time either changes, whichever other UIDs are published beside it.
pub(crate) async fn a_feed_event_s_sequence_moves_only_when_the_event_does<S: Store>(store: &S) {
    let t1 = t0() + Duration::days(7);
    let first = vec![stamp("a", t0(), "CONFIRMED"), stamp("b", t1, "CONFIRMED")];
    assert_eq!(store.feed_sequences(first.clone()).await.unwrap(), [0, 0]);
    assert_eq!(store.feed_sequences(first).await.unwrap(), [0, 0]);
    // `a` moves by a microsecond (exact instants), then is cancelled; `b` stays.
    let moved = t0() + Duration::microseconds(1);
    let sequences = |a: FeedStamp| {
        let published = vec![a, stamp("b", t1, "CONFIRMED")];
        store.feed_sequences(published)
    };
    assert_eq!(
        sequences(stamp("a", moved, "CONFIRMED")).await.unwrap(),
        [1, 0]
    );
    assert_eq!(
        sequences(stamp("a", moved, "CANCELLED")).await.unwrap(),
        [2, 0]
    );
    assert_eq!(
        sequences(stamp("a", moved, "CANCELLED")).await.unwrap(),
        [2, 0]
    );
    // Back where it was first: still a change, so still a new sequence.
    assert_eq!(
        sequences(stamp("a", t0(), "CONFIRMED")).await.unwrap(),
        [3, 0]
    );
    // Only `b` published (a one-runbook feed): `a` keeps its number for the next time.
    let only_b = vec![stamp("b", t1, "CONFIRMED"), stamp("c", t1, "CONFIRMED")];
    assert_eq!(store.feed_sequences(only_b).await.unwrap(), [0, 0]);
    assert_eq!(
        sequences(stamp("a", t0(), "CONFIRMED")).await.unwrap(),
        [3, 0]
    );
    assert!(store.feed_sequences(vec![]).await.unwrap().is_empty());
}

pub(crate) async fn persists_across_reopen<S, Open, OpenFut, Close, CloseFut>(
    open: Open,
    close: Close,
) where
    S: Store,
    Open: Fn() -> OpenFut,
    OpenFut: Future<Output = S>,
    Close: Fn(S) -> CloseFut,
    CloseFut: Future<Output = ()>,
{
    let store = open().await;
    create_simple(&store, "r1", Some("2026-12")).await;
    let t1 = t0() + Duration::minutes(1);
    store
        .commit(vec![Change {
            emails: vec![email(Some("r1"), "hello", t1)],
            ..transition("r1", "a", StepState::Pending, StepState::Running, t1)
        }])
        .await
        .unwrap();
    let run = store.run("r1").await.unwrap();
    let steps = store.steps("r1").await.unwrap();
    let events = store.events(EventFilter::default()).await.unwrap();
    let emails = store.due_emails(t1, 10).await.unwrap();
    let moved = vec![stamp("a", t1, "CONFIRMED")];
    store
        .feed_sequences(vec![stamp("a", t0(), "CONFIRMED")])
        .await
        .unwrap();
    assert_eq!(store.feed_sequences(moved.clone()).await.unwrap(), [1]);
    close(store).await;

    let store = open().await;
    assert_eq!(store.run("r1").await.unwrap(), run);
    assert_eq!(store.steps("r1").await.unwrap(), steps);
    assert_eq!(store.events(EventFilter::default()).await.unwrap(), events);
    assert_eq!(store.due_emails(t1, 10).await.unwrap(), emails);
    assert_eq!(verify_all(&store).await, 2);
    // The feed's last published start survives: the same event again is not bumped.
    assert_eq!(store.feed_sequences(moved).await.unwrap(), [1]);
    // The unique cycle still holds, and the chain continues where it stopped.
    let err = store
        .create_run(
            run_row("r2", "monthly", Some("2026-12"), t0()),
            vec![],
            event("run.started", None, None, t0()),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::DuplicateCycle { .. }), "{err:?}");
    store
        .commit(vec![transition(
            "r1",
            "a",
            StepState::Running,
            StepState::Succeeded,
            t1,
        )])
        .await
        .unwrap();
    close(store).await;

    let store = open().await;
    assert_eq!(verify_all(&store).await, 3);
    assert_eq!(store.unfinished_runs().await.unwrap().len(), 1);
    close(store).await;
}

/// The throughput workload both backends' `commit_throughput_figures` tests run: a fan-out of
/// 2,000 hosts moved pending → running → succeeded in batches of 100 changes, then a chain of
/// 300 single-change commits; `floor` times as many bare one-row commits. Prints the figures
/// (run with `--release --nocapture` for real numbers) and checks the chain afterwards.
pub(crate) async fn commit_throughput<S: Store, F: std::future::Future<Output = ()>>(
    name: &str,
    store: &S,
    floor: impl FnOnce(usize) -> F,
) {
    use std::time::Instant;

    store
        .create_run(
            run_row("r1", "bench", None, t0()),
            vec![],
            event("run.started", Some("r1"), None, t0()),
        )
        .await
        .unwrap();
    let (hosts, batch) = (2_000, 100);
    let started = Instant::now();
    let mut transitions = 0;
    for (from, to) in [
        (None, StepState::Pending),
        (Some(StepState::Pending), StepState::Running),
        (Some(StepState::Running), StepState::Succeeded),
    ] {
        for chunk in (0..hosts).collect::<Vec<_>>().chunks(batch) {
            let changes = chunk
                .iter()
                .map(|h| Change {
                    steps: vec![StepWrite {
                        expect: from,
                        row: step_row("r1", "fan", &format!("host{h:05}"), to),
                    }],
                    events: vec![event("step.transition", Some("r1"), Some("fan"), t0())],
                    ..Change::default()
                })
                .collect();
            store.commit(changes).await.unwrap();
            transitions += chunk.len();
        }
    }
    let fan = started.elapsed();
    let chain = 300;
    let started = Instant::now();
    for i in 0..chain {
        let change = Change {
            steps: vec![StepWrite {
                expect: None,
                row: step_row("r1", &format!("s{i}"), "", StepState::Succeeded),
            }],
            events: vec![event("step.succeeded", Some("r1"), Some("s"), t0())],
            ..Change::default()
        };
        store.commit(vec![change]).await.unwrap();
    }
    let single = started.elapsed();
    let started = Instant::now();
    floor(chain).await;
    let floor = started.elapsed();
    println!(
        "{name} store bench: fan-out {transitions} transitions in batches of {batch}: {:.0} transitions/s \
         ({:.1} µs each); {chain} single-change commits: {:.2} ms each; bare one-row commit \
         floor: {:.2} ms each",
        transitions as f64 / fan.as_secs_f64(),
        fan.as_secs_f64() * 1e6 / transitions as f64,
        single.as_secs_f64() * 1e3 / chain as f64,
        floor.as_secs_f64() * 1e3 / chain as f64,
    );
    let events = store.events(EventFilter::default()).await.unwrap();
    assert_eq!(events.len(), 1 + transitions + chain);
    assert_eq!(
        crate::audit::verify(&events, store.chain_head().await.unwrap().as_ref()),
        Ok(events.len())
    );
}

// --- several daemons on one database ---------------------------------------------------------

const TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// `t0()` plus `s` seconds.
fn at(s: i64) -> DateTime<Utc> {
    t0() + Duration::seconds(s)
}

pub(crate) async fn two_holders_race_for_the_leader_lease_and_one_wins<S: Store>(store: &S) {
    for round in 0..5 {
        let name = format!("{LEADER}-{round}");
        let futures: Vec<BoxFuture<'_, Result<Option<u64>, StoreError>>> = (0..6)
            .map(|i| {
                let holder = if i % 2 == 0 { "daemon-a" } else { "daemon-b" };
                let name = name.clone();
                Box::pin(async move { store.try_acquire_lease(&name, holder, TTL, t0()).await })
                    as BoxFuture<'_, _>
            })
            .collect();
        let results: Vec<Option<u64>> = join_all(futures)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        // One holder won: its calls all answer epoch 1; the other's all answer None.
        let a: Vec<_> = results.iter().step_by(2).collect();
        let b: Vec<_> = results.iter().skip(1).step_by(2).collect();
        let a_won = a.iter().all(|r| **r == Some(1)) && b.iter().all(|r| r.is_none());
        let b_won = b.iter().all(|r| **r == Some(1)) && a.iter().all(|r| r.is_none());
        assert!(a_won != b_won, "{results:?}");
        let (winner, loser) = if a_won {
            ("daemon-a", "daemon-b")
        } else {
            ("daemon-b", "daemon-a")
        };
        // The winner renews; the loser can neither renew nor take it while it lasts.
        assert_eq!(
            store.renew_lease(&name, winner, TTL, at(10)).await.unwrap(),
            Some(1)
        );
        assert_eq!(
            store.renew_lease(&name, loser, TTL, at(10)).await.unwrap(),
            None
        );
        assert_eq!(
            store
                .try_acquire_lease(&name, loser, TTL, at(35))
                .await
                .unwrap(),
            None,
            "renewed at +10s for 30s: still held at +35s"
        );
        // Acquiring again while holding keeps the epoch.
        assert_eq!(
            store
                .try_acquire_lease(&name, winner, TTL, at(20))
                .await
                .unwrap(),
            Some(1)
        );
    }
}

pub(crate) async fn an_expired_lease_is_taken_over_with_a_higher_epoch<S: Store>(store: &S) {
    assert_eq!(
        store
            .try_acquire_lease(LEADER, "a", TTL, t0())
            .await
            .unwrap(),
        Some(1)
    );
    assert_eq!(
        store
            .try_acquire_lease(LEADER, "b", TTL, at(29))
            .await
            .unwrap(),
        None
    );
    // a stopped renewing: at +30s its lease is over and b takes it with epoch 2.
    assert_eq!(
        store
            .try_acquire_lease(LEADER, "b", TTL, at(30))
            .await
            .unwrap(),
        Some(2)
    );
    assert_eq!(
        store.renew_lease(LEADER, "a", TTL, at(31)).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .try_acquire_lease(LEADER, "a", TTL, at(31))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.renew_lease(LEADER, "b", TTL, at(40)).await.unwrap(),
        Some(2)
    );
    // A lease renewed after it expired is lost: its holder must acquire it again, afresh.
    assert_eq!(
        store.renew_lease(LEADER, "b", TTL, at(71)).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .try_acquire_lease(LEADER, "b", TTL, at(71))
            .await
            .unwrap(),
        Some(3)
    );
    // Released: another holder takes it at once, with a higher epoch; epochs never go back.
    store.release_lease(LEADER, "a").await.unwrap(); // not a's: nothing happens
    assert_eq!(
        store
            .try_acquire_lease(LEADER, "a", TTL, at(72))
            .await
            .unwrap(),
        None
    );
    store.release_lease(LEADER, "b").await.unwrap();
    assert_eq!(
        store
            .try_acquire_lease(LEADER, "a", TTL, at(72))
            .await
            .unwrap(),
        Some(4)
    );
    // Leases are independent of each other.
    assert_eq!(
        store
            .try_acquire_lease("other", "b", TTL, at(72))
            .await
            .unwrap(),
        Some(1)
    );
}

pub(crate) async fn a_fenced_commit_is_refused_and_changes_nothing<S: Store>(store: &S) {
    create_simple(store, "r1", None).await;
    let first = store
        .claim_run("r1", "a", TTL, t0())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.epoch, 1);
    // a's claim expires; b takes the run over with epoch 2.
    let second = store
        .claim_run("r1", "b", TTL, at(31))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.epoch, 2);
    let fenced = |epoch: u64| Change {
        emails: vec![email(Some("r1"), "stale", at(32))],
        fence: Some(Fence::Run {
            run_id: "r1".into(),
            epoch,
        }),
        ..transition("r1", "a", StepState::Pending, StepState::Running, at(32))
    };
    let before = (
        store.steps("r1").await.unwrap(),
        store.events(EventFilter::default()).await.unwrap(),
        store.due_emails(at(100), 10).await.unwrap(),
    );
    // a's write, alone or in a batch with an unfenced change, is refused whole.
    for batch in [
        vec![fenced(1)],
        vec![
            Change {
                events: vec![event("link.rejected", None, None, at(32))],
                ..Change::default()
            },
            fenced(1),
        ],
    ] {
        let err = store.commit(batch).await.unwrap_err();
        assert!(
            matches!(
                &err,
                StoreError::Fenced { what, epoch: 1, current: 2 } if what == "run r1"
            ),
            "{err:?}"
        );
        let after = (
            store.steps("r1").await.unwrap(),
            store.events(EventFilter::default()).await.unwrap(),
            store.due_emails(at(100), 10).await.unwrap(),
        );
        assert_eq!(after, before);
    }
    // a cannot renew or release b's claim either.
    assert_eq!(
        store.renew_run("r1", "a", 1, TTL, at(33)).await.unwrap(),
        None
    );
    assert_eq!(store.release_run("r1", "a", 1).await.unwrap(), None);
    // b's write lands.
    store.commit(vec![fenced(2)]).await.unwrap();
    assert_eq!(
        store.steps("r1").await.unwrap()[0].state,
        StepState::Running
    );
    // A fence on a missing run names the run.
    let err = store
        .commit(vec![Change {
            fence: Some(Fence::Run {
                run_id: "ghost".into(),
                epoch: 1,
            }),
            ..Change::default()
        }])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::NoSuchRun(id) if id == "ghost"),
        "{err:?}"
    );

    // The scheduler's writes are fenced by the leader lease.
    assert_eq!(
        store
            .try_acquire_lease(LEADER, "a", TTL, t0())
            .await
            .unwrap(),
        Some(1)
    );
    assert_eq!(
        store
            .try_acquire_lease(LEADER, "b", TTL, at(31))
            .await
            .unwrap(),
        Some(2)
    );
    let cycle_event = |epoch: u64| Change {
        events: vec![event("cycle.missed", None, None, at(40))],
        fence: Some(Fence::Lease {
            name: LEADER.into(),
            epoch,
        }),
        ..Change::default()
    };
    let err = store.commit(vec![cycle_event(1)]).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Fenced { what, epoch: 1, current: 2 } if what == "lease leader"),
        "{err:?}"
    );
    let err = store
        .commit(vec![Change {
            fence: Some(Fence::Lease {
                name: "never-taken".into(),
                epoch: 1,
            }),
            ..Change::default()
        }])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Fenced { current: 0, .. }),
        "{err:?}"
    );
    store.commit(vec![cycle_event(2)]).await.unwrap();
    let missed = store
        .events(EventFilter::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "cycle.missed")
        .count();
    assert_eq!(missed, 1);
    verify_all(store).await;
}

pub(crate) async fn runs_are_claimed_by_one_daemon_at_a_time<S: Store>(store: &S) {
    for i in 0..10 {
        create_simple(store, &format!("r{i}"), None).await;
    }
    // r9 finished: never claimed.
    store
        .commit(vec![Change {
            run: Some(("r9".into(), RunState::Succeeded, t0())),
            ..Change::default()
        }])
        .await
        .unwrap();
    // Two daemons claim concurrently: disjoint sets that cover every unfinished run.
    let (a, b) = {
        let mut both = join_all(vec![
            Box::pin(store.claim_runs("a", TTL, t0(), ClaimScope::Unheld, 6)) as BoxFuture<'_, _>,
            Box::pin(store.claim_runs("b", TTL, t0(), ClaimScope::Unheld, 6)),
        ])
        .await
        .into_iter()
        .map(Result::unwrap);
        (both.next().unwrap(), both.next().unwrap())
    };
    let ids = |claims: &[super::RunClaim]| {
        let mut ids: Vec<String> = claims.iter().map(|c| c.run_id.clone()).collect();
        ids.sort();
        ids
    };
    let mut all = [ids(&a), ids(&b)].concat();
    all.sort();
    assert_eq!(all, (0..9).map(|i| format!("r{i}")).collect::<Vec<_>>());
    assert!(a.len() <= 6 && b.len() <= 6, "{a:?} {b:?}");
    assert!(a.iter().chain(&b).all(|c| c.epoch == 1));
    // Nothing is left to claim while the claims last, one by one or in a batch.
    assert!(
        store
            .claim_runs("c", TTL, t0(), ClaimScope::Unheld, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.claim_run("r0", "c", TTL, at(1)).await.unwrap(), None);
    assert_eq!(
        store.claim_run("r9", "c", TTL, at(100)).await.unwrap(),
        None
    );
    assert_eq!(
        store.claim_run("ghost", "c", TTL, at(100)).await.unwrap(),
        None
    );

    // a renews its claims at +20s; b does not. At +40s b's runs are abandoned, a's are not.
    for claim in &a {
        let renewed = store
            .renew_run(&claim.run_id, "a", claim.epoch, TTL, at(20))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(renewed.epoch, claim.epoch);
    }
    let taken = store
        .claim_runs("c", TTL, at(40), ClaimScope::Abandoned, 100)
        .await
        .unwrap();
    assert_eq!(ids(&taken), ids(&b));
    assert!(taken.iter().all(|c| c.epoch == 2), "{taken:?}");
    for claim in &b {
        assert_eq!(
            store
                .renew_run(&claim.run_id, "b", claim.epoch, TTL, at(41))
                .await
                .unwrap(),
            None,
            "b lost {}",
            claim.run_id
        );
    }

    // a releases one run (it waits for a person): not abandoned, but unheld.
    let released = &a[0];
    assert_eq!(
        store
            .release_run(&released.run_id, "a", released.epoch)
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .claim_runs("c", TTL, at(45), ClaimScope::Abandoned, 100)
            .await
            .unwrap()
            .is_empty()
    );
    let again = store
        .claim_runs("c", TTL, at(45), ClaimScope::Unheld, 100)
        .await
        .unwrap();
    assert_eq!(ids(&again), vec![released.run_id.clone()]);
    assert_eq!(again[0].epoch, released.epoch + 1);

    // The holder may claim its own run again (a new epoch); a stopping daemon abandons its
    // claims, which the next claimer takes at once.
    let own = store
        .claim_run(&released.run_id, "c", TTL, at(46))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(own.epoch, released.epoch + 2);
    let held_by_c = taken.len() as u64 + 1;
    assert_eq!(store.abandon_runs("c", at(47)).await.unwrap(), held_by_c);
    let next = store
        .claim_runs("d", TTL, at(47), ClaimScope::Abandoned, 100)
        .await
        .unwrap();
    assert_eq!(next.len() as u64, held_by_c);
}

pub(crate) async fn a_cancellation_is_requested_from_the_holder<S: Store>(store: &S) {
    create_simple(store, "r1", None).await;
    let claim = store
        .claim_run("r1", "a", TTL, t0())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claim.cancel_requested, None);
    // Another daemon asks; the first request stands.
    assert!(store.request_cancel("r1", "api:alice").await.unwrap());
    assert!(store.request_cancel("r1", "api:bob").await.unwrap());
    let renewed = store
        .renew_run("r1", "a", claim.epoch, TTL, at(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renewed.cancel_requested.as_deref(), Some("api:alice"));
    assert_eq!(
        store
            .release_run("r1", "a", claim.epoch)
            .await
            .unwrap()
            .as_deref(),
        Some("api:alice")
    );
    let next = store
        .claim_run("r1", "b", TTL, at(11))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.cancel_requested.as_deref(), Some("api:alice"));
    // A finished run takes no request, and its release reports none.
    store
        .commit(vec![Change {
            run: Some(("r1".into(), RunState::Cancelled, at(12))),
            ..Change::default()
        }])
        .await
        .unwrap();
    assert_eq!(
        store.release_run("r1", "b", next.epoch).await.unwrap(),
        None
    );
    assert!(!store.request_cancel("r1", "api:carol").await.unwrap());
    assert!(!store.request_cancel("ghost", "api:carol").await.unwrap());
}

pub(crate) async fn two_claimers_of_outbox_rows_get_disjoint_sets<S: Store>(store: &S) {
    let emails: Vec<NewEmail> = (0..20)
        .map(|i| email(None, &format!("mail {i:02}"), at(i)))
        .collect();
    store
        .commit(vec![Change {
            emails,
            ..Change::default()
        }])
        .await
        .unwrap();
    let now = at(100);
    type Claimed = Result<Vec<super::EmailRow>, StoreError>;
    let claim = |holder: &'static str| {
        Box::pin(store.claim_emails(holder, now, TTL, now, 8)) as BoxFuture<'_, Claimed>
    };
    let mut results = join_all(vec![claim("a"), claim("b"), claim("c")])
        .await
        .into_iter()
        .map(Result::unwrap);
    let (a, b, c) = (
        results.next().unwrap(),
        results.next().unwrap(),
        results.next().unwrap(),
    );
    let subjects = |rows: &[super::EmailRow]| -> Vec<String> {
        rows.iter().map(|r| r.email.subject.clone()).collect()
    };
    for rows in [&a, &b, &c] {
        assert!(rows.len() <= 8);
        // Each claimer's rows come oldest first.
        let mut sorted = subjects(rows);
        sorted.sort();
        assert_eq!(subjects(rows), sorted);
    }
    let mut all = [subjects(&a), subjects(&b), subjects(&c)].concat();
    all.sort();
    assert_eq!(
        all,
        (0..20).map(|i| format!("mail {i:02}")).collect::<Vec<_>>(),
        "every row claimed exactly once"
    );
    // Claimed rows are not due for anyone else while the claim lasts.
    assert!(
        store
            .claim_emails("d", at(110), TTL, at(110), 100)
            .await
            .unwrap()
            .is_empty()
    );
    // a sends its rows; c's claim ends unsent (c crashed): due again when it expires.
    for row in &a {
        store
            .email_attempted(
                row.id,
                sent(at(101), event("email.sent", None, None, at(101))),
            )
            .await
            .unwrap();
    }
    for row in &b {
        let first = Some(event("email.failed", None, None, at(101)));
        store
            .email_attempted(row.id, failed(at(200), first))
            .await
            .unwrap();
    }
    assert!(
        store
            .claim_emails("d", at(129), TTL, at(129), 100)
            .await
            .unwrap()
            .is_empty()
    );
    let reclaimed = store
        .claim_emails("d", at(130), TTL, at(130), 100)
        .await
        .unwrap();
    assert_eq!(subjects(&reclaimed), subjects(&c));
    // b's failed rows come back at their next attempt (on the engine's clock), not before;
    // sent rows never (d's claim on c's rows holds at 140).
    assert!(
        store
            .claim_emails("e", at(199), TTL, at(140), 100)
            .await
            .unwrap()
            .is_empty()
    );
    // Unless a delivery succeeds first: then the server is back and they come due with it.
    for row in &reclaimed {
        store
            .email_attempted(
                row.id,
                sent(at(131), event("email.sent", None, None, at(131))),
            )
            .await
            .unwrap();
    }
    let later = store
        .claim_emails("e", at(131), TTL, at(141), 100)
        .await
        .unwrap();
    assert_eq!(subjects(&later), subjects(&b));
    assert!(later.iter().all(|r| r.attempts == 1));
}

fn session(id_hash: &str, email: &str, nonce: Option<&str>) -> NewSession {
    NewSession {
        id_hash: id_hash.into(),
        email: email.into(),
        via: "link".into(),
        groups: vec!["ops".into(), "cab".into()],
        created_at: t0(),
        expires_at: t0() + Duration::hours(12),
        link_nonce: nonce.map(Into::into),
        source_ip: Some("127.0.0.1".into()),
    }
}

fn signed(action: &str, write: SessionWrite) -> Change {
    Change {
        events: vec![event(action, None, None, t0())],
        sessions: vec![write],
        ..Change::default()
    }
}

pub(crate) async fn sessions_open_once_per_link_and_close_with_their_events<S: Store>(store: &S) {
    assert_eq!(store.session("h1").await.unwrap(), None);
    let opened = session("h1", "alice@example.com", Some("n-1"));
    store
        .commit(vec![signed(
            "auth.signed_in",
            SessionWrite::Open(opened.clone()),
        )])
        .await
        .unwrap();
    let row = store.session("h1").await.unwrap().expect("stored");
    assert_eq!(row.session, opened);
    assert_eq!((row.last_seen_at, row.revoked_at), (t0(), None));

    // The same link again (another cookie value): refused whole, no event written.
    let err = store
        .commit(vec![signed(
            "auth.signed_in",
            SessionWrite::Open(session("h2", "alice@example.com", Some("n-1"))),
        )])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::LinkUsed { nonce } if nonce == "n-1"),
        "{err:?}"
    );
    assert_eq!(store.session("h2").await.unwrap(), None);
    assert_eq!(verify_all(store).await, 1);

    // Sessions without a link (OIDC) never collide on the nonce.
    for id in ["h3", "h4"] {
        store
            .commit(vec![signed(
                "auth.signed_in",
                SessionWrite::Open(session(id, "bob@example.com", None)),
            )])
            .await
            .unwrap();
    }
    let later = t0() + Duration::minutes(5);
    store.touch_session("h1", later).await.unwrap();
    assert_eq!(
        store.session("h1").await.unwrap().unwrap().last_seen_at,
        later
    );
    let live: Vec<String> = (store.live_sessions(later).await.unwrap())
        .into_iter()
        .map(|s| s.session.id_hash)
        .collect();
    assert_eq!(live.len(), 3, "{live:?}");

    store
        .commit(vec![signed(
            "auth.signed_out",
            SessionWrite::Close {
                id_hash: "h1".into(),
                at: later,
            },
        )])
        .await
        .unwrap();
    assert_eq!(
        store.session("h1").await.unwrap().unwrap().revoked_at,
        Some(later)
    );
    let live = store.live_sessions(later).await.unwrap();
    assert!(live.iter().all(|s| s.session.id_hash != "h1"), "{live:?}");
    // Past their absolute end, none is live.
    assert!(
        store
            .live_sessions(t0() + Duration::hours(12))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(verify_all(store).await, 4);
}

pub(crate) async fn aggregates_read_what_is_active_and_hot_queries_use_their_indexes<S: Store>(
    store: &S,
) {
    create_simple(store, "r1", Some("2026-10")).await;
    create_simple(store, "r2", Some("2026-11")).await;
    create_simple(store, "r3", None).await;
    let mut rerun = run_row("r4", "monthly", Some("2026-12"), t0());
    rerun.rerun = Some("again".into());
    rerun.runbook = "weekly".into();
    let rows = vec![step_row("r4", "a", "", StepState::Pending)];
    let started = event("run.started", Some("r4"), None, t0());
    store.create_run(rerun, rows, started).await.unwrap();
    // A runbook edited from monthly to daily cycles: its last cycle of each kind.
    create_simple(store, "r5", Some("2026-09-30")).await;
    let asks = transition(
        "r2",
        "a",
        StepState::Pending,
        StepState::AwaitingInput,
        t0(),
    );
    let mut finished = transition("r1", "a", StepState::Pending, StepState::Succeeded, t0());
    finished.run = Some(("r1".into(), RunState::Succeeded, t0()));
    store.commit(vec![asks, finished]).await.unwrap();

    let mut last = store.last_cycles().await.unwrap();
    last.sort();
    let expected = [
        ("monthly", "2026-09-30"),
        ("monthly", "2026-11"),
        ("weekly", "2026-12"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(r, c)| (r.to_string(), c.to_string()))
        .collect();
    assert_eq!(last, expected);
    let mut counts = store.run_counts().await.unwrap();
    counts.sort_by_key(|(s, _)| s.as_str());
    assert_eq!(counts, [(RunState::Running, 4), (RunState::Succeeded, 1)]);
    assert_eq!(store.runs_awaiting_input().await.unwrap(), ["r2"]);

    // A runbook's runs and the runs in one state: the most recent first (by start, then by
    // insertion), limited; an older run inserted last comes last.
    let older = run_row("r6", "monthly", None, t0() - Duration::days(1));
    let rows = vec![step_row("r6", "a", "", StepState::Pending)];
    let started = event("run.started", Some("r6"), None, t0());
    store.create_run(older, rows, started).await.unwrap();
    let ids = |runs: Vec<RunRow>| runs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let monthly = store.runs_of_runbook("monthly", 10).await.unwrap();
    assert_eq!(ids(monthly), ["r5", "r3", "r2", "r1", "r6"]);
    let limited = store.runs_of_runbook("monthly", 2).await.unwrap();
    assert_eq!(ids(limited), ["r5", "r3"]);
    assert_eq!(
        ids(store.runs_of_runbook("weekly", 10).await.unwrap()),
        ["r4"]
    );
    assert!(store.runs_of_runbook("none", 10).await.unwrap().is_empty());
    let running = store.runs_in_state(RunState::Running, 3).await.unwrap();
    assert_eq!(ids(running), ["r5", "r4", "r3"]);
    let succeeded = store.runs_in_state(RunState::Succeeded, 10).await.unwrap();
    assert_eq!(ids(succeeded), ["r1"]);
    assert!(
        store
            .runs_in_state(RunState::Failed, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let plans = store.hot_query_plans().await.unwrap();
    let names: Vec<&str> = plans.iter().map(|(n, _)| *n).collect();
    let expected: Vec<&str> = HOT_QUERIES.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, expected);
    for ((name, plan), (_, index)) in plans.iter().zip(HOT_QUERIES) {
        if let Some(index) = index {
            assert!(plan.contains(index), "{name} does not use {index}:\n{plan}");
        }
        // No table read whole: every scan goes through an index (SQLite: `SCAN t USING
        // INDEX`, `SEARCH`; PostgreSQL: index scans, a bitmap heap scan behind one, and the
        // scan of a subquery's own bounded result).
        for line in plan.to_lowercase().lines().filter(|l| l.contains("scan ")) {
            assert!(
                line.contains("index")
                    || line.contains("bitmap heap")
                    || line.contains("subquery scan"),
                "{name} reads a table whole:\n{plan}"
            );
        }
    }
}

/// The audit browser's query (`GET /audit`): newest first, every filter (time, runbook through
/// its runs and the events about it, run, actor, action), and keyset pages both ways.
pub(crate) async fn the_audit_browser_filters_and_pages_by_seq_newest_first<S: Store>(store: &S) {
    let t = |m: i64| t0() + Duration::minutes(m);
    create_simple(store, "r1", None).await; // seq 1, runbook monthly
    store
        .create_run(
            run_row("w1", "weekly", None, t(1)),
            vec![step_row("w1", "a", "", StepState::Pending)],
            event("run.started", Some("w1"), None, t(1)),
        )
        .await
        .unwrap(); // seq 2
    let about = |action: &str, runbook: &str, actor: &str, at| NewEvent {
        actor: actor.into(),
        details: json!({"runbook": runbook}),
        ..event(action, None, None, at)
    };
    let events = vec![
        about("runbook.loaded", "monthly", "engine", t(2)), // 3
        event("step.running", Some("w1"), Some("a"), t(3)), // 4
        about("auth.signed_in", "", "web:ann@example.com", t(4)), // 5
        event("step.succeeded", Some("r1"), Some("a"), t(5)), // 6
        about("cycle.missed", "weekly", "scheduler", t(6)), // 7
    ];
    let changes = events
        .into_iter()
        .map(|e| Change {
            events: vec![e],
            ..Change::default()
        })
        .collect();
    store.commit(changes).await.unwrap();
    let read = |query: AuditQuery| async move {
        let page = store.audit_events(query).await.unwrap();
        (
            page.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            page.more,
        )
    };
    let all = AuditQuery {
        limit: 100,
        ..AuditQuery::default()
    };
    assert_eq!(read(all.clone()).await, (vec![7, 6, 5, 4, 3, 2, 1], false));
    let monthly = AuditQuery {
        runbook: Some("monthly".into()),
        ..all.clone()
    };
    assert_eq!(
        read(monthly).await,
        (vec![6, 3, 1], false),
        "its runs and the events about it"
    );
    let weekly_run = AuditQuery {
        run_id: Some("w1".into()),
        ..all.clone()
    };
    assert_eq!(read(weekly_run).await, (vec![4, 2], false));
    let person = AuditQuery {
        actor: Some("web:ann@example.com".into()),
        ..all.clone()
    };
    assert_eq!(read(person).await, (vec![5], false));
    let action = AuditQuery {
        action: Some("step.running".into()),
        ..all.clone()
    };
    assert_eq!(read(action).await, (vec![4], false));
    let window = AuditQuery {
        since: Some(t(3)),
        until: Some(t(5)),
        ..all.clone()
    };
    assert_eq!(
        read(window).await,
        (vec![5, 4], false),
        "since inclusive, until exclusive"
    );
    let combined = AuditQuery {
        runbook: Some("weekly".into()),
        actor: Some("scheduler".into()),
        since: Some(t(2)),
        ..all.clone()
    };
    assert_eq!(read(combined).await, (vec![7, 4], false));
    let nobody = AuditQuery {
        actor: Some("nobody".into()),
        ..all.clone()
    };
    assert_eq!(read(nobody).await, (vec![], false));

    // Pages of three: newest, then older by the last seq shown, then newer by the first.
    let page = |cursor| AuditQuery {
        limit: 3,
        cursor,
        ..AuditQuery::default()
    };
    assert_eq!(read(page(AuditCursor::Newest)).await, (vec![7, 6, 5], true));
    assert_eq!(
        read(page(AuditCursor::Before(5))).await,
        (vec![4, 3, 2], true)
    );
    assert_eq!(read(page(AuditCursor::Before(2))).await, (vec![1], false));
    assert_eq!(
        read(page(AuditCursor::After(1))).await,
        (vec![4, 3, 2], true)
    );
    assert_eq!(
        read(page(AuditCursor::After(4))).await,
        (vec![7, 6, 5], false)
    );
    let monthly_pages = AuditQuery {
        runbook: Some("monthly".into()),
        ..page(AuditCursor::Before(6))
    };
    assert_eq!(
        read(monthly_pages).await,
        (vec![3, 1], false),
        "filters hold across pages"
    );
}

/// An email with a once-only key is queued once, whether the second copy comes in the same
/// commit or a later one; unkeyed emails are all queued; attachments round-trip.
pub(crate) async fn a_keyed_email_is_queued_once_with_its_attachments<S: Store>(store: &S) {
    let keyed = |subject: &str| NewEmail {
        key: Some("checkpoint:patchday/test:1".into()),
        attachments: vec![super::EmailAttachment {
            filename: "00000001.checkpoint.txt".into(),
            content_type: "text/plain; charset=utf-8".into(),
            content: "patchday/test\n1\nroot=\n\n\u{2014} k sig\n".into(),
        }],
        ..email(None, subject, t0())
    };
    let change = Change {
        emails: vec![
            keyed("first"),
            keyed("same commit"),
            email(None, "plain", t0()),
        ],
        ..Change::default()
    };
    store.commit(vec![change]).await.unwrap();
    let again = Change {
        emails: vec![keyed("later commit"), email(None, "plain", t0())],
        ..Change::default()
    };
    store.commit(vec![again]).await.unwrap();
    let due = store.due_emails(t0(), 10).await.unwrap();
    let subjects: Vec<&str> = due.iter().map(|r| r.email.subject.as_str()).collect();
    assert_eq!(subjects, ["first", "plain", "plain"]);
    assert_eq!(due[0].email, keyed("first"));
    assert!(due[1].email.attachments.is_empty() && due[1].email.key.is_none());
}

/// A finished (`succeeded`) host row of step `step` that took `millis` milliseconds.
fn timed_row(run_id: &str, step: &str, host: &str, millis: i64) -> StepRow {
    let mut row = step_row(run_id, step, host, StepState::Succeeded);
    row.started_at = Some(t0());
    row.finished_at = Some(t0() + Duration::milliseconds(millis));
    row
}

/// The store's step figures as (step, state, bucket, rows, millis), sorted.
async fn figures_of<S: Store>(
    store: &S,
    runs: u32,
) -> Vec<(String, StepState, Option<usize>, u64, u64)> {
    let mut out: Vec<_> = store
        .step_figures(runs)
        .await
        .unwrap()
        .into_iter()
        .map(|f| (f.step, f.state, f.bucket, f.rows, f.millis))
        .collect();
    out.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    out
}

pub(crate) async fn step_figures_follow_every_step_write<S: Store>(store: &S) {
    // Every bucket bound: a row at the bound is in its bucket, a millisecond more in the next
    // (the migrations' triggers and `STEP_DURATION_BUCKETS_MS` agree).
    let mut rows = Vec::new();
    for (i, bound) in STEP_DURATION_BUCKETS_MS.iter().enumerate() {
        let bound = *bound as i64;
        rows.push(timed_row("old", &format!("s{i}"), "at", bound));
        rows.push(timed_row("old", &format!("s{i}"), "past", bound + 1));
    }
    let old = run_row("old", "monthly", None, t0() - Duration::days(1));
    let started = event("run.started", Some("old"), None, t0());
    store.create_run(old, rows, started).await.unwrap();
    let figures = figures_of(store, 10).await;
    for (i, bound) in STEP_DURATION_BUCKETS_MS.iter().enumerate() {
        let step = format!("s{i}");
        let of = |bucket: usize| {
            figures
                .iter()
                .find(|f| f.0 == step && f.2 == Some(bucket))
                .map(|f| (f.3, f.4))
        };
        // (Past the last bound: bucket `len`, the +Inf bucket.)
        assert_eq!(of(i), Some((1, *bound)), "{step}: {figures:?}");
        assert_eq!(of(i + 1), Some((1, *bound + 1)), "{step}: {figures:?}");
    }

    // A newer run: rows inserted, moved in one batch (several rows of one step at once), moved
    // again (the old contribution leaves), and added by a fan-out's insert.
    let rows = vec![
        step_row("new", "a", "", StepState::Pending),
        step_row("new", "fan", "h1", StepState::Pending),
        step_row("new", "fan", "h2", StepState::Pending),
    ];
    let started = event("run.started", Some("new"), None, t0());
    let new = run_row("new", "monthly", None, t0());
    store.create_run(new, rows, started).await.unwrap();
    let mut batch = Change::default();
    for (host, millis) in [("h1", 1_500), ("h2", 2_000)] {
        batch.steps.push(StepWrite {
            expect: Some(StepState::Pending),
            row: timed_row("new", "fan", host, millis),
        });
    }
    batch.steps.push(StepWrite {
        expect: None,
        row: timed_row("new", "fan", "h3", 30_000),
    });
    store.commit(vec![batch]).await.unwrap();
    let mut retry = timed_row("new", "fan", "h2", 0);
    retry.state = StepState::Waiting;
    retry.finished_at = None;
    let retry = Change {
        steps: vec![StepWrite {
            expect: Some(StepState::Succeeded),
            row: retry,
        }],
        ..Change::default()
    };
    store.commit(vec![retry]).await.unwrap();
    let s =
        |step: &str, state, bucket, rows, millis| (step.to_string(), state, bucket, rows, millis);
    assert_eq!(
        figures_of(store, 1).await,
        [
            s("a", StepState::Pending, None, 1, 0),
            s("fan", StepState::Succeeded, Some(1), 1, 1_500),
            s("fan", StepState::Succeeded, Some(3), 1, 30_000),
            s("fan", StepState::Waiting, None, 1, 0),
        ]
    );
    // The most recent run only, then both: the window is counted in runs.
    assert_eq!(figures_of(store, 2).await.len(), 4 + 18);
}

pub(crate) async fn the_run_page_reads_own_rows_one_page_of_hosts_and_counts<S: Store>(store: &S) {
    let mut rows = vec![
        step_row("r1", "a", "", StepState::Succeeded),
        step_row("r1", "fan", "", StepState::Running),
    ];
    rows.extend((0..7).map(|h| {
        let state = if h % 2 == 0 {
            StepState::Failed
        } else {
            StepState::Succeeded
        };
        step_row("r1", "fan", &format!("h{h}"), state)
    }));
    rows.push(step_row("r1", "b", "", StepState::Pending));
    let started = event("run.started", Some("r1"), None, t0());
    let run = run_row("r1", "monthly", None, t0());
    store.create_run(run, rows, started).await.unwrap();
    create_simple(store, "r2", None).await;

    let own: Vec<String> = (store.run_step_rows("r1").await.unwrap())
        .into_iter()
        .map(|r| r.step)
        .collect();
    assert_eq!(own, ["a", "fan", "b"]);
    let hosts = |rows: Vec<StepRow>| rows.into_iter().map(|r| r.host).collect::<Vec<_>>();
    let failed = store
        .run_host_rows("r1", StepState::Failed, 1, 2)
        .await
        .unwrap();
    assert_eq!(hosts(failed), ["h2", "h4"]);
    let rest = store
        .run_host_rows("r1", StepState::Failed, 3, 2)
        .await
        .unwrap();
    assert_eq!(hosts(rest), ["h6"]);
    let none = store
        .run_host_rows("r1", StepState::Running, 0, 50)
        .await
        .unwrap();
    assert!(
        none.is_empty(),
        "the step's own row is not a host: {none:?}"
    );

    let mut counts = store.run_row_counts("r1").await.unwrap();
    counts.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    let c = |step: &str, state, n| (step.to_string(), state, n);
    assert_eq!(
        counts,
        [
            c("a", StepState::Succeeded, 1),
            c("b", StepState::Pending, 1),
            c("fan", StepState::Failed, 4),
            c("fan", StepState::Running, 1),
            c("fan", StepState::Succeeded, 3),
        ]
    );
}

/// Appends `n` events without a run.
async fn append_events<S: Store>(store: &S, n: usize) {
    let changes = (0..n)
        .map(|i| Change {
            events: vec![event(
                "test.event",
                None,
                None,
                t0() + Duration::seconds(i as i64),
            )],
            ..Change::default()
        })
        .collect();
    store.commit(changes).await.unwrap();
}

/// Every stored node (migration 0019) against the tree recomputed by `merkle.rs` from the
/// events: each perfect subtree of 16 leaves and up that the log completes, and none beyond.
async fn assert_nodes_are_the_events_tree<S: Store>(store: &S) {
    use crate::merkle::{self, Subtree};
    let events = store.events(EventFilter::default()).await.unwrap();
    let leaves: Vec<merkle::Hash> = events
        .iter()
        .map(|e| merkle::leaf_hash(&crate::checkpoints::hex_hash(&e.hash).unwrap()))
        .collect();
    let n = leaves.len() as u64;
    let mut wanted = Vec::new();
    for level in crate::merkle_nodes::STORED_LEVEL..10 {
        for index in 0..=(n >> level) {
            wanted.push(Subtree::new(level, index));
        }
    }
    let mut stored = store.merkle_nodes(wanted).await.unwrap();
    stored.sort();
    let mut expected: Vec<(Subtree, merkle::Hash)> = Vec::new();
    for level in crate::merkle_nodes::STORED_LEVEL..10 {
        for index in 0..(n >> level) {
            let t = Subtree::new(level, index);
            let range = t.leaves();
            expected.push((
                t,
                merkle::root_of(&leaves[range.start as usize..range.end as usize]),
            ));
        }
    }
    expected.sort();
    assert!(expected.len() > 10, "the case must complete several levels");
    assert_eq!(stored, expected);
    let size = n;
    for index in [0, 1, 17, n / 2, n - 1] {
        let path = crate::merkle_nodes::inclusion_path(store, index, size)
            .await
            .unwrap()
            .expect("nodes cover the log");
        assert_eq!(
            path,
            merkle::inclusion_proof(index as usize, &leaves),
            "leaf {index}"
        );
    }
    for old in [1, 16, 33, n - 5] {
        let path = crate::merkle_nodes::consistency_path(store, old, size)
            .await
            .unwrap()
            .expect("nodes cover the log");
        assert_eq!(
            path,
            merkle::consistency_proof(old as usize, &leaves),
            "old size {old}"
        );
    }
}

pub(crate) async fn stored_merkle_nodes_are_the_tree_of_the_events<S: Store>(store: &S) {
    use crate::checkpoints::Checkpointer;
    let dir = tempfile::tempdir().unwrap();
    let key = || crate::checkpoint::SigningKey::from_seed("test/nodes", [7; 32]).unwrap();
    append_events(store, 150).await;
    // First pass: the tree rebuilt from the events, its nodes stored.
    let mut checkpointer = Checkpointer::open(store, dir.path(), key(), "patchday/test")
        .await
        .unwrap();
    checkpointer.checkpoint(store, t0(), false).await.unwrap();
    assert_nodes_are_the_events_tree(store).await;
    // Later passes resume from the nodes and store only what the new events complete.
    append_events(store, 83).await;
    let mut checkpointer = Checkpointer::open(store, dir.path(), key(), "patchday/test")
        .await
        .unwrap();
    assert_eq!(checkpointer.size(), 233);
    checkpointer.checkpoint(store, t0(), false).await.unwrap();
    assert_nodes_are_the_events_tree(store).await;
    let last = checkpointer.last().unwrap().checkpoint.clone();
    assert_eq!(last.size, 233);
    // A node that lies is not used: the proof is rebuilt from the events, and the next
    // checkpointer rebuilds the tree from them and rewrites the node.
    let peak = crate::merkle::Subtree::new(7, 0);
    store.put_merkle_nodes(vec![(peak, [9; 32])]).await.unwrap();
    let event = store.events_after(99, 1).await.unwrap();
    let note = checkpointer.last().unwrap().note.clone();
    let proof = crate::proof::prove_inclusions(store, &event, &note)
        .await
        .unwrap();
    let verifier = key().verifier();
    crate::proof::check(&proof[0], &verifier).expect("rebuilt from the events, not the lying node");
    let checkpointer = Checkpointer::open(store, dir.path(), key(), "patchday/test")
        .await
        .unwrap();
    assert_eq!(checkpointer.size(), 233);
    assert_nodes_are_the_events_tree(store).await;
}

pub(crate) async fn keyset_pages_walk_runs_rows_and_events_once_in_order<S: Store>(store: &S) {
    // Five runs, two of them started at the same instant (insertion order breaks the tie).
    for (id, minutes) in [("r1", 0), ("r2", 1), ("r3", 1), ("r4", 2), ("r5", 3)] {
        let at = t0() + Duration::minutes(minutes);
        let rows = vec![step_row(id, "a", "", StepState::Pending)];
        let started = event("run.started", Some(id), None, at);
        let run = run_row(id, "monthly", None, at);
        store.create_run(run, rows, started).await.unwrap();
    }
    let ids = |runs: Vec<RunRow>| runs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(store.runs(2).await.unwrap()), ["r5", "r4"]);
    assert_eq!(ids(store.runs_after("r4", 2).await.unwrap()), ["r3", "r2"]);
    assert_eq!(ids(store.runs_after("r2", 2).await.unwrap()), ["r1"]);
    assert!(store.runs_after("r1", 2).await.unwrap().is_empty());
    assert!(store.runs_after("nope", 2).await.unwrap().is_empty());

    let hosts: Vec<StepRow> = (0..5)
        .map(|h| step_row("r1", "fan", &format!("h{h}"), StepState::Pending))
        .collect();
    let inserts = hosts
        .into_iter()
        .map(|row| StepWrite { expect: None, row })
        .collect();
    let change = Change {
        steps: inserts,
        events: (0..3)
            .map(|_| event("step.running", Some("r1"), Some("fan"), t0()))
            .collect(),
        ..Change::default()
    };
    store.commit(vec![change]).await.unwrap();
    let (mut after, mut seen) = (0, Vec::new());
    loop {
        let page = store.run_steps_after("r1", after, 2).await.unwrap();
        let Some((last, _)) = page.last() else { break };
        after = *last;
        seen.extend(
            page.into_iter()
                .map(|(_, r)| format!("{}/{}", r.step, r.host)),
        );
    }
    assert_eq!(
        seen,
        ["a/", "fan/h0", "fan/h1", "fan/h2", "fan/h3", "fan/h4"]
    );
    let (mut after, mut seqs) = (0, Vec::new());
    loop {
        let page = store.run_events_after("r1", after, 2).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        seqs.extend(page.iter().map(|e| e.seq));
    }
    // r1's run.started (seq 1), then the three events after every run started (6..=8).
    assert_eq!(seqs, [1, 6, 7, 8]);
}
