//! Expiry of approvals and tasks: fails the person-steps whose `expires` passed
//! ([`crate::run::Engine::expire_inputs`]) and drives their runs on.
//!
//! Each pass looks at the unfinished runs with a row awaiting input, and returns the earliest
//! next expiry; the task sleeps on the clock until then, or until a run starts waiting for a
//! person ([`Shared::inputs`]), or shutdown. With a virtual clock it never sleeps on the clock
//! (that would jump it to the expiry): it checks again when woken.
//!
//! Several daemons: only the leader expires ([`super::cluster`]); it also looks again every
//! lease TTL (real time), since runs driven by other daemons start waiting without waking it.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

use super::Shared;
use crate::store::{RunState, Store, StoreError};

/// Runs passes until shutdown.
pub async fn run<S: Store>(shared: Arc<Shared<S>>, virtual_clock: bool) {
    loop {
        if shared.shutdown.is_cancelled() {
            return;
        }
        if shared.cluster.leader_epoch().is_none() {
            tokio::select! {
                _ = shared.shutdown.cancelled() => return,
                _ = shared.cluster.until_leader() => continue,
            }
        }
        let next = match pass(&shared).await {
            Ok(next) => next,
            Err(e) => {
                tracing::warn!("expiry: {e}; retrying in a minute");
                Some(shared.clock.now() + TimeDelta::minutes(1))
            }
        };
        let clock = shared.clock.clone();
        let sleep = async move {
            match next {
                Some(at) if !virtual_clock => clock.sleep_until(at).await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = shared.inputs.notified() => {}
            _ = shared.cluster.sleep(shared.cluster.ttl) => {}
            _ = sleep => {}
        }
    }
}

/// Expires what is due in every run waiting for a person, drives the runs that changed, and
/// returns the earliest next expiry.
pub async fn pass<S: Store>(shared: &Arc<Shared<S>>) -> Result<Option<DateTime<Utc>>, StoreError> {
    let store = &shared.engine.store;
    let mut next: Option<DateTime<Utc>> = None;
    // Only the runs waiting for a person (an indexed query), whatever else runs or ran.
    for id in store.runs_awaiting_input().await? {
        let Some(run) = store
            .run(&id)
            .await?
            .filter(|r| r.state == RunState::Running)
        else {
            continue;
        };
        let Some(checked) = shared.checked_for_run(&run) else {
            continue;
        };
        let now = shared.clock.now();
        match shared.engine.expire_inputs(&checked, &run.id, now).await {
            Ok(expired) => {
                if !expired.expired.is_empty() {
                    for (step, host) in &expired.expired {
                        let host = if host.is_empty() {
                            String::new()
                        } else {
                            format!(" [{host}]")
                        };
                        tracing::warn!("run {}: {step}{host} expired", run.id);
                    }
                    shared.spawn_run(checked.clone(), run.id.clone());
                    shared.mail.notify_one();
                }
                if let Some(at) = expired.next {
                    next = Some(next.map_or(at, |n| n.min(at)));
                }
            }
            Err(e) => tracing::warn!("run {}: expiry: {e}", run.id),
        }
    }
    Ok(next)
}
