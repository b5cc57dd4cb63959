//! The hash-chained audit log (DESIGN §6): the event hash, chain verification and exports.
//! Pure functions, no I/O: the store appends events and calls [`event_hash`]; `patchday audit`
//! reads them back and calls [`verify`] and the exporters.
//!
//! # The canonical event and its hash
//!
//! `hash` is the lowercase hex SHA-256 of the UTF-8 bytes of this JSON array, written with no
//! whitespace at all:
//!
//! ```text
//! [seq,"at","actor","action",run_id,step_id,details,"prev_hash"]
//! ```
//!
//! - `seq`: the event's sequence number as a JSON integer (1, 2, 3, ...);
//! - `at`: the instant in UTC as `YYYY-MM-DDTHH:MM:SS.ffffffZ`, exactly six fractional digits
//!   (finer precision is truncated; the stores keep microseconds);
//! - `actor`, `action`: JSON strings;
//! - `run_id`, `step_id`: JSON strings, or `null` when absent;
//! - `details`: the details value in canonical JSON: object keys sorted by their UTF-8 bytes, at
//!   every depth; arrays keep their order; no whitespace; strings and numbers as `serde_json`
//!   writes them (the shortest representation that reads back to the same number);
//! - `prev_hash`: the previous event's `hash` as a JSON string, or 64 `0` characters for the
//!   first event ([`GENESIS_HASH`]).
//!
//! Strings are escaped as `serde_json` escapes them: `"` and `\` with a backslash, control
//! characters as `\n`, `\t`, ... or `\u00XX`, everything else (non-ASCII included) verbatim.
//!
//! Example: the first event `{seq: 1, at: 2026-12-08T14:00:00Z, actor: "scheduler",
//! action: "run.started", run_id: "r1", step_id: none, details: {"b": 1, "a": [true]}}` hashes
//! `[1,"2026-12-08T14:00:00.000000Z","scheduler","run.started","r1",null,{"a":[true],"b":1},"000…000"]`.
//!
//! # What verification proves
//!
//! [`verify`] recomputes every hash and checks that `seq` runs 1, 2, 3, ... without gaps,
//! duplicates or reordering, that each `prev_hash` is the previous event's hash, and that the
//! chain head the store recorded with the last append is the last event (a deleted tail shows).
//! Someone able to rewrite the whole database can rewrite the whole chain and its head too: the
//! signed checkpoints kept outside the database ([`crate::checkpoints`]) rule that out.

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::store::{ChainHead, EventRow, EventText};

/// `prev_hash` of the first event: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An instant as the audit log (and the stores) write it: UTC, exactly six fractional digits.
pub fn format_instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The canonical text of an event, whose SHA-256 is its hash (see the module documentation).
#[allow(clippy::too_many_arguments)]
pub fn canonical_event(
    seq: i64,
    at: DateTime<Utc>,
    actor: &str,
    action: &str,
    run_id: Option<&str>,
    step_id: Option<&str>,
    details: &Value,
    prev_hash: &str,
) -> String {
    let mut out = String::with_capacity(160 + prev_hash.len());
    out.push('[');
    write!(out, "{seq},").expect("writing to a String");
    push_str(&mut out, &format_instant(at));
    out.push(',');
    push_str(&mut out, actor);
    out.push(',');
    push_str(&mut out, action);
    out.push(',');
    push_opt(&mut out, run_id);
    out.push(',');
    push_opt(&mut out, step_id);
    out.push(',');
    push_canonical(&mut out, details);
    out.push(',');
    push_str(&mut out, prev_hash);
    out.push(']');
    out
}

/// The hash of an event: lowercase hex SHA-256 of [`canonical_event`].
#[allow(clippy::too_many_arguments)]
pub fn event_hash(
    seq: i64,
    at: DateTime<Utc>,
    actor: &str,
    action: &str,
    run_id: Option<&str>,
    step_id: Option<&str>,
    details: &Value,
    prev_hash: &str,
) -> String {
    let text = canonical_event(seq, at, actor, action, run_id, step_id, details, prev_hash);
    hex(&Sha256::digest(text.as_bytes()))
}

/// The hash a stored event should have, from its content and `prev_hash`.
pub fn row_hash(event: &EventRow) -> String {
    event_hash(
        event.seq,
        event.at,
        &event.actor,
        &event.action,
        event.run_id.as_deref(),
        event.step_id.as_deref(),
        &event.details,
        &event.prev_hash,
    )
}

/// Whether a stored event's text, taken as canonical (`at` and `details` as they are), hashes
/// to its `hash`.
fn text_hashes_to_its_hash(event: &EventText) -> bool {
    let mut out = String::with_capacity(200 + event.details.len());
    out.push('[');
    write!(out, "{},", event.seq).expect("writing to a String");
    push_str(&mut out, &event.at);
    out.push(',');
    push_str(&mut out, &event.actor);
    out.push(',');
    push_str(&mut out, &event.action);
    out.push(',');
    push_opt(&mut out, event.run_id.as_deref());
    out.push(',');
    push_opt(&mut out, event.step_id.as_deref());
    out.push(',');
    out.push_str(&event.details);
    out.push(',');
    push_str(&mut out, &event.prev_hash);
    out.push(']');
    hex_is(&Sha256::digest(out.as_bytes()), &event.hash)
}

/// Whether `text` is `bytes` in lowercase hex (without writing the hex out).
fn hex_is(bytes: &[u8], text: &str) -> bool {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    text.len() == 2 * bytes.len()
        && bytes
            .iter()
            .zip(text.as_bytes().chunks_exact(2))
            .all(|(b, pair)| {
                pair[0] == DIGITS[usize::from(b >> 4)] && pair[1] == DIGITS[usize::from(b & 0xf)]
            })
}

fn content_mismatch(seq: i64) -> ChainBroken {
    ChainBroken {
        seq,
        reason: "hash does not match the event's content".into(),
    }
}

/// `value` in canonical JSON: object keys sorted at every depth, no whitespace.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    push_canonical(&mut out, value);
    out
}

fn push_canonical(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => push_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_canonical(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_str(out, key);
                out.push(':');
                push_canonical(out, item);
            }
            out.push('}');
        }
    }
}

fn push_str(out: &mut String, s: &str) {
    // Most strings need no escaping: written as they are, without serde_json's allocation.
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(s).expect("a string serializes"));
    }
}

fn push_opt(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => push_str(out, s),
        None => out.push_str("null"),
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// The first bad event of a chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at seq {seq}: {reason}")]
pub struct ChainBroken {
    /// The seq of the first event that does not verify (for a deleted tail: the first missing seq).
    pub seq: i64,
    pub reason: String,
}

/// Checks a whole chain, in the order given (the store's `seq` order), against the head the
/// store recorded. Returns the number of events checked, or the first bad event.
pub fn verify(events: &[EventRow], head: Option<&ChainHead>) -> Result<usize, ChainBroken> {
    let mut chain = ChainVerifier::new();
    for event in events {
        chain.push(event)?;
    }
    chain.finish(head)
}

/// [`verify`] one event at a time: `audit verify` feeds it page by page, so that the memory
/// it needs does not grow with the log.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    /// Events checked so far.
    count: i64,
    /// The seq and hash of the last event checked (`0` and [`GENESIS_HASH`] before the first).
    last_seq: i64,
    prev_hash: String,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainVerifier {
    pub fn new() -> Self {
        Self {
            count: 0,
            last_seq: 0,
            prev_hash: GENESIS_HASH.to_string(),
        }
    }

    /// Checks the next event: its seq follows, its `prev_hash` links, its hash is its content's.
    pub fn push(&mut self, event: &EventRow) -> Result<(), ChainBroken> {
        self.check_link(event.seq, &event.prev_hash)?;
        if row_hash(event) != event.hash {
            return Err(content_mismatch(event.seq));
        }
        self.accept(event.seq, &event.hash);
        Ok(())
    }

    /// [`Self::push`] for an event as stored text: hashed as it is (the stores write `at` and
    /// `details` in the canonical form, so the text is what was hashed), and decoded and hashed
    /// as [`Self::push`] does only when that does not match (a row written otherwise, or
    /// tampered with). A match proves the text is what was hashed, so the result is the same.
    pub fn push_text(&mut self, event: &EventText) -> Result<(), ChainBroken> {
        self.check_link(event.seq, &event.prev_hash)?;
        if !text_hashes_to_its_hash(event) {
            let decoded = event.decode().map_err(|e| ChainBroken {
                seq: event.seq,
                reason: format!("the event cannot be read: {e}"),
            })?;
            if row_hash(&decoded) != event.hash {
                return Err(content_mismatch(event.seq));
            }
        }
        self.accept(event.seq, &event.hash);
        Ok(())
    }

    /// Whether `seq` follows the last event checked and `prev_hash` is that event's hash.
    fn check_link(&self, seq: i64, prev_hash: &str) -> Result<(), ChainBroken> {
        let expected = self.count + 1;
        if seq != expected {
            let prev = self.last_seq;
            let reason = match () {
                _ if self.count > 0 && seq == prev => format!("seq {seq} appears twice"),
                _ if self.count > 0 && seq < prev => {
                    format!("seq {seq} comes after seq {prev} (reordered)")
                }
                _ if seq > expected => {
                    format!("expected seq {expected}, found {seq}: event(s) missing")
                }
                _ => format!("expected seq {expected}, found {seq}"),
            };
            return Err(ChainBroken { seq, reason });
        }
        if prev_hash != self.prev_hash {
            return Err(ChainBroken {
                seq,
                reason: if self.count == 0 {
                    "prev_hash of the first event is not the genesis hash (64 zeros)".into()
                } else {
                    format!("prev_hash is not the hash of seq {}", seq - 1)
                },
            });
        }
        Ok(())
    }

    fn accept(&mut self, seq: i64, hash: &str) {
        self.count += 1;
        self.last_seq = seq;
        self.prev_hash.clear();
        self.prev_hash.push_str(hash);
    }

    /// Events checked so far.
    pub fn count(&self) -> usize {
        self.count as usize
    }

    /// Checks the end of the log against the head the store recorded.
    pub fn finish(self, head: Option<&ChainHead>) -> Result<usize, ChainBroken> {
        let last_seq = self.last_seq;
        match head {
            None if self.count == 0 => {}
            None => {
                return Err(ChainBroken {
                    seq: last_seq,
                    reason: "the log has events but no chain head was recorded".into(),
                });
            }
            Some(head) if head.seq > last_seq => {
                return Err(ChainBroken {
                    seq: last_seq + 1,
                    reason: format!(
                        "the chain head is at seq {} but the log ends at seq {last_seq}: event(s) deleted",
                        head.seq
                    ),
                });
            }
            Some(head) if head.seq < last_seq => {
                return Err(ChainBroken {
                    seq: head.seq + 1,
                    reason: format!(
                        "event(s) after the recorded chain head (seq {}) were not appended by the store",
                        head.seq
                    ),
                });
            }
            Some(head) if self.count > 0 && head.hash != self.prev_hash => {
                return Err(ChainBroken {
                    seq: last_seq,
                    reason: "the last event's hash is not the recorded chain head".into(),
                });
            }
            Some(_) => {}
        }
        Ok(self.count())
    }
}

/// Events as JSON Lines: one object per line with the fields `seq, at, actor, action, run_id,
/// step_id, details, prev_hash, hash` (`at` as in the hash; details as stored).
pub fn export_jsonl(events: &[EventRow]) -> String {
    let mut out = String::new();
    for event in events {
        out.push_str(&event_json(event).to_string());
        out.push('\n');
    }
    out
}

/// An event as one JSON object, as the JSON Lines export writes it.
pub fn event_json(event: &EventRow) -> Value {
    serde_json::json!({
        "seq": event.seq,
        "at": format_instant(event.at),
        "actor": event.actor,
        "action": event.action,
        "run_id": event.run_id,
        "step_id": event.step_id,
        "details": event.details,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    })
}

/// Reads back what [`event_json`] wrote.
pub fn event_from_json(value: &Value) -> Option<EventRow> {
    let text = |key: &str| value.get(key)?.as_str().map(str::to_string);
    Some(EventRow {
        seq: value.get("seq")?.as_i64()?,
        at: DateTime::parse_from_rfc3339(value.get("at")?.as_str()?)
            .ok()?
            .with_timezone(&Utc),
        actor: text("actor")?,
        action: text("action")?,
        run_id: text("run_id"),
        step_id: text("step_id"),
        details: value.get("details")?.clone(),
        prev_hash: text("prev_hash")?,
        hash: text("hash")?,
    })
}

/// Events as CSV (RFC 4180): a header `seq,at,actor,action,run_id,step_id,details,prev_hash,hash`,
/// then one record per event; `details` is the canonical JSON; absent ids are empty fields.
/// Fields with a comma, quote, CR or LF are quoted, quotes doubled. Lines end with CRLF.
pub fn export_csv(events: &[EventRow]) -> String {
    let mut out = String::from("seq,at,actor,action,run_id,step_id,details,prev_hash,hash\r\n");
    for event in events {
        let fields = [
            event.seq.to_string(),
            format_instant(event.at),
            event.actor.clone(),
            event.action.clone(),
            event.run_id.clone().unwrap_or_default(),
            event.step_id.clone().unwrap_or_default(),
            canonical_json(&event.details),
            event.prev_hash.clone(),
            event.hash.clone(),
        ];
        for (i, field) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_csv_field(&mut out, field);
        }
        out.push_str("\r\n");
    }
    out
}

fn push_csv_field(out: &mut String, field: &str) {
    if field.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&field.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(field);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_796_000_000 + s, 123_456_789).unwrap()
    }

    fn chain(n: i64) -> Vec<EventRow> {
        let mut prev = GENESIS_HASH.to_string();
        (1..=n)
            .map(|seq| {
                let mut e = EventRow {
                    seq,
                    at: at(seq),
                    actor: "scheduler".into(),
                    action: "step.succeeded".into(),
                    run_id: Some("r1".into()),
                    step_id: (seq % 2 == 0).then(|| format!("s{seq}")),
                    details: json!({"z": seq, "a": {"y": [1, 2.5, "x"], "b": null}}),
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                e.hash = row_hash(&e);
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    fn head(events: &[EventRow]) -> ChainHead {
        let last = events.last().unwrap();
        ChainHead {
            seq: last.seq,
            hash: last.hash.clone(),
        }
    }

    #[test]
    fn canonical_form_is_exact() {
        let text = canonical_event(
            1,
            Utc.with_ymd_and_hms(2026, 12, 8, 14, 0, 0).unwrap(),
            "scheduler",
            "run.started",
            Some("r1"),
            None,
            &json!({"b": 1, "a": [true, {"d": "é\"\n", "c": -0.5}]}),
            GENESIS_HASH,
        );
        assert_eq!(
            text,
            format!(
                "[1,\"2026-12-08T14:00:00.000000Z\",\"scheduler\",\"run.started\",\"r1\",null,\
                 {{\"a\":[true,{{\"c\":-0.5,\"d\":\"é\\\"\\n\"}}],\"b\":1}},\"{GENESIS_HASH}\"]"
            )
        );
        // A known SHA-256, so the definition cannot drift silently.
        assert_eq!(
            hex(&Sha256::digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn key_order_does_not_change_the_hash() {
        let a: Value = serde_json::from_str(r#"{"x":1,"y":{"q":2,"p":3}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"y":{"p":3,"q":2},"x":1}"#).unwrap();
        let h = |d: &Value| event_hash(1, at(0), "a", "b", None, None, d, GENESIS_HASH);
        assert_eq!(h(&a), h(&b));
        assert_ne!(h(&a), h(&json!({"x": 1})));
        assert_eq!(h(&a).len(), 64);
    }

    #[test]
    fn every_field_is_covered_by_the_hash() {
        let base = chain(1).remove(0);
        let mut variants = Vec::new();
        let mut e = base.clone();
        e.seq = 2;
        variants.push(e);
        let mut e = base.clone();
        e.at += chrono::Duration::microseconds(1);
        variants.push(e);
        let mut e = base.clone();
        e.actor.push('x');
        variants.push(e);
        let mut e = base.clone();
        e.action.push('x');
        variants.push(e);
        let mut e = base.clone();
        e.run_id = None;
        variants.push(e);
        let mut e = base.clone();
        e.step_id = Some(String::new());
        variants.push(e);
        let mut e = base.clone();
        e.details = json!({});
        variants.push(e);
        let mut e = base.clone();
        e.prev_hash = "1".repeat(64);
        variants.push(e);
        for v in variants {
            assert_ne!(row_hash(&v), base.hash, "{v:?}");
        }
    }

    #[test]
    fn a_good_chain_verifies() {
        let events = chain(20);
        assert_eq!(verify(&events, Some(&head(&events))), Ok(20));
        assert_eq!(verify(&[], None), Ok(0));
    }

    #[test]
    fn breaks_are_named_at_the_first_bad_event() {
        let events = chain(10);
        let h = head(&events);
        let broken =
            |events: &[EventRow], h: Option<&ChainHead>| verify(events, h).unwrap_err().seq;

        let mut e = events.clone();
        e[4].actor = "mallory".into();
        assert_eq!(broken(&e, Some(&h)), 5);

        let mut e = events.clone();
        e.remove(3);
        assert_eq!(broken(&e, Some(&h)), 5);

        let mut e = events.clone();
        e.swap(2, 6);
        assert_eq!(broken(&e, Some(&h)), 7);

        let mut e = events.clone();
        e.pop();
        assert_eq!(broken(&e, Some(&h)), 10);

        let mut e = events.clone();
        e.insert(5, e[5].clone());
        assert_eq!(broken(&e, Some(&h)), 6);

        assert_eq!(broken(&events, None), 10);
        assert_eq!(broken(&[], Some(&h)), 1);

        let mut e = events.clone();
        e[0].prev_hash = "f".repeat(64);
        e[0].hash = row_hash(&e[0]);
        assert_eq!(broken(&e, Some(&h)), 1);
        let err = verify(&e, Some(&h)).unwrap_err();
        assert!(err.reason.contains("prev_hash"), "{err}");
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let mut events = chain(1);
        events[0].actor = "cli:o'neil, \"bob\"\nx".into();
        events[0].details = json!({"b": "1,2", "a": 1});
        let csv = export_csv(&events);
        let mut lines = csv.split("\r\n");
        assert_eq!(
            lines.next(),
            Some("seq,at,actor,action,run_id,step_id,details,prev_hash,hash")
        );
        let record = lines.next().unwrap();
        assert!(record.starts_with("1,2026-"), "{record}");
        assert!(
            record.contains(",\"cli:o'neil, \"\"bob\"\"\nx\",step.succeeded,r1,,"),
            "{record}"
        );
        assert!(
            record.contains(",\"{\"\"a\"\":1,\"\"b\"\":\"\"1,2\"\"}\","),
            "{record}"
        );
    }

    #[test]
    fn jsonl_is_one_object_per_line() {
        let events = chain(3);
        let text = export_jsonl(&events);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        let v: Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(v["seq"], 2);
        assert_eq!(v["hash"], events[1].hash.as_str());
        assert_eq!(v["step_id"], "s2");
        assert_eq!(v["at"], format_instant(events[1].at));
    }
}

#[cfg(test)]
mod text_tests {
    use super::*;
    use serde_json::json;

    /// A chain of `n` events as the stores hand them to the walkers: details as `write`s them.
    fn texts(n: i64, write: impl Fn(&Value) -> String) -> Vec<EventText> {
        let mut prev = GENESIS_HASH.to_string();
        (1..=n)
            .map(|seq| {
                let at = DateTime::from_timestamp(1_796_000_000 + seq, 123_456_000).unwrap();
                let details = json!({"z": seq, "a": {"y": [1, 2.5, "x\"q"], "b": null}});
                let hash = event_hash(
                    seq,
                    at,
                    "engine",
                    "step.started",
                    Some("r1"),
                    None,
                    &details,
                    &prev,
                );
                EventText {
                    seq,
                    at: format_instant(at),
                    actor: "engine".into(),
                    action: "step.started".into(),
                    run_id: Some("r1".into()),
                    step_id: None,
                    details: write(&details),
                    prev_hash: std::mem::replace(&mut prev, hash.clone()),
                    hash,
                }
            })
            .collect()
    }

    fn walk(events: &[EventText]) -> Result<usize, ChainBroken> {
        let mut chain = ChainVerifier::new();
        for event in events {
            chain.push_text(event)?;
        }
        Ok(chain.count())
    }

    #[test]
    fn canonical_text_verifies_as_it_is() {
        let events = texts(5, canonical_json);
        assert!(events.iter().all(text_hashes_to_its_hash));
        assert_eq!(walk(&events), Ok(5));
    }

    #[test]
    fn other_text_of_the_same_details_verifies_by_decoding_it() {
        // Insertion order with spaces (an older store, or PostgreSQL's text): not canonical.
        let events = texts(5, |d| serde_json::to_string_pretty(d).unwrap());
        assert!(!events.iter().any(text_hashes_to_its_hash));
        assert_eq!(walk(&events), Ok(5));
    }

    #[test]
    fn edited_text_is_caught_on_both_paths() {
        for write in [canonical_json, |d: &Value| d.to_string()] {
            let mut events = texts(5, write);
            events[2].details = events[2].details.replace("2.5", "3.5");
            let broken = walk(&events).unwrap_err();
            assert_eq!(broken.seq, 3);
            assert_eq!(broken.reason, "hash does not match the event's content");
            let mut events = texts(5, write);
            events[3].details = "not json".into();
            assert_eq!(walk(&events).unwrap_err().seq, 4);
            let mut events = texts(5, write);
            events[1].at = "2026-12-08T14:00:00.000000Z".into();
            assert_eq!(walk(&events).unwrap_err().seq, 2);
        }
    }

    #[test]
    fn hex_is_matches_only_the_lowercase_hex_of_the_bytes() {
        assert!(hex_is(&[0x0f, 0xa0], "0fa0"));
        assert!(!hex_is(&[0x0f, 0xa0], "0FA0"));
        assert!(!hex_is(&[0x0f, 0xa0], "0fa"));
        assert!(!hex_is(&[0x0f, 0xa0], "0fa00"));
    }
}

#[cfg(test)]
mod float_tests {
    use serde_json::Value;

    /// Details are stored as JSON text and hashed after reading them back: every finite f64
    /// must survive the text round trip bit for bit, or a good chain would fail to verify.
    /// (This is why the engine enables serde_json's `float_roundtrip`.)
    #[test]
    fn floats_survive_the_text_round_trip() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut checked = 0;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let f = f64::from_bits(x);
            if !f.is_finite() {
                continue;
            }
            let text = serde_json::to_string(&Value::from(f)).unwrap();
            let back: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(back.as_f64().unwrap().to_bits(), f.to_bits(), "{text}");
            checked += 1;
        }
        assert!(checked > 100_000);
    }
}
