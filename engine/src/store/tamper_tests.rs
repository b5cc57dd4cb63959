//! Tamper tests (issue 4): a chain of ~300 audit events is built through [`Store::commit`], then
//! each of hundreds of random mutations is applied with raw SQL to a fresh copy of the database
//! file (edits of every field, deletions including the last row, forged rows with valid hashes,
//! reordering). Every one must be detected by [`audit::verify`] fed from the store, and named at
//! the right seq. The RNG is seeded, so a failure reproduces.

use chrono::Duration;
use serde_json::json;

use super::SqliteStore;
use crate::audit;
use crate::store::conformance::{event, run_row, step_row, t0};
use crate::store::{Change, EventFilter, EventRow, NewEvent, StepState, StepWrite, Store};

/// xorshift64: tiny, seeded, good enough to pick rows and fields.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform-ish in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }

    fn hex64(&mut self) -> String {
        (0..4).map(|_| format!("{:016x}", self.next())).collect()
    }
}

fn url(path: &std::path::Path) -> String {
    format!("sqlite://{}", path.display())
}

/// SQL string literal.
fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Builds the chain through the store's own commit path; returns its events.
async fn build_chain(path: &std::path::Path, target: usize) -> Vec<EventRow> {
    let store = SqliteStore::open(&url(path)).await.unwrap();
    store
        .create_run(
            run_row("r1", "monthly", Some("2026-12"), t0()),
            vec![step_row("r1", "patch", "", StepState::Pending)],
            event("run.started", Some("r1"), None, t0()),
        )
        .await
        .unwrap();
    let mut rng = Rng(0x0dd_ba11_cafe_f00d);
    let mut host = 0;
    let mut count = 1;
    while count < target {
        let batch = (0..rng.range(1, 5))
            .map(|_| {
                host += 1;
                let at = t0() + Duration::microseconds(rng.range(0, 86_400_000_000));
                let h = format!("host{host:03}");
                Change {
                    steps: vec![StepWrite {
                        expect: None,
                        row: step_row("r1", "patch", &h, StepState::Pending),
                    }],
                    events: (0..rng.range(1, 2))
                        .map(|i| NewEvent {
                            actor: if i == 0 {
                                "scheduler".into()
                            } else {
                                format!("cli:op{host}")
                            },
                            step_id: (i == 0).then(|| "patch".to_string()),
                            details: json!({"host": h, "attempt": i, "note": "a,b \"c\"\n"}),
                            ..event("step.pending", Some("r1"), Some("patch"), at)
                        })
                        .collect(),
                    ..Change::default()
                }
            })
            .collect::<Vec<_>>();
        count += batch.iter().map(|c| c.events.len()).sum::<usize>();
        store.commit(batch).await.unwrap();
    }
    let events = store.events(EventFilter::default()).await.unwrap();
    store
        .execute_raw("PRAGMA wal_checkpoint(TRUNCATE)")
        .await
        .unwrap();
    store.close().await;
    events
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    EditActor,
    EditAction,
    EditDetails,
    EditAt,
    EditRunId,
    EditStepId,
    EditHash,
    EditPrevHash,
    DeleteRow,
    DeleteLast,
    ForgeTail,
    ForgeZero,
    ReplaceRow,
    RehashLast,
    SwapSeq,
}

const KINDS: [Kind; 15] = [
    Kind::EditActor,
    Kind::EditAction,
    Kind::EditDetails,
    Kind::EditAt,
    Kind::EditRunId,
    Kind::EditStepId,
    Kind::EditHash,
    Kind::EditPrevHash,
    Kind::DeleteRow,
    Kind::DeleteLast,
    Kind::ForgeTail,
    Kind::ForgeZero,
    Kind::ReplaceRow,
    Kind::RehashLast,
    Kind::SwapSeq,
];

/// A forged event at `seq` chained onto `prev_hash` with a valid hash of its own.
fn forged(seq: i64, prev_hash: &str, at: chrono::DateTime<chrono::Utc>) -> String {
    let details = json!({"approved": true});
    let hash = audit::event_hash(
        seq,
        at,
        "link:mallory@example.com",
        "approval.decided",
        Some("r1"),
        Some("cab"),
        &details,
        prev_hash,
    );
    format!(
        "INSERT INTO events (seq, at, actor, action, run_id, step_id, details, prev_hash, hash) \
         VALUES ({seq}, {}, 'link:mallory@example.com', 'approval.decided', 'r1', 'cab', {}, {}, {});",
        q(&audit::format_instant(at)),
        q(&details.to_string()),
        q(prev_hash),
        q(&hash),
    )
}

/// The SQL of one mutation of `kind`, and the seq `verify` must name.
fn mutation(kind: Kind, rng: &mut Rng, events: &[EventRow]) -> (String, i64) {
    let n = events.len() as i64;
    let k = rng.range(1, n);
    let e = &events[(k - 1) as usize];
    match kind {
        Kind::EditActor => (
            format!(
                "UPDATE events SET actor = {} WHERE seq = {k};",
                q(&format!("{}x", e.actor))
            ),
            k,
        ),
        Kind::EditAction => (
            format!(
                "UPDATE events SET action = 'step.succeeded.{}' WHERE seq = {k};",
                rng.next()
            ),
            k,
        ),
        Kind::EditDetails => {
            let mut details = e.details.clone();
            details["attempt"] = json!(rng.range(2, 1_000_000));
            (
                format!(
                    "UPDATE events SET details = {} WHERE seq = {k};",
                    q(&details.to_string())
                ),
                k,
            )
        }
        Kind::EditAt => {
            let shift =
                rng.range(1, 10_000_000_000) * if rng.next().is_multiple_of(2) { 1 } else { -1 };
            let at = e.at + Duration::microseconds(shift);
            (
                format!(
                    "UPDATE events SET at = {} WHERE seq = {k};",
                    q(&audit::format_instant(at))
                ),
                k,
            )
        }
        Kind::EditRunId => {
            let value = if e.run_id.is_some() && rng.next().is_multiple_of(2) {
                "NULL".to_string()
            } else {
                q("r2")
            };
            (
                format!("UPDATE events SET run_id = {value} WHERE seq = {k};"),
                k,
            )
        }
        Kind::EditStepId => {
            let value = if e.step_id.is_some() {
                "NULL".to_string()
            } else {
                q("patch")
            };
            (
                format!("UPDATE events SET step_id = {value} WHERE seq = {k};"),
                k,
            )
        }
        Kind::EditHash => (
            format!(
                "UPDATE events SET hash = {} WHERE seq = {k};",
                q(&rng.hex64())
            ),
            k,
        ),
        Kind::EditPrevHash => (
            format!(
                "UPDATE events SET prev_hash = {} WHERE seq = {k};",
                q(&rng.hex64())
            ),
            k,
        ),
        // A gap: named at the event after it (or, for the first row, at seq 2).
        Kind::DeleteRow => {
            let k = rng.range(1, n - 1);
            (format!("DELETE FROM events WHERE seq = {k};"), k + 1)
        }
        // A deleted tail: named at the first missing seq.
        Kind::DeleteLast => {
            let tail = rng.range(1, 3);
            (
                format!("DELETE FROM events WHERE seq > {};", n - tail),
                n - tail + 1,
            )
        }
        Kind::ForgeTail => (forged(n + 1, &events[(n - 1) as usize].hash, e.at), n + 1),
        Kind::ForgeZero => (forged(0, audit::GENESIS_HASH, e.at), 0),
        // Row k replaced by a forged event with a valid hash: the next one no longer chains.
        Kind::ReplaceRow => {
            let k = rng.range(1, n - 1);
            let prev = if k == 1 {
                audit::GENESIS_HASH
            } else {
                &events[(k - 2) as usize].hash
            };
            (
                format!(
                    "DELETE FROM events WHERE seq = {k}; {}",
                    forged(k, prev, e.at)
                ),
                k + 1,
            )
        }
        // The last event rewritten with a valid hash, the head left alone.
        Kind::RehashLast => {
            let last = &events[(n - 1) as usize];
            (
                format!(
                    "DELETE FROM events WHERE seq = {n}; {}",
                    forged(n, &last.prev_hash, last.at)
                ),
                n,
            )
        }
        Kind::SwapSeq => {
            let mut j = rng.range(1, n);
            while j == k {
                j = rng.range(1, n);
            }
            (
                format!(
                    "UPDATE events SET seq = -1 WHERE seq = {k}; UPDATE events SET seq = {k} WHERE seq = {j}; \
                     UPDATE events SET seq = {j} WHERE seq = -1;"
                ),
                k.min(j),
            )
        }
    }
}

#[tokio::test]
async fn every_tampering_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let master = dir.path().join("master.db");
    let events = build_chain(&master, 300).await;
    let n = events.len();
    assert!((300..310).contains(&n), "{n}");
    {
        let store = SqliteStore::open(&url(&master)).await.unwrap();
        let head = store.chain_head().await.unwrap();
        assert_eq!(audit::verify(&events, head.as_ref()), Ok(n));
        store.close().await;
    }
    let mut rng = Rng(0x5eed_1234_abcd_0042);
    let rounds = 420;
    let mut detected = 0;
    let mut by_kind = std::collections::BTreeMap::<String, (u32, u32)>::new();
    for round in 0..rounds {
        let kind = KINDS[round % KINDS.len()];
        let (sql, expected_seq) = mutation(kind, &mut rng, &events);
        let copy = dir.path().join(format!("copy{round}.db"));
        std::fs::copy(&master, &copy).unwrap();
        // The copy is thrown away: its writer skips fsync (the only pragma changed, and only here).
        let store = SqliteStore::open(&url(&copy)).await.unwrap();
        let changed = store
            .execute_raw(&format!(
                "PRAGMA synchronous = OFF; BEGIN; DROP TRIGGER events_no_update; \
                 DROP TRIGGER events_no_delete; {sql} COMMIT;"
            ))
            .await
            .unwrap_or_else(|e| panic!("round {round} {kind:?}: {sql}: {e}"));
        assert!(
            changed >= 1,
            "round {round} {kind:?}: {sql} changed nothing"
        );
        let read = store.events(EventFilter::default()).await.unwrap();
        let texts = store.event_texts_after(i64::MIN, 10_000).await.unwrap();
        let head = store.chain_head().await.unwrap();
        store.close().await;
        // The walkers' path (stored text, decoded only when it does not hash) finds the same.
        assert_eq!(
            walk_texts(&texts, head.as_ref()),
            audit::verify(&read, head.as_ref()),
            "round {round} {kind:?}: {sql}"
        );
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", copy.display()));
        }
        let entry = by_kind.entry(format!("{kind:?}")).or_default();
        entry.0 += 1;
        match audit::verify(&read, head.as_ref()) {
            Err(broken) => {
                assert_eq!(
                    broken.seq, expected_seq,
                    "round {round} {kind:?}: {sql}: {broken}"
                );
                detected += 1;
                entry.1 += 1;
            }
            Ok(count) => {
                panic!("round {round} {kind:?} not detected ({count} events verified): {sql}")
            }
        }
    }
    println!("tamper: {rounds} mutations, {detected} detected");
    for (kind, (tried, caught)) in &by_kind {
        println!("tamper:   {kind}: {tried} mutations, {caught} detected");
    }
    assert_eq!(detected, rounds);
}

fn walk_texts(
    events: &[crate::store::EventText],
    head: Option<&crate::store::ChainHead>,
) -> Result<usize, audit::ChainBroken> {
    let mut chain = audit::ChainVerifier::new();
    for event in events {
        chain.push_text(event)?;
    }
    chain.finish(head)
}

#[tokio::test]
async fn the_engine_cannot_update_or_delete_events() {
    let store = SqliteStore::open("sqlite::memory:").await.unwrap();
    store
        .create_run(
            run_row("r1", "monthly", None, t0()),
            vec![],
            event("run.started", Some("r1"), None, t0()),
        )
        .await
        .unwrap();
    for sql in ["UPDATE events SET actor = 'x'", "DELETE FROM events"] {
        let err = store.execute_raw(sql).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
    }
    let events = store.events(EventFilter::default()).await.unwrap();
    assert_eq!(
        audit::verify(&events, store.chain_head().await.unwrap().as_ref()),
        Ok(1)
    );
}

/// The stored Merkle nodes (migration 0019) are never trusted: a consistent rewrite of the log's
/// tail, with the head and every node rewritten to agree with it, still fails `verify_log`
/// against the signed checkpoint, and no inclusion proof of the forged event is made.
#[tokio::test]
async fn a_node_table_rewritten_with_the_log_does_not_make_it_verify() {
    use crate::checkpoints::{self, Checkpointer, Problem};
    use crate::merkle_nodes::NodeBatch;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let events = build_chain(&path, 100).await;
    let n = events.len() as i64;
    let store = SqliteStore::open(&url(&path)).await.unwrap();
    let key = crate::checkpoint::SigningKey::from_seed("test/tamper", [3; 32]).unwrap();
    let cps = dir.path().join("cps");
    let mut checkpointer = Checkpointer::open(&store, &cps, key.clone(), "patchday/test")
        .await
        .unwrap();
    checkpointer.checkpoint(&store, t0(), true).await.unwrap();
    let note = checkpointer.last().unwrap().note.clone();

    let last = &events[(n - 1) as usize];
    let sql = format!(
        "DELETE FROM events WHERE seq = {n}; {}",
        forged(n, &last.prev_hash, last.at)
    );
    store
        .execute_raw(&format!(
            "BEGIN; DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete; {sql} \
             UPDATE chain_head SET hash = (SELECT hash FROM events WHERE seq = {n}); \
             DELETE FROM merkle_nodes; COMMIT;"
        ))
        .await
        .unwrap();
    let mut tree = crate::merkle::Tree::new();
    let mut nodes = NodeBatch::default();
    for (_, hash) in store.event_hashes(0, 1_000).await.unwrap() {
        let raw = checkpoints::hex_hash(&hash).unwrap();
        nodes.push(&mut tree, crate::merkle::leaf_hash(&raw));
    }
    nodes.flush(&store).await.unwrap();

    let read = store.events(EventFilter::default()).await.unwrap();
    let head = store.chain_head().await.unwrap();
    assert_eq!(
        audit::verify(&read, head.as_ref()),
        Ok(n as usize),
        "a consistent rewrite"
    );
    let signed = checkpoints::read_dir(&cps, &key.verifier()).unwrap();
    match checkpoints::verify_log(&store, &signed).await {
        Err(Problem::Rewritten { size, .. }) => assert_eq!(size, n as u64),
        other => panic!("expected a rewrite to be named, got {other:?}"),
    }
    let proof = crate::proof::prove_inclusion(&store, n, &note).await;
    let error = proof.expect_err("no proof of a forged event").to_string();
    assert!(error.contains("history was rewritten"), "{error}");
    assert!(
        Checkpointer::open(&store, &cps, key, "patchday/test")
            .await
            .is_err(),
        "the checkpointer refuses to sign over the rewrite"
    );
}

/// `verify_log` (what `audit verify` runs) walks from the lowest seq stored: an event forged
/// below 1, outside the chain and the tree, is refused, not skipped.
#[tokio::test]
async fn verify_log_refuses_an_event_forged_below_the_first() {
    use crate::checkpoints::{self, Problem};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let events = build_chain(&path, 20).await;
    let store = SqliteStore::open(&url(&path)).await.unwrap();
    assert_eq!(
        checkpoints::verify_log(&store, &[]).await.unwrap().events,
        events.len() as u64
    );
    let sql = forged(0, audit::GENESIS_HASH, events[0].at);
    store
        .execute_raw(&format!(
            "BEGIN; DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete; {sql} COMMIT;"
        ))
        .await
        .unwrap();
    match checkpoints::verify_log(&store, &[]).await {
        Err(Problem::Chain(broken)) => assert_eq!(broken.seq, 0, "{broken}"),
        other => panic!("expected the forged event to be refused, got {other:?}"),
    }
}
