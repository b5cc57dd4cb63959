//! Secret values known to a run, and their redaction from everything a connector returns or logs.

use std::collections::BTreeMap;
use std::fmt;

/// What a redacted secret is replaced with.
pub const REDACTED: &str = "***";

/// Secret values by name (e.g. `smtp-password`, `params.api_token`).
///
/// Values never appear in outputs, errors or log lines: connectors pass everything they return
/// or log through [`Secrets::redact`]. `Debug` prints the names only.
#[derive(Clone, Default)]
pub struct Secrets {
    values: BTreeMap<String, String>,
}

impl Secrets {
    /// An empty set of secrets.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a secret.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.values.insert(name.into(), value.into());
    }

    /// Builder form of [`Secrets::insert`].
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.insert(name, value);
        self
    }

    /// Adds every secret of `other` whose name is not taken here (what is here wins, so a
    /// value known here is never dropped from redaction).
    pub fn merge(&mut self, other: &Secrets) {
        for (name, value) in &other.values {
            self.values
                .entry(name.clone())
                .or_insert_with(|| value.clone());
        }
    }

    /// The value of a secret, for the connector that needs it (SMTP password, API token).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// `text` with every secret value replaced by `***`, longest values first so that a
    /// secret containing another is hidden whole.
    pub fn redact(&self, text: &str) -> String {
        let mut values: Vec<&str> = self
            .values
            .values()
            .map(String::as_str)
            .filter(|v| !v.is_empty())
            .collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        let mut out = text.to_string();
        for value in values {
            if out.contains(value) {
                out = out.replace(value, REDACTED);
            }
        }
        out
    }

    /// Redacts every string inside a JSON value, keys included.
    pub fn redact_json(&self, value: serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::String(s) => Value::String(self.redact(&s)),
            Value::Array(items) => {
                Value::Array(items.into_iter().map(|v| self.redact_json(v)).collect())
            }
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(k, v)| (self.redact(&k), self.redact_json(v)))
                    .collect(),
            ),
            other => other,
        }
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.values.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_every_value_longest_first() {
        let s = Secrets::new()
            .with("a", "hunter2")
            .with("b", "hunter2-long");
        assert_eq!(s.redact("x hunter2-long y hunter2"), "x *** y ***");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn merge_adds_what_is_missing_and_keeps_what_is_there() {
        let mut run = Secrets::new().with("token", "run-value");
        let wide = Secrets::new()
            .with("token", "other-value")
            .with("config:smtp_password", "pw");
        run.merge(&wide);
        assert_eq!(run.get("token"), Some("run-value"));
        assert_eq!(run.get("config:smtp_password"), Some("pw"));
        assert_eq!(run.redact("run-value pw"), "*** ***");
    }

    #[test]
    fn redact_json_walks_nested_values() {
        let s = Secrets::new().with("t", "tok");
        let v = s.redact_json(serde_json::json!({ "a": ["tok", { "tok": "b tok" }] }));
        assert_eq!(v, serde_json::json!({ "a": ["***", { "***": "b ***" }] }));
    }
}
