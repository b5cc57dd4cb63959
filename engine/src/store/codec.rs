//! Text forms every backend stores: run and step states, JSON columns. One definition, so
//! that both backends read and write exactly the same values.

use super::{RunState, StepState, StoreError};

pub(super) fn json_text(value: &serde_json::Value) -> String {
    value.to_string()
}

pub(super) fn parse_json(text: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Database(format!("bad JSON in the database: {e}")))
}

pub(super) fn run_state_str(state: RunState) -> &'static str {
    match state {
        RunState::Running => "running",
        RunState::Succeeded => "succeeded",
        RunState::Failed => "failed",
        RunState::Cancelled => "cancelled",
    }
}

pub(super) fn parse_run_state(text: &str) -> Result<RunState, StoreError> {
    Ok(match text {
        "running" => RunState::Running,
        "succeeded" => RunState::Succeeded,
        "failed" => RunState::Failed,
        "cancelled" => RunState::Cancelled,
        other => return Err(StoreError::Database(format!("unknown run state `{other}`"))),
    })
}

pub(super) fn step_state_str(state: StepState) -> &'static str {
    match state {
        StepState::Pending => "pending",
        StepState::Waiting => "waiting",
        StepState::Running => "running",
        StepState::AwaitingInput => "awaiting_input",
        StepState::Succeeded => "succeeded",
        StepState::Failed => "failed",
        StepState::Skipped => "skipped",
        StepState::Cancelled => "cancelled",
        StepState::Interrupted => "interrupted",
    }
}

pub(super) fn parse_step_state(text: &str) -> Result<StepState, StoreError> {
    Ok(match text {
        "pending" => StepState::Pending,
        "waiting" => StepState::Waiting,
        "running" => StepState::Running,
        "awaiting_input" => StepState::AwaitingInput,
        "succeeded" => StepState::Succeeded,
        "failed" => StepState::Failed,
        "skipped" => StepState::Skipped,
        "cancelled" => StepState::Cancelled,
        "interrupted" => StepState::Interrupted,
        other => {
            return Err(StoreError::Database(format!(
                "unknown step state `{other}`"
            )));
        }
    })
}

/// A Merkle node's index as stored (a signed 64-bit column).
pub(super) fn node_index(subtree: &crate::merkle::Subtree) -> Result<i64, StoreError> {
    i64::try_from(subtree.index)
        .map_err(|_| StoreError::Database(format!("Merkle node index {} too large", subtree.index)))
}

/// A stored Merkle node read back: its level, index and 32-byte hash.
pub(super) fn node_from(
    level: i64,
    index: i64,
    hash: &[u8],
) -> Result<(crate::merkle::Subtree, crate::merkle::Hash), StoreError> {
    let bad = || StoreError::Database(format!("bad Merkle node ({level}, {index})"));
    let level = u32::try_from(level).map_err(|_| bad())?;
    let index = u64::try_from(index).map_err(|_| bad())?;
    let hash = crate::merkle::Hash::try_from(hash).map_err(|_| bad())?;
    Ok((crate::merkle::Subtree::new(level, index), hash))
}
