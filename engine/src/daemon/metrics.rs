//! `/metrics` (Prometheus text format 0.0.4, DESIGN §7): what the store says (runs by state,
//! step rows by state, step durations by connector, outbox depth) read at scrape time, plus
//! what only this process sees, counted in [`Counters`]: scheduler lag and pass times, rejected links,
//! runbook reloads; and panics caught, runbook versions in memory.
//!
//! Store-derived figures survive restarts and agree between daemons sharing a database;
//! process counters start at zero with the process, as Prometheus counters may.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Shared;
use crate::run::state_word;
use crate::store::{RunState, STEP_DURATION_BUCKETS_MS, StepState, Store, StoreError};

/// How many recent runs the step figures cover.
const METRIC_RUNS: u32 = 1000;

/// Upper bounds (seconds) of the scheduler lag buckets.
const LAG_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 60.0];
/// Upper bounds (seconds) of the step duration buckets: the store's, a second to a day (its
/// aggregate counts rows per bucket, migration `0017_figures`).
fn duration_bounds() -> Vec<f64> {
    STEP_DURATION_BUCKETS_MS
        .iter()
        .map(|ms| *ms as f64 / 1000.0)
        .collect()
}

/// A Prometheus histogram with fixed buckets.
#[derive(Debug, Clone, Default)]
struct Histogram {
    /// Observations at or below each bound of the bucket list (not cumulative yet).
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], value: f64) {
        if self.counts.len() != bounds.len() {
            self.counts = vec![0; bounds.len()];
        }
        if let Some(i) = bounds.iter().position(|b| value <= *b) {
            self.counts[i] += 1;
        }
        self.sum += value;
        self.count += 1;
    }

    /// Adds `count` observations of bucket `bucket` (past the last bound: +Inf only) whose
    /// values sum to `sum`.
    fn add(&mut self, bounds: &[f64], bucket: usize, count: u64, sum: f64) {
        if self.counts.len() != bounds.len() {
            self.counts = vec![0; bounds.len()];
        }
        if let Some(slot) = self.counts.get_mut(bucket) {
            *slot += count;
        }
        self.sum += sum;
        self.count += count;
    }

    /// Writes `name_bucket{labels,le=..}`, `name_sum`, `name_count`.
    fn write(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64]) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, bound) in bounds.iter().enumerate() {
            cumulative += self.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// What this process counts (the rest of `/metrics` is read from the store).
#[derive(Debug, Default)]
pub struct Counters {
    /// Due time of a cycle to the start of its run, in seconds.
    scheduler_lag: Mutex<Histogram>,
    /// How long each scheduler pass took (real time), in seconds.
    scheduler_pass: Mutex<Histogram>,
    /// Refused link requests by reason (`expired`, `used`, `forged`, ...).
    link_rejections: Mutex<BTreeMap<String, u64>>,
    /// Runbook folder reloads, by outcome.
    reloads_ok: AtomicU64,
    reloads_rejected: AtomicU64,
    /// Emails sent again after a delivery was cut off (the server may have had them).
    possible_duplicates: AtomicU64,
}

impl Counters {
    /// A cycle due at some time started `lag_seconds` later.
    pub fn scheduler_lag(&self, lag_seconds: f64) {
        lock(&self.scheduler_lag).observe(LAG_BUCKETS, lag_seconds.max(0.0));
    }

    /// A scheduler pass took `seconds` (real time, not the engine's clock).
    pub fn scheduler_pass(&self, seconds: f64) {
        lock(&self.scheduler_pass).observe(LAG_BUCKETS, seconds.max(0.0));
    }

    /// A link request was refused for `reason`.
    pub fn link_rejected(&self, reason: &str) {
        *lock(&self.link_rejections)
            .entry(reason.to_string())
            .or_default() += 1;
    }

    /// An email found mid-delivery is sent again.
    pub fn email_possible_duplicate(&self) {
        self.possible_duplicates.fetch_add(1, Ordering::Relaxed);
    }

    /// The runbooks folder was read again; `rejected` files were left out.
    pub fn reloaded(&self, rejected: usize) {
        self.reloads_ok.fetch_add(1, Ordering::Relaxed);
        self.reloads_rejected
            .fetch_add(rejected as u64, Ordering::Relaxed);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The whole `/metrics` text.
pub async fn text<S: Store>(shared: &Shared<S>) -> Result<String, StoreError> {
    let mut out = String::new();
    store_figures(shared, &mut out).await?;
    process_figures(shared, &mut out);
    Ok(out)
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

async fn store_figures<S: Store>(shared: &Shared<S>, out: &mut String) -> Result<(), StoreError> {
    let store = &shared.engine.store;
    let mut runs: BTreeMap<&str, u64> = [
        RunState::Running,
        RunState::Succeeded,
        RunState::Failed,
        RunState::Cancelled,
    ]
    .into_iter()
    .map(|s| (s.as_str(), 0))
    .collect();
    for (state, count) in store.run_counts().await? {
        *runs.entry(state.as_str()).or_default() += count;
    }
    let (steps, durations) = step_figures(shared, &duration_bounds()).await?;
    let outbox = store.outbox_figures(shared.clock.now()).await?;

    header(out, "patchday_runs", "gauge", "Runs by state.");
    for (state, n) in &runs {
        let _ = writeln!(out, "patchday_runs{{state=\"{state}\"}} {n}");
    }
    header(
        out,
        "patchday_step_rows",
        "gauge",
        &format!("Step rows by state (the {METRIC_RUNS} most recent runs)."),
    );
    for (state, n) in &steps {
        let _ = writeln!(out, "patchday_step_rows{{state=\"{state}\"}} {n}");
    }
    header(
        out,
        "patchday_step_duration_seconds",
        "histogram",
        &format!(
            "Duration of the last attempt of finished step rows, by connector (the {METRIC_RUNS} most recent runs)."
        ),
    );
    let bounds = duration_bounds();
    for (uses, histogram) in &durations {
        let labels = format!("uses=\"{uses}\"");
        histogram.write(out, "patchday_step_duration_seconds", &labels, &bounds);
    }
    header(
        out,
        "patchday_outbox_depth",
        "gauge",
        "Emails not sent yet.",
    );
    let _ = writeln!(out, "patchday_outbox_depth {}", outbox.depth);
    header(
        out,
        "patchday_outbox_due",
        "gauge",
        "Emails not sent yet whose attempt is due.",
    );
    let _ = writeln!(out, "patchday_outbox_due {}", outbox.due);
    header(
        out,
        "patchday_emails_dead_letters",
        "gauge",
        "Emails given up: the SMTP server refused them for good (the committee was told).",
    );
    let _ = writeln!(out, "patchday_emails_dead_letters {}", outbox.dead);
    Ok(())
}

/// Step rows by state and step durations by connector over the [`METRIC_RUNS`] most recent
/// runs, from the store's aggregate (a few rows per step of each run, whatever its hosts). A
/// step's connector is read from the runbook in force (`milestone` for a step it no longer has).
async fn step_figures<S: Store>(
    shared: &Shared<S>,
    bounds: &[f64],
) -> Result<(BTreeMap<&'static str, u64>, BTreeMap<String, Histogram>), StoreError> {
    let mut steps: BTreeMap<&str, u64> = BTreeMap::new();
    let mut durations: BTreeMap<String, Histogram> = BTreeMap::new();
    let runbooks = shared.runbooks();
    for figure in shared.engine.store.step_figures(METRIC_RUNS).await? {
        *steps.entry(state_word(figure.state)).or_default() += figure.rows;
        let Some(bucket) = figure.bucket else {
            continue;
        };
        if !matches!(figure.state, StepState::Succeeded | StepState::Failed) {
            continue;
        }
        let uses = runbooks
            .get(&figure.runbook)
            .and_then(|loaded| crate::run::uses_of(&loaded.checked, &figure.step))
            .unwrap_or_else(|| "milestone".into());
        durations.entry(uses).or_default().add(
            bounds,
            bucket,
            figure.rows,
            figure.millis as f64 / 1000.0,
        );
    }
    Ok((steps, durations))
}

fn process_figures<S: Store>(shared: &Shared<S>, out: &mut String) {
    header(
        out,
        "patchday_leader",
        "gauge",
        "1 while this daemon holds the leader lease (it schedules cycles), else 0.",
    );
    let leads = u8::from(shared.cluster.leader_epoch().is_some());
    let _ = writeln!(out, "patchday_leader {leads}");
    header(
        out,
        "patchday_runs_driven",
        "gauge",
        "Runs this daemon drives now (it holds their claims).",
    );
    let _ = writeln!(out, "patchday_runs_driven {}", shared.active_runs().len());
    header(
        out,
        "patchday_panics_total",
        "counter",
        "Panics caught in run tasks and connector attempts since start (each one was turned into an error; the daemon went on).",
    );
    let _ = writeln!(out, "patchday_panics_total {}", shared.engine.panics());
    header(
        out,
        "patchday_runbook_versions",
        "gauge",
        "Runbook versions held in memory: those in force and those of unfinished runs.",
    );
    let _ = writeln!(
        out,
        "patchday_runbook_versions {}",
        shared.versions_in_memory()
    );
    let runbooks = shared.runbooks();
    header(
        out,
        "patchday_runbooks",
        "gauge",
        "Runbooks in the folder, by status.",
    );
    let _ = writeln!(
        out,
        "patchday_runbooks{{status=\"loaded\"}} {}",
        runbooks.by_name.len()
    );
    let _ = writeln!(
        out,
        "patchday_runbooks{{status=\"rejected\"}} {}",
        runbooks.rejected.len()
    );
    let counters = &shared.counters;
    header(
        out,
        "patchday_runbook_reloads_total",
        "counter",
        "Reloads of the runbooks folder since start.",
    );
    let _ = writeln!(
        out,
        "patchday_runbook_reloads_total {}",
        counters.reloads_ok.load(Ordering::Relaxed)
    );
    header(
        out,
        "patchday_runbook_rejections_total",
        "counter",
        "Runbook files rejected by reloads since start.",
    );
    let _ = writeln!(
        out,
        "patchday_runbook_rejections_total {}",
        counters.reloads_rejected.load(Ordering::Relaxed)
    );
    header(
        out,
        "patchday_emails_possible_duplicates_total",
        "counter",
        "Emails sent again after a delivery was cut off (the server may have had them).",
    );
    let _ = writeln!(
        out,
        "patchday_emails_possible_duplicates_total {}",
        counters.possible_duplicates.load(Ordering::Relaxed)
    );
    header(
        out,
        "patchday_scheduler_lag_seconds",
        "histogram",
        "From a cycle's due time to the start of its run (on the daemon's clock).",
    );
    let lag = lock(&counters.scheduler_lag).clone();
    lag.write(out, "patchday_scheduler_lag_seconds", "", LAG_BUCKETS);
    for (name, help, counter) in [
        (
            "patchday_http_connections_evicted_total",
            "Idle HTTP connections closed to make room for a new one at the connection cap.",
            &super::http::serve::EVICTED_CONNECTIONS,
        ),
        (
            "patchday_http_connections_refused_total",
            "New HTTP connections closed at the cap because every open one was busy.",
            &super::http::serve::REFUSED_CONNECTIONS,
        ),
    ] {
        header(out, name, "counter", help);
        let _ = writeln!(out, "{name} {}", counter.load(Ordering::Relaxed));
    }
    header(
        out,
        "patchday_scheduler_pass_seconds",
        "histogram",
        "How long each scheduler pass took (real time): what it reads grows with what is active, not with history.",
    );
    let passes = lock(&counters.scheduler_pass).clone();
    passes.write(out, "patchday_scheduler_pass_seconds", "", LAG_BUCKETS);
    header(
        out,
        "patchday_link_rejections_total",
        "counter",
        "Refused approval and task link requests since start, by reason.",
    );
    for (reason, n) in lock(&counters.link_rejections).iter() {
        let _ = writeln!(
            out,
            "patchday_link_rejections_total{{reason=\"{reason}\"}} {n}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_is_cumulative_and_counts_values_above_every_bucket() {
        let mut h = Histogram::default();
        for v in [0.001, 0.02, 0.02, 7.0, 120.0] {
            h.observe(LAG_BUCKETS, v);
        }
        let mut out = String::new();
        h.write(&mut out, "lag", "", LAG_BUCKETS);
        assert!(out.contains("lag_bucket{le=\"0.005\"} 1\n"), "{out}");
        assert!(out.contains("lag_bucket{le=\"0.025\"} 3\n"), "{out}");
        assert!(out.contains("lag_bucket{le=\"60\"} 4\n"), "{out}");
        assert!(out.contains("lag_bucket{le=\"+Inf\"} 5\n"), "{out}");
        assert!(out.contains("lag_count 5\n"), "{out}");
        let mut labelled = String::new();
        h.write(&mut labelled, "d", "uses=\"command\"", LAG_BUCKETS);
        assert!(
            labelled.contains("d_bucket{uses=\"command\",le=\"+Inf\"} 5\n"),
            "{labelled}"
        );
        assert!(
            labelled.contains("d_count{uses=\"command\"} 5\n"),
            "{labelled}"
        );
    }
}
