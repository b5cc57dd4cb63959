//! The checkpointer: signs a checkpoint of the audit log into `[audit] checkpoint_dir` every
//! `[audit] checkpoint_every` when the log grew, whenever a run's driver stops (a run ended or
//! waits), and once more at shutdown after the runs stopped, when `last_call` is cancelled
//! ([`crate::checkpoints::Checkpointer`]).
//!
//! Several daemons: only the leader signs ([`super::cluster`]); the folder must be shared. A gap
//! is visible: without a key the daemon warns at start; a key that cannot be read, a folder that
//! cannot be written, or a log that no longer extends the last checkpoint (a rolled-back or
//! rewritten database) is logged and recorded once as a `checkpoint.unavailable` audit event, and
//! nothing is signed until it is fixed.

use std::sync::Arc;

use super::Shared;
use crate::checkpoints::{self, Checkpointer};
use crate::config::AuditConfig;
use crate::store::{Change, NewEvent, Store};

/// Runs until shutdown.
pub async fn run<S: Store>(
    shared: Arc<Shared<S>>,
    audit: AuditConfig,
    last_call: tokio_util::sync::CancellationToken,
) {
    let Some(key_file) = audit.checkpoint_key_file.clone() else {
        tracing::warn!(
            "no [audit] checkpoint_key_file: the audit log is not checkpointed outside the \
             database, so a consistent rewrite by someone with write access to it would go \
             unseen (patchday audit keygen)"
        );
        return;
    };
    let mut state = State {
        checkpointer: None,
        gap: None,
    };
    loop {
        if last_call.is_cancelled() {
            // The lease may be given up already: sign if this daemon was the one signing.
            if state.checkpointer.is_some() {
                state.pass(&shared, &audit, &key_file).await;
            }
            return;
        }
        if shared.cluster.leader_epoch().is_some() {
            state.pass(&shared, &audit, &key_file).await;
        } else {
            state.checkpointer = None;
        }
        tokio::select! {
            _ = last_call.cancelled() => {}
            _ = shared.checkpoint.notified() => {}
            _ = shared.cluster.until_leader(), if shared.cluster.leader_epoch().is_none() => {}
            _ = tokio::time::sleep(audit.checkpoint_every) => {}
        }
    }
}

struct State {
    checkpointer: Option<Checkpointer>,
    /// The problem last recorded as `checkpoint.unavailable` (recorded once until it changes).
    gap: Option<String>,
}

impl State {
    async fn pass<S: Store>(
        &mut self,
        shared: &Arc<Shared<S>>,
        audit: &AuditConfig,
        key_file: &std::path::Path,
    ) {
        let store: &S = &shared.engine.store;
        if self.checkpointer.is_none() {
            let opened = match checkpoints::read_signing_key(key_file) {
                Ok(key) => Checkpointer::open(store, &audit.checkpoint_dir, key, &audit.origin)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            match opened {
                Ok(c) => self.checkpointer = Some(c),
                Err(problem) => return self.record_gap(shared, problem).await,
            }
        }
        let checkpointer = self.checkpointer.as_mut().expect("opened above");
        match checkpointer
            .checkpoint(store, shared.clock.now(), false)
            .await
        {
            Ok(Some(file)) => {
                self.gap = None;
                tracing::info!(
                    "audit checkpoint {}: {} events",
                    file.display(),
                    checkpointer.size()
                );
            }
            Ok(None) => {}
            Err(e) => {
                self.checkpointer = None;
                self.record_gap(shared, e.to_string()).await;
            }
        }
    }

    async fn record_gap<S: Store>(&mut self, shared: &Arc<Shared<S>>, problem: String) {
        tracing::error!("no audit checkpoint: {problem}");
        if self.gap.as_deref() == Some(problem.as_str()) {
            return;
        }
        let event = NewEvent {
            at: shared.clock.now(),
            actor: "engine".into(),
            action: "checkpoint.unavailable".into(),
            run_id: None,
            step_id: None,
            details: serde_json::json!({ "reason": problem }),
        };
        let change = Change {
            events: vec![event],
            ..Change::default()
        };
        if let Err(e) = shared.engine.store.commit(vec![change]).await {
            tracing::warn!("recording checkpoint.unavailable: {e}");
        }
        self.gap = Some(problem);
    }
}
