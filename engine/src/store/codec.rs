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
