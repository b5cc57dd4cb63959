//! Text forms every backend stores: run and step states, JSON columns. One definition, so
//! that both backends read and write exactly the same values.

use super::{RunState, StepState, StoreError};

pub(super) fn json_text(value: &serde_json::Value) -> String {
    value.to_string()
}

/// An audit event's details as the stores write them: canonical JSON, the form its hash covers
/// ([`crate::audit::canonical_json`]), so that the chain can be checked without parsing them.
pub(super) fn details_text(value: &serde_json::Value) -> String {
    crate::audit::canonical_json(value)
}

/// An instant written by [`crate::audit::format_instant`] (RFC 3339).
pub(super) fn parse_instant(text: &str) -> Result<chrono::DateTime<chrono::Utc>, StoreError> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| StoreError::Database(format!("bad timestamp `{text}` in the database: {e}")))
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

/// A row's conversion error carried through sqlx's `try_map` (which wants a `sqlx::Error`), so
/// that rows are converted one by one as they stream in, never all held twice (raw and
/// converted): a 100,000-host run's rows are read that way.
pub(super) fn through_sqlx(error: StoreError) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(error))
}

/// The inverse of [`through_sqlx`]: a carried conversion error comes back as it was; any
/// other error is a database error with `context`.
pub(super) fn from_sqlx(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |error| match error {
        sqlx::Error::Decode(inner) => match inner.downcast::<StoreError>() {
            Ok(carried) => *carried,
            Err(inner) => {
                StoreError::Database(format!("{context}: {}", sqlx::Error::Decode(inner)))
            }
        },
        other => StoreError::Database(format!("{context}: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conversion_error_comes_back_through_sqlx_as_it_was() {
        let bad = parse_step_state("sleeping").unwrap_err();
        let shown = bad.to_string();
        let back = from_sqlx("reading steps")(through_sqlx(bad));
        assert_eq!(back.to_string(), shown);
        let other = from_sqlx("reading steps")(sqlx::Error::RowNotFound);
        assert!(other.to_string().contains("reading steps: "), "{other}");
    }
}
