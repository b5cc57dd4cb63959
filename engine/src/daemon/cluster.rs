//! Several daemons on one database (DESIGN §5): who leads, and who drives which run.
//!
//! - Every daemon has a node id: `[server] node_id`, else `<hostname>:<pid>:<random>` ([`node_id`]).
//! - One daemon holds the `leader` lease ([`lead`]). Only it runs the scheduler and the expiry
//!   task, and it resumes the runs nobody drives: every unheld run when it takes the lease (at
//!   start, or when the previous leader stopped renewing), then, every third of the TTL, the
//!   runs whose holder stopped renewing its claim. It renews the lease every third of
//!   `[server] lease_ttl`; when a renewal fails and the lease could run out before the next
//!   one, it stops leading. The scheduler's own writes carry the lease's epoch
//!   ([`Cluster::fence`]), so a deposed leader cannot record a cycle event twice.
//! - A run is driven only under a claim ([`drive_claimed`]): whoever starts the run (the
//!   scheduler, the API), records a decision on it, or picks it up as an orphan claims it first.
//!   The claim is renewed every third of the TTL while the driver works and released when the
//!   run finishes or waits for a person. Every claim increments the run's epoch, and every commit
//!   of the driver carries it: once another daemon took the run over, the old driver writes
//!   nothing (its attempts are stopped; the new holder recovers their rows as after a crash).
//! - A daemon asked to cancel a run that another daemon holds records the request in the store;
//!   the holder sees it at its next renewal or at its release, and cancels.
//! - A decision recorded while another daemon held the run is not lost: the holder re-reads the
//!   rows it was blocked on after releasing its claim, and drives again if one moved.
//!
//! Lease times come from [`Cluster::clock`]: the real time every daemon shares (NTP), never
//! the engine's clock, which `--now` and `--virtual-clock` set for each process alone.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::clock::Clock;
use crate::config::Config;
use crate::run::{CancelBy, Outcome, RunError};
use crate::store::{ClaimScope, Fence, LEADER, RunClaim, Store, StoreError};
use crate::validate::CheckedRunbook;

/// Runs claimed per query when the leader picks orphans up.
const PICK_UP_BATCH: u32 = 50;

/// This daemon's place among the daemons sharing the database.
pub struct Cluster {
    /// The name in leases and claims.
    pub node: String,
    /// How long a lease or claim lasts without renewal (`[server] lease_ttl`).
    pub ttl: Duration,
    /// Real time, for leases (see the module docs).
    pub clock: Arc<dyn Clock>,
    /// The leader lease's epoch while this daemon holds it.
    leader: watch::Sender<Option<u64>>,
}

impl Cluster {
    pub fn new(node: String, ttl: Duration, clock: Arc<dyn Clock>) -> Cluster {
        Cluster {
            node,
            ttl,
            clock,
            leader: watch::Sender::new(None),
        }
    }

    /// The leader lease's epoch, while this daemon leads.
    pub fn leader_epoch(&self) -> Option<u64> {
        *self.leader.borrow()
    }

    /// The fence of the leader's own writes (`None` when not leading).
    pub fn fence(&self) -> Option<Fence> {
        self.leader_epoch().map(|epoch| Fence::Lease {
            name: LEADER.into(),
            epoch,
        })
    }

    /// Resolves once this daemon leads (at once if it does).
    pub async fn until_leader(&self) {
        let mut leader = self.leader.subscribe();
        let _ = leader.wait_for(Option::is_some).await;
    }

    /// How often leases and claims are renewed: a third of their TTL.
    pub fn renew_every(&self) -> Duration {
        self.ttl / 3
    }

    /// Sleeps `wait` on the lease clock.
    pub async fn sleep(&self, wait: Duration) {
        let until = crate::store::lease_end(self.clock.now(), wait);
        self.clock.sleep_until(until).await;
    }

    fn set_leader(&self, epoch: Option<u64>) {
        self.leader.send_replace(epoch);
    }

    /// `call`, given at most a third of the TTL: a database that does not answer must not keep
    /// a daemon believing it still holds what it may have lost.
    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::select! {
            result = call => result,
            () = self.sleep(self.renew_every()) => Err(StoreError::Database(
                "no answer within a third of the lease TTL".into(),
            )),
        }
    }
}

/// `[server] node_id`, else `<hostname>:<pid>:<6 random hex digits>`: new at every start.
pub fn node_id(config: &Config) -> String {
    if let Some(id) = &config.server.node_id {
        return id.clone();
    }
    let host = hostname();
    let mut random = [0u8; 3];
    let _ = getrandom::fill(&mut random);
    format!("{host}:{}:{}", std::process::id(), super::hex(&random))
}

/// The first look, before the scheduler starts (so that it knows whether it leads): take the
/// leader lease if it is free, and then resume the runs nobody holds.
pub async fn start<S: Store>(shared: &Arc<Shared<S>>) {
    let mut renewed = shared.cluster.clock.now();
    step(shared, &mut renewed).await;
    if shared.cluster.leader_epoch().is_none() && take_over_dead_local(shared).await {
        step(shared, &mut renewed).await;
    }
    if shared.cluster.leader_epoch().is_none() {
        tracing::info!(
            node = %shared.cluster.node,
            "another daemon leads: this one drives the runs it starts or is asked about"
        );
    }
}

/// When the leader lease is held by a daemon on this machine whose process is gone (a crash,
/// `kill -9`): gives its lease and its runs up at once, so that a restarted daemon goes on
/// without waiting a TTL. True when it did. A holder on another machine, or whose process
/// lives, is left alone (its lease expires or is renewed as usual).
async fn take_over_dead_local<S: Store>(shared: &Arc<Shared<S>>) -> bool {
    let store = &shared.engine.store;
    let Ok(Some(holder)) = store.lease_holder(LEADER).await else {
        return false;
    };
    if holder == shared.cluster.node || !is_dead_local(&holder) {
        return false;
    }
    let now = shared.cluster.clock.now();
    let released = store.release_lease(LEADER, &holder).await;
    let abandoned = store.abandon_runs(&holder, now).await;
    match (released, abandoned) {
        (Ok(()), Ok(runs)) => {
            tracing::info!(
                "the previous leader {holder} ran on this machine and is gone: took its lease and {runs} run(s) over"
            );
            true
        }
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!("taking over from {holder}: {e}");
            false
        }
    }
}

/// Whether `node` is a default node id (`<hostname>:<pid>:<random>`) of this machine whose
/// process no longer exists or is a zombie.
fn is_dead_local(node: &str) -> bool {
    let mut parts = node.rsplitn(3, ':');
    let (Some(_random), Some(pid), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    if !cfg!(target_os = "linux") {
        return false; // no /proc to ask
    }
    host == hostname() && pid != std::process::id() && !process_lives(pid)
}

/// Whether process `pid` exists and is not a zombie (killed, not yet reaped by its parent:
/// it holds nothing, and will never renew a lease).
fn process_lives(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) S ...`: the state follows the last `)` (comm may hold anything).
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some('Z' | 'X') | None)
}

/// This machine's host name (`localhost` if it cannot be read).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The leadership task: every third of the TTL, renews the leader lease (and picks abandoned
/// runs up) or tries to take it. Gives the lease up on shutdown.
pub async fn lead<S: Store>(shared: Arc<Shared<S>>) {
    let cluster = &shared.cluster;
    let mut renewed = cluster.clock.now();
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            _ = cluster.sleep(cluster.renew_every()) => {}
        }
        step(&shared, &mut renewed).await;
    }
    if cluster.leader_epoch().is_some() {
        cluster.set_leader(None);
        match shared
            .engine
            .store
            .release_lease(LEADER, &cluster.node)
            .await
        {
            Ok(()) => tracing::info!("gave the leader lease up"),
            Err(e) => tracing::warn!("giving the leader lease up: {e}"),
        }
    }
}

/// Renews or takes the leader lease once; picks runs up as the leader. `renewed`: when the
/// lease was last taken or renewed.
async fn step<S: Store>(shared: &Arc<Shared<S>>, renewed: &mut DateTime<Utc>) {
    let cluster = &shared.cluster;
    let store = &shared.engine.store;
    let now = cluster.clock.now();
    match cluster.leader_epoch() {
        Some(epoch) => match cluster
            .bounded(store.renew_lease(LEADER, &cluster.node, cluster.ttl, now))
            .await
        {
            Ok(Some(renewed_epoch)) if renewed_epoch == epoch => {
                *renewed = now;
                pick_up(shared, ClaimScope::Abandoned).await;
            }
            Ok(_) => {
                cluster.set_leader(None);
                tracing::warn!("no longer the leader: another daemon took the lease over");
            }
            Err(e) => {
                tracing::warn!("renewing the leader lease: {e}");
                let next = crate::store::lease_end(now, cluster.renew_every());
                if next >= crate::store::lease_end(*renewed, cluster.ttl) {
                    cluster.set_leader(None);
                    tracing::warn!("no longer the leader: the lease could not be renewed in time");
                }
            }
        },
        None => match store
            .try_acquire_lease(LEADER, &cluster.node, cluster.ttl, now)
            .await
        {
            Ok(Some(epoch)) => {
                *renewed = now;
                cluster.set_leader(Some(epoch));
                tracing::info!(node = %cluster.node, epoch, "this daemon leads: it schedules cycles and resumes runs nobody drives");
                pick_up(shared, ClaimScope::Unheld).await;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("taking the leader lease: {e}"),
        },
    }
}

/// Claims the unfinished runs in `scope` and drives each in its own task.
async fn pick_up<S: Store>(shared: &Arc<Shared<S>>, scope: ClaimScope) {
    let cluster = &shared.cluster;
    let store = &shared.engine.store;
    loop {
        let now = cluster.clock.now();
        let claims = match store
            .claim_runs(&cluster.node, cluster.ttl, now, scope, PICK_UP_BATCH)
            .await
        {
            Ok(claims) => claims,
            Err(e) => {
                tracing::warn!("picking runs up: {e}");
                return;
            }
        };
        let full = claims.len() == PICK_UP_BATCH as usize;
        for claim in claims {
            resume_claimed(shared, claim).await;
        }
        if !full {
            return;
        }
    }
}

async fn resume_claimed<S: Store>(shared: &Arc<Shared<S>>, claim: RunClaim) {
    let store = &shared.engine.store;
    let run = match store.run(&claim.run_id).await {
        Ok(Some(run)) => run,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!("run {}: {e}", claim.run_id);
            return;
        }
    };
    let checked = match shared.version_for_run(&run) {
        Ok(checked) => checked,
        Err(e) => {
            // The run's stored version cannot be rebuilt: the run cannot go on. Failed, under
            // this claim, and told to whoever the runbook in force names.
            tracing::error!("run {} cannot be resumed: {e}", run.id);
            let current = shared
                .runbooks()
                .get(&run.runbook)
                .map(|l| l.checked.clone());
            fail_under(shared, current.as_deref(), &run, &claim, &e.to_string()).await;
            return;
        }
    };
    tracing::info!(
        "resuming run {} ({}, epoch {})",
        run.id,
        run.runbook,
        claim.epoch
    );
    shared.spawn_claimed(checked, run.id.clone(), claim);
}

/// Fails run `id` (see [`crate::run::Engine::fail_run`]) under a claim taken for it now.
pub(super) async fn fail_claimed<S: Store>(
    shared: &Shared<S>,
    checked: Option<&CheckedRunbook>,
    id: &str,
    reason: &str,
) {
    let cluster = &shared.cluster;
    let store = &shared.engine.store;
    let claimed = store
        .claim_run(id, &cluster.node, cluster.ttl, cluster.clock.now())
        .await;
    let (Ok(Some(claim)), Ok(Some(run))) = (claimed, store.run(id).await) else {
        tracing::warn!("run {id}: not failed here (another daemon holds it, or it ended)");
        return;
    };
    fail_under(shared, checked, &run, &claim, reason).await;
}

/// Fails `run` under `claim` (fenced), then releases the claim.
async fn fail_under<S: Store>(
    shared: &Shared<S>,
    checked: Option<&CheckedRunbook>,
    run: &crate::store::RunRow,
    claim: &RunClaim,
    reason: &str,
) {
    let fence = Fence::Run {
        run_id: run.id.clone(),
        epoch: claim.epoch,
    };
    let engine = &shared.engine;
    if let Err(e) = engine.fail_run(checked, run, reason, Some(fence)).await {
        tracing::warn!("run {}: failing it: {e}", run.id);
    }
    shared.mail.notify_one();
    let store = &engine.store;
    if let Err(e) = store
        .release_run(&run.id, &shared.cluster.node, claim.epoch)
        .await
    {
        tracing::warn!("run {}: releasing the claim: {e}", run.id);
    }
}

/// One turn of a run task: claims the run (unless `claim` holds it already), recovers the rows
/// a previous driver left running, and drives it while renewing the claim; releases the claim
/// when the run finishes or waits. Returns whether to drive it again: a cancellation or a
/// decision came in while this daemon held the run. `cancel` is the operator's cancellation,
/// `turn` (its child) stops this turn's attempts.
pub(super) async fn drive_claimed<S: Store>(
    shared: &Arc<Shared<S>>,
    checked: &CheckedRunbook,
    id: &str,
    cancel: &CancellationToken,
    turn: &CancellationToken,
    by: &CancelBy,
    claim: Option<RunClaim>,
) -> bool {
    let cluster = &shared.cluster;
    let store = &shared.engine.store;
    let claim = match claim {
        Some(claim) => claim,
        None => {
            if cancel.is_cancelled() {
                // Recorded first: if another daemon holds the run, it cancels it.
                if let Err(e) = store.request_cancel(id, by.actor()).await {
                    tracing::warn!("run {id}: recording the cancellation: {e}");
                }
            }
            match store
                .claim_run(id, &cluster.node, cluster.ttl, cluster.clock.now())
                .await
            {
                Ok(Some(claim)) => claim,
                Ok(None) => {
                    tracing::info!("run {id} is driven by another daemon (or finished)");
                    return false;
                }
                Err(e) => {
                    tracing::warn!("run {id}: claiming it: {e}");
                    return false;
                }
            }
        }
    };
    if let Some(actor) = &claim.cancel_requested {
        by.set(actor);
        cancel.cancel();
    }
    let epoch = claim.epoch;
    let fence = Fence::Run {
        run_id: id.to_string(),
        epoch,
    };
    // The attempts' token: cancelled by an operator's cancellation (`cancel`, through `turn`),
    // when the turn's task panicked (`turn`), or alone when the claim is lost (after the driver
    // is dropped, so nothing is written).
    let attempts = turn.child_token();
    let drive = async {
        match shared
            .engine
            .recover_fenced(checked, id, Some(fence.clone()))
            .await
        {
            Ok(rows) if !rows.is_empty() => tracing::info!(
                "run {id}: {} step(s) found running, left by a stopped driver",
                rows.len()
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("run {id}: {e}");
                return Err(e);
            }
        }
        shared
            .drive_once(checked, id, &attempts, by, Some(fence))
            .await
    };
    let outcome = tokio::select! {
        biased;
        outcome = drive => Some(outcome),
        () = renew(shared, id, epoch, cancel, by) => None,
    };
    let Some(outcome) = outcome else {
        // The driver is dropped: stop what it started. Its rows stay `running` for the new holder.
        attempts.cancel();
        tracing::warn!("run {id}: the claim was lost; another daemon drives the run now");
        return false;
    };
    match outcome {
        Err(RunError::Store(StoreError::Fenced { .. })) => {
            tracing::warn!("run {id}: another daemon took the run over");
            false
        }
        Ok(Outcome::Blocked(rows)) => {
            match store.release_run(id, &cluster.node, epoch).await {
                Ok(Some(actor)) => {
                    by.set(&actor);
                    cancel.cancel();
                    return true;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!("run {id}: releasing the claim: {e}");
                    return false;
                }
            }
            // A decision recorded on another daemon while this one held the run: that daemon
            // could not claim it, so this one drives it on.
            match store.steps(id).await {
                Ok(now) => rows.iter().any(|(step, host, state)| {
                    now.iter()
                        .any(|r| &r.step == step && &r.host == host && r.state != *state)
                }),
                Err(_) => false,
            }
        }
        Ok(Outcome::Finished(_)) | Err(_) => {
            if let Err(e) = store.release_run(id, &cluster.node, epoch).await {
                tracing::warn!("run {id}: releasing the claim: {e}");
            }
            false
        }
    }
}

/// Renews the claim every third of the TTL while the run is driven; passes on a cancellation
/// requested through the store. Returns when the claim is lost: taken over, or not renewed in
/// time (the database did not answer).
async fn renew<S: Store>(
    shared: &Shared<S>,
    id: &str,
    epoch: u64,
    cancel: &CancellationToken,
    by: &CancelBy,
) {
    let cluster = &shared.cluster;
    let mut renewed = cluster.clock.now();
    loop {
        cluster.sleep(cluster.renew_every()).await;
        let now = cluster.clock.now();
        let store = &shared.engine.store;
        match cluster
            .bounded(store.renew_run(id, &cluster.node, epoch, cluster.ttl, now))
            .await
        {
            Ok(Some(claim)) => {
                renewed = now;
                if let Some(actor) = claim.cancel_requested
                    && !cancel.is_cancelled()
                {
                    by.set(&actor);
                    cancel.cancel();
                }
            }
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("run {id}: renewing the claim: {e}");
                let next = crate::store::lease_end(now, cluster.renew_every());
                if next >= crate::store::lease_end(renewed, cluster.ttl) {
                    return;
                }
            }
        }
    }
}

/// With `--virtual-clock`, a daemon that does not lead at start still jumps its clock once,
/// to the first fire due after it started (where the leader's clock goes), so that every
/// daemon's virtual time agrees and what one writes is due for the others.
pub async fn jump_like_the_leader<S: Store>(shared: &Shared<S>) {
    let first = shared
        .runbooks()
        .by_name
        .values()
        .filter_map(|loaded| {
            loaded
                .checked
                .schedule
                .fires_from(shared.started_at)
                .find(|fire| fire.blackout.is_none())
        })
        .map(|fire| fire.fires_at.to_utc())
        .filter(|at| *at > shared.started_at)
        .min();
    if let Some(at) = first {
        shared.clock.sleep_until(at).await;
    }
}

/// When this daemon stops: its claims expire now, so another daemon resumes its runs at once.
pub async fn stop<S: Store>(shared: &Shared<S>) {
    let cluster = &shared.cluster;
    match shared
        .engine
        .store
        .abandon_runs(&cluster.node, cluster.clock.now())
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::info!("{n} run claim(s) given up for another daemon to resume"),
        Err(e) => tracing::warn!("giving run claims up: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::clock::ManualClock;
    use crate::daemon::testing::until;
    use crate::daemon::{Daemon, Delivery, Runbooks, testing};
    use crate::run::RunSpec;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{EventFilter, NewDecision, RunState, StepState};

    fn t(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    /// A daemon named `node` (not started: the test calls its parts) on the SQLite file in
    /// `dir`, which other daemons of the test share, with one runbook and a 1 s lease TTL.
    async fn daemon(dir: &Path, node: &str, yaml: &str, now: &str) -> Arc<Shared<SqliteStore>> {
        let url = format!("sqlite://{}", dir.join("shared.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        let loaded = testing::loaded("rb.yaml", yaml);
        let mut runbooks = Runbooks::default();
        runbooks.by_name.insert(loaded.name().to_string(), loaded);
        let clock = Arc::new(ManualClock::new(t(now)));
        let delivery = Delivery::Folder(dir.join(format!("outbox-{node}")));
        let mut options = testing::options(clock, delivery);
        options.config.server.node_id = Some(node.into());
        options.config.server.lease_ttl = Duration::from_secs(1);
        Daemon::new(store, runbooks, options).shared
    }

    fn spec(id: &str, cycle: Option<&str>, start: &str) -> RunSpec {
        RunSpec {
            commit: None,
            id: id.into(),
            cycle: cycle.and_then(|c| c.parse().ok()),
            start: t(start),
            params: vec![],
            rerun: None,
            actor: "api:test".into(),
        }
    }

    async fn state(shared: &Shared<SqliteStore>, run: &str, step: &str) -> StepState {
        let rows = shared.engine.store.steps(run).await.unwrap();
        rows.iter().find(|r| r.step == step).unwrap().state
    }

    async fn run_state(shared: &Shared<SqliteStore>, run: &str) -> RunState {
        shared.engine.store.run(run).await.unwrap().unwrap().state
    }

    const NOW: &str = "2026-12-08T10:00:00Z";

    /// A daemon killed but not yet reaped by its parent is a zombie: dead, though its
    /// `/proc` entry is still there.
    #[test]
    fn a_zombie_process_counts_as_dead() {
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let pid = child.id();
        assert!(process_lives(pid));
        child.kill().unwrap();
        // Not reaped yet: wait until the kernel has made it a zombie.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while process_lives(pid) {
            assert!(
                std::time::Instant::now() < deadline,
                "never became a zombie"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
        assert!(is_dead_local(&format!("{}:{pid}:abcdef", hostname())));
        child.wait().unwrap();
    }

    #[test]
    fn only_a_gone_process_of_this_machine_is_dead() {
        let host = hostname();
        // PIDs never reach 2^22 + 1 on Linux (pid_max is at most 2^22).
        assert_eq!(
            is_dead_local(&format!("{host}:4194305:abcdef")),
            cfg!(target_os = "linux")
        );
        assert!(!is_dead_local(&format!(
            "{host}:{}:abcdef",
            std::process::id()
        )));
        assert!(!is_dead_local("elsewhere.example.com:4194305:abcdef"));
        assert!(!is_dead_local("node-a"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancellation_asked_of_another_daemon_reaches_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let yaml =
            "name: slow\nsteps:\n  wait:\n    uses: command\n    with: { run: \"sleep 30\" }\n";
        let x = daemon(dir.path(), "x", yaml, NOW).await;
        let y = daemon(dir.path(), "y", yaml, NOW).await;
        let checked = x.runbooks().get("slow").unwrap().checked.clone();
        x.engine
            .start(&checked, spec("r1", None, NOW))
            .await
            .unwrap();
        x.spawn_run(checked.clone(), "r1".into());
        until("the command to run on x", || async {
            state(&x, "r1", "wait").await == StepState::Running
        })
        .await;
        // y does not hold the run: it records the request, and x cancels at its next renewal.
        y.cancel_run(checked, "r1".into(), "api:alice");
        until("the run to be cancelled", || async {
            run_state(&x, "r1").await == RunState::Cancelled
        })
        .await;
        assert_eq!(state(&x, "r1", "wait").await, StepState::Cancelled);
        let events = x.engine.store.events(EventFilter::default()).await.unwrap();
        let cancelled: Vec<_> = events
            .iter()
            .filter(|e| e.action == "run.cancelled")
            .collect();
        assert_eq!(cancelled.len(), 1);
        assert_eq!(cancelled[0].actor, "api:alice");
        until("x's task to end", || async { x.active_runs().is_empty() }).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_decision_recorded_on_another_daemon_while_one_drives_is_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let go = dir.path().join("go");
        let yaml = format!(
            "name: branches\nroles:\n  cab: [cab@example.com]\nsteps:\n  approve:\n    uses: approval\n    with: {{ approvers: cab, quorum: 1 }}\n  slow:\n    uses: command\n    with: {{ run: \"while [ ! -f {} ]; do sleep 0.05; done\" }}\n  after:\n    needs: [approve, slow]\n    uses: noop\n",
            go.display()
        );
        let x = daemon(dir.path(), "x", &yaml, NOW).await;
        let y = daemon(dir.path(), "y", &yaml, NOW).await;
        let checked = x.runbooks().get("branches").unwrap().checked.clone();
        x.engine
            .start(&checked, spec("r1", None, NOW))
            .await
            .unwrap();
        x.spawn_run(checked.clone(), "r1".into());
        until("x to drive both branches", || async {
            state(&x, "r1", "approve").await == StepState::AwaitingInput
                && state(&x, "r1", "slow").await == StepState::Running
        })
        .await;
        // The decision lands on y, which cannot claim the run: x holds it.
        let decision = NewDecision {
            run_id: "r1".into(),
            step: "approve".into(),
            host: String::new(),
            recipient: String::new(),
            choice: "approve".into(),
            comment: None,
            at: t(NOW),
            actor: "api:ops".into(),
            source_ip: None,
            nonce: None,
        };
        let decided = y
            .engine
            .decide_as_operator(&checked, decision, "the CAB met by phone")
            .await;
        assert!(decided.unwrap().settled.is_some());
        y.spawn_run(checked, "r1".into());
        until("y to give up", || async { y.active_runs().is_empty() }).await;
        assert_eq!(state(&x, "r1", "after").await, StepState::Pending);
        // x's driver never saw the decision; when `slow` ends it blocks, releases, looks
        // again, and drives on.
        std::fs::write(&go, "").unwrap();
        until("the run to succeed", || async {
            run_state(&x, "r1").await == RunState::Succeeded
        })
        .await;
        let rows = x.engine.store.steps("r1").await.unwrap();
        let after = rows.iter().find(|r| r.step == "after").unwrap();
        assert_eq!((after.state, after.attempt), (StepState::Succeeded, 1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_run_left_by_a_dead_daemon_is_taken_over_by_the_leader() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = "name: left\nsteps:\n  a: { uses: noop }\n  b: { uses: noop, needs: [a] }\n";
        let x = daemon(dir.path(), "x", yaml, NOW).await;
        let y = daemon(dir.path(), "y", yaml, NOW).await;
        let checked = x.runbooks().get("left").unwrap().checked.clone();
        x.engine
            .start(&checked, spec("r1", None, NOW))
            .await
            .unwrap();
        // x claims the run and dies before driving it: it never renews its claim.
        let (store, ttl) = (&x.engine.store, x.cluster.ttl);
        let claim = store.claim_run("r1", "x", ttl, x.cluster.clock.now()).await;
        let epoch = claim.unwrap().unwrap().epoch;
        // y leads; once x's claim has expired, its next look takes the run over.
        let leadership = tokio::spawn(lead(y.clone()));
        until("the run to succeed", || async {
            run_state(&y, "r1").await == RunState::Succeeded
        })
        .await;
        assert_eq!(y.cluster.leader_epoch(), Some(1));
        let late = store
            .renew_run("r1", "x", epoch, ttl, x.cluster.clock.now())
            .await;
        assert_eq!(late.unwrap(), None, "x lost its claim");
        y.shutdown.cancel();
        leadership.await.unwrap();
        // Stopping gave the lease up: another daemon takes it at once, with a higher epoch.
        let now = x.cluster.clock.now();
        let next = store.try_acquire_lease(LEADER, "x", ttl, now).await;
        assert_eq!(next.unwrap(), Some(2));
    }

    #[tokio::test]
    async fn a_deposed_leader_records_no_cycle_event() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = "name: sched\ntimezone: UTC\nschedule:\n  - at: patch_tuesday 10:00\ncatch_up: 1h\nsteps:\n  a: { uses: noop }\n";
        // December's fire is 10:00; the daemons look at 10:30. September fired; October and
        // November were missed while nothing ran.
        let now = "2026-12-08T10:30:00Z";
        let x = daemon(dir.path(), "x", yaml, now).await;
        let y = daemon(dir.path(), "y", yaml, now).await;
        let checked = x.runbooks().get("sched").unwrap().checked.clone();
        let september = spec("september", Some("2026-09"), "2026-09-08T10:00:00Z");
        x.engine.start(&checked, september).await.unwrap();
        let store = &x.engine.store;
        let ttl = x.cluster.ttl;
        let lease_now = x.cluster.clock.now();
        let epoch = store.try_acquire_lease(LEADER, "x", ttl, lease_now).await;
        x.cluster.set_leader(epoch.unwrap());
        // x stalls past its lease; y takes the leadership over.
        let later = lease_now + chrono::TimeDelta::minutes(1);
        let epoch = store.try_acquire_lease(LEADER, "y", ttl, later).await;
        y.cluster.set_leader(epoch.unwrap());
        assert_eq!(y.cluster.leader_epoch(), Some(2));

        let missed = || async {
            let events = store.events(EventFilter::default()).await.unwrap();
            events.iter().filter(|e| e.action == "cycle.missed").count()
        };
        let december = || async {
            let runs = store.runs(10).await.unwrap();
            let cycles = runs
                .iter()
                .filter(|r| r.cycle.as_deref() == Some("2026-12"));
            cycles.count()
        };
        // x records nothing, and stops before it fires December.
        let err = super::super::scheduler::pass(&x).await.unwrap_err();
        assert!(matches!(err, StoreError::Fenced { .. }), "{err:?}");
        assert_eq!((missed().await, december().await), (0, 0));
        super::super::scheduler::pass(&y).await.unwrap();
        assert_eq!((missed().await, december().await), (2, 1));
        // Still deposed, x does nothing twice.
        let again = super::super::scheduler::pass(&x).await;
        assert!(
            matches!(again, Ok(_) | Err(StoreError::Fenced { .. })),
            "{again:?}"
        );
        assert_eq!((missed().await, december().await), (2, 1));
        x.abort_runs();
        y.abort_runs();
    }
}
