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
//!
//! Witnesses (`[audit] witnesses`): every checkpoint the daemon writes is also queued in the
//! outbox to those addresses ([`witness_email`]: the note verbatim as the body and as a `.txt`
//! attachment), under the once-only key `checkpoint:<SHA-256 of the note>`, so a restart or
//! another daemon queuing it again adds nothing. The last checkpoint is queued before the next
//! one is signed (and again after a start), so a crash between writing a file and queuing its
//! email loses no email. Delivering a witness email appends `email.sent` to the log; a log that
//! grew by nothing else is not checkpointed again (else every witness email would cause the
//! next one): those events are covered by the next checkpoint that something else causes.

use std::sync::Arc;

use super::Shared;
use crate::checkpoints::{self, Checkpointer, StoredCheckpoint};
use crate::config::AuditConfig;
use crate::store::{Change, EmailAttachment, NewEmail, NewEvent, Store, StoreError};

/// The key prefix of witness emails (their delivery events carry the key).
const WITNESS_KEY: &str = "checkpoint:";

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
        mailed: None,
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
    /// The number of the last checkpoint queued to the witnesses by this process.
    mailed: Option<u64>,
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
                Ok(c) => {
                    self.checkpointer = Some(c);
                    self.mailed = None;
                }
                Err(problem) => return self.record_gap(shared, problem).await,
            }
        }
        if let Err(e) = self.mail_last(shared, &audit.witnesses).await {
            return tracing::warn!("queuing the last checkpoint to the witnesses: {e}");
        }
        let checkpointer = self.checkpointer.as_mut().expect("opened above");
        let last_size = checkpointer.last().map(|l| l.checkpoint.size);
        match last_size {
            Some(size) if !audit.witnesses.is_empty() => {
                match only_witness_deliveries(store, size).await {
                    Ok(true) => return,
                    Ok(false) => {}
                    Err(e) => return tracing::warn!("reading the audit log: {e}"),
                }
            }
            _ => {}
        }
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
                return self.record_gap(shared, e.to_string()).await;
            }
        }
        if let Err(e) = self.mail_last(shared, &audit.witnesses).await {
            tracing::warn!("queuing a checkpoint to the witnesses (tried again next time): {e}");
        }
    }

    /// Queues the last checkpoint to the witnesses unless this process did already.
    async fn mail_last<S: Store>(
        &mut self,
        shared: &Arc<Shared<S>>,
        witnesses: &[String],
    ) -> Result<(), StoreError> {
        let last = self.checkpointer.as_ref().and_then(Checkpointer::last);
        let Some(last) = last.filter(|l| !witnesses.is_empty() && self.mailed != Some(l.number))
        else {
            return Ok(());
        };
        let change = Change {
            emails: vec![witness_email(last, witnesses, shared.clock.now())],
            ..Change::default()
        };
        shared.engine.store.commit(vec![change]).await?;
        self.mailed = Some(last.number);
        shared.mail.notify_one();
        Ok(())
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

/// The email that hands `checkpoint` to the witnesses: the note verbatim, as the body and as
/// `<file name>.txt`; the subject names the origin and the tree size.
pub fn witness_email(
    checkpoint: &StoredCheckpoint,
    witnesses: &[String],
    now: chrono::DateTime<chrono::Utc>,
) -> NewEmail {
    let name = checkpoint.file.file_name().map_or_else(
        || format!("{:08}.checkpoint", checkpoint.number),
        |n| n.to_string_lossy().into_owned(),
    );
    NewEmail {
        run_id: None,
        to: witnesses.to_vec(),
        subject: format!(
            "[patchday] audit checkpoint {}: tree size {}",
            checkpoint.checkpoint.origin, checkpoint.checkpoint.size
        ),
        body: checkpoint.note.clone(),
        html: None,
        created_at: now,
        attachments: vec![EmailAttachment {
            filename: format!("{name}.txt"),
            content_type: "text/plain; charset=utf-8".into(),
            content: checkpoint.note.clone(),
        }],
        key: Some(format!(
            "{WITNESS_KEY}{}",
            crate::audit::hex(&crate::checkpoint::note_hash(&checkpoint.note))
        )),
    }
}

/// Events past `size` read to decide whether the log grew by more than witness deliveries.
const LOOK_AHEAD: u32 = 64;

/// True when every event after seq `size` is the mailer's record of a witness email (and
/// there is at least one): the log grew only because the last checkpoint was mailed.
async fn only_witness_deliveries<S: Store>(store: &S, size: u64) -> Result<bool, StoreError> {
    let after = i64::try_from(size).unwrap_or(i64::MAX);
    let events = store.events_after(after, LOOK_AHEAD).await?;
    Ok(!events.is_empty()
        && (events.len() as u32) < LOOK_AHEAD
        && events.iter().all(|e| {
            e.actor == "mailer"
                && e.details["key"]
                    .as_str()
                    .is_some_and(|k| k.starts_with(WITNESS_KEY))
        }))
}
