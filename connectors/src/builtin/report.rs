//! `report`: the cycle report an auditor asks for, rendered to Markdown and HTML with
//! handlebars, written to `output` and emailed as attachments to `to`. Idempotent (rendering
//! and writing the same report again changes nothing; a resent email keeps its Message-ID).
//!
//! The engine builds a [`CycleReport`] from its records and passes it as the `report` key of
//! the inputs, beside the step's `with:` ([`ReportInputs`]). The default templates are
//! `connectors/templates/report.{md,html}.hbs`; `template` names a runbook-relative override
//! (a name containing `.html` replaces the HTML template, any other the Markdown one). Templates
//! see the fields of the report view: `runbook`, `cycle`, `patch_tuesday`, `generated_at`,
//! `run_id`, `hosts[]` (`host`, `status`, `time_to_patched`), `rows[]` (`host`, `step`,
//! `status`, `reason`, `approver`, `started`, `finished`, `duration`), `approvals[]` (`step`,
//! `who`, `decision`, `when`, `from_ip`), `overdue[]` (`step`, `host`, `deadline`, `finished`),
//! `totals` (`hosts`, `patched`, `failed`, `excepted`, `skipped`) and `sla` (null without a
//! patch SLA; else `severity`, `released`, `deadline`, `late` (names), `late_count`, `hosts[]`
//! (`host`, `patched_at`, `time_to_patch`, `within`, `reason`)).
//!
//! With `output`, the report's data is also written as JSON beside it (`<stem>.json`), and the
//! email attaches it. Outputs `totals`, `sla` (when declared), `markdown_path` / `html_path` /
//! `json_path` (when written) and `emailed_to`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::builtin::email::{Attachment, OutgoingEmail, message_key, send_email};
use crate::catalog::ConnectorSpec;
use crate::inputs::{ReportFormat, ReportInputs};
use crate::runtime::{
    BoxFuture, Connector, ConnectorError, Context, Outputs, parse_inputs, spec_of, until_cancelled,
};

const MARKDOWN_TEMPLATE: &str = include_str!("../../templates/report.md.hbs");
const HTML_TEMPLATE: &str = include_str!("../../templates/report.html.hbs");

/// What became of a host in a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostStatus {
    /// A step that changes the host (a `command`) succeeded on it.
    Patched,
    /// A step that does not patch (a check, a snapshot, an email) succeeded for it.
    Succeeded,
    Failed,
    /// Left out of the fan-out by an inventory exception.
    Excepted,
    Skipped,
}

impl HostStatus {
    fn as_str(self) -> &'static str {
        match self {
            HostStatus::Patched => "patched",
            HostStatus::Succeeded => "succeeded",
            HostStatus::Failed => "failed",
            HostStatus::Excepted => "excepted",
            HostStatus::Skipped => "skipped",
        }
    }
}

/// One host in one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostRow {
    pub host: String,
    pub step: String,
    pub status: HostStatus,
    /// Why it failed, was excepted or skipped.
    #[serde(default)]
    pub reason: Option<String>,
    /// Who approved the exception (excepted hosts) or the step.
    #[serde(default)]
    pub approver: Option<String>,
    #[serde(default)]
    pub started: Option<DateTime<FixedOffset>>,
    #[serde(default)]
    pub finished: Option<DateTime<FixedOffset>>,
}

/// One approval decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    pub step: String,
    pub who: String,
    pub decision: String,
    pub when: DateTime<FixedOffset>,
    /// The source IP the decision came from.
    #[serde(default)]
    pub from_ip: Option<String>,
}

/// A step that missed its deadline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverdueStep {
    pub step: String,
    #[serde(default)]
    pub host: Option<String>,
    pub deadline: DateTime<FixedOffset>,
    #[serde(default)]
    pub finished: Option<DateTime<FixedOffset>>,
}

/// The cycle report, built by the engine from the run's records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CycleReport {
    pub runbook: String,
    /// "2026-12"; empty for a manual run, which has no cycle.
    pub cycle: String,
    pub patch_tuesday: NaiveDate,
    pub generated_at: DateTime<FixedOffset>,
    #[serde(default)]
    pub run_id: Option<String>,
    /// Per host and step.
    #[serde(default)]
    pub rows: Vec<HostRow>,
    #[serde(default)]
    pub approvals: Vec<ApprovalRecord>,
    #[serde(default)]
    pub overdue: Vec<OverdueStep>,
    /// Each host's time to patch against the runbook's patch SLA, when it declares one.
    #[serde(default)]
    pub sla: Option<SlaReport>,
}

/// The patch SLA of the run: its window and each host against it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaReport {
    /// `critical`, `important`, …
    pub severity: String,
    /// The release the clock starts at (Patch Tuesday 00:00, or the `released` param).
    pub released: DateTime<FixedOffset>,
    pub deadline: DateTime<FixedOffset>,
    pub hosts: Vec<SlaHost>,
}

/// One host against the SLA.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaHost {
    pub host: String,
    /// When its last step finished.
    #[serde(default)]
    pub patched_at: Option<DateTime<FixedOffset>>,
    /// Why it is late (patched after the deadline, a step failed, not finished); `None`: within.
    #[serde(default)]
    pub late_reason: Option<String>,
}

impl CycleReport {
    /// "monthly 2026-12", or the runbook alone for a manual run.
    pub fn label(&self) -> String {
        match self.cycle.as_str() {
            "" => self.runbook.clone(),
            cycle => format!("{} {cycle}", self.runbook),
        }
    }
}

/// Counts of hosts by their overall status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub hosts: usize,
    pub patched: usize,
    /// Hosts whose steps all succeeded without one that patches them (checks only, say).
    pub succeeded: usize,
    pub failed: usize,
    pub excepted: usize,
    pub skipped: usize,
}

/// A host's overall outcome across the cycle.
#[derive(Debug, Clone, Serialize)]
struct HostSummary {
    host: String,
    status: &'static str,
    time_to_patched: String,
}

#[derive(Debug, Clone, Serialize)]
struct RowView {
    host: String,
    step: String,
    status: &'static str,
    reason: String,
    approver: String,
    started: String,
    finished: String,
    duration: String,
}

/// What the templates see: every field present, missing values as "—".
#[derive(Debug, Clone, Serialize)]
struct ReportView {
    runbook: String,
    cycle: String,
    patch_tuesday: String,
    generated_at: String,
    run_id: String,
    hosts: Vec<HostSummary>,
    rows: Vec<RowView>,
    approvals: Vec<BTreeMap<&'static str, String>>,
    overdue: Vec<BTreeMap<&'static str, String>>,
    totals: Totals,
    sla: Option<SlaView>,
}

/// The SLA section as the templates see it.
#[derive(Debug, Clone, Serialize)]
struct SlaView {
    severity: String,
    released: String,
    deadline: String,
    /// `host`, `patched_at`, `time_to_patch` (from the release), `within` (`yes` / `LATE`),
    /// `reason`.
    hosts: Vec<BTreeMap<&'static str, String>>,
    /// The late hosts' names, comma-separated ("none" when none is).
    late: String,
    late_count: usize,
}

fn sla_view(sla: &SlaReport) -> SlaView {
    let late: Vec<&str> = sla
        .hosts
        .iter()
        .filter(|h| h.late_reason.is_some())
        .map(|h| h.host.as_str())
        .collect();
    let hosts = sla
        .hosts
        .iter()
        .map(|h| {
            let to_patch = h
                .patched_at
                .filter(|_| {
                    h.late_reason
                        .as_deref()
                        .is_none_or(|r| r.starts_with("patched"))
                })
                .map(|at| human_duration(at - sla.released));
            BTreeMap::from([
                ("host", h.host.clone()),
                ("patched_at", time(&h.patched_at)),
                ("time_to_patch", text(&to_patch)),
                (
                    "within",
                    if h.late_reason.is_some() {
                        "LATE"
                    } else {
                        "yes"
                    }
                    .to_string(),
                ),
                ("reason", text(&h.late_reason)),
            ])
        })
        .collect();
    SlaView {
        severity: sla.severity.clone(),
        released: time(&Some(sla.released)),
        deadline: time(&Some(sla.deadline)),
        hosts,
        late: if late.is_empty() {
            "none".into()
        } else {
            late.join(", ")
        },
        late_count: late.len(),
    }
}

const NONE: &str = "—";

fn time(t: &Option<DateTime<FixedOffset>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M %:z").to_string())
        .unwrap_or_else(|| NONE.into())
}

fn text(t: &Option<String>) -> String {
    t.clone().unwrap_or_else(|| NONE.into())
}

/// "3d 4h 5m", "42m 10s".
pub fn human_duration(d: chrono::Duration) -> String {
    let secs = d.num_seconds().max(0);
    let (days, hours, mins, s) = (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    match (days, hours) {
        (0, 0) => format!("{mins}m {s}s"),
        (0, _) => format!("{hours}h {mins}m"),
        _ => format!("{days}d {hours}h {mins}m"),
    }
}

impl CycleReport {
    /// Each host's overall status: failed if any step failed, patched if any step patched it,
    /// succeeded if some other step succeeded for it, excepted if it was only excepted, else
    /// skipped.
    fn host_status(rows: &[&HostRow]) -> HostStatus {
        let has = |s| rows.iter().any(|r| r.status == s);
        if has(HostStatus::Failed) {
            HostStatus::Failed
        } else if has(HostStatus::Patched) {
            HostStatus::Patched
        } else if has(HostStatus::Succeeded) {
            HostStatus::Succeeded
        } else if has(HostStatus::Excepted) {
            HostStatus::Excepted
        } else {
            HostStatus::Skipped
        }
    }

    /// From Patch Tuesday 00:00 (in the offset of the last finish) to the last patched finish;
    /// a host patched before Patch Tuesday (an emergency) says how long before, not "0m 0s".
    fn time_to_patched(&self, rows: &[&HostRow]) -> Option<String> {
        let last = rows
            .iter()
            .filter(|r| r.status == HostStatus::Patched)
            .filter_map(|r| r.finished)
            .max()?;
        let start = self
            .patch_tuesday
            .and_hms_opt(0, 0, 0)?
            .and_local_timezone(*last.offset())
            .single()?;
        Some(if last >= start {
            human_duration(last - start)
        } else {
            format!("{} before Patch Tuesday", human_duration(start - last))
        })
    }

    fn hosts(&self) -> (Vec<HostSummary>, Totals) {
        let mut by_host: BTreeMap<&str, Vec<&HostRow>> = BTreeMap::new();
        for row in &self.rows {
            by_host.entry(row.host.as_str()).or_default().push(row);
        }
        let mut totals = Totals::default();
        let mut hosts = Vec::new();
        for (host, rows) in by_host {
            let status = Self::host_status(&rows);
            totals.hosts += 1;
            match status {
                HostStatus::Patched => totals.patched += 1,
                HostStatus::Succeeded => totals.succeeded += 1,
                HostStatus::Failed => totals.failed += 1,
                HostStatus::Excepted => totals.excepted += 1,
                HostStatus::Skipped => totals.skipped += 1,
            }
            let ttp = match status {
                HostStatus::Patched => self.time_to_patched(&rows),
                _ => None,
            };
            hosts.push(HostSummary {
                host: host.to_string(),
                status: status.as_str(),
                time_to_patched: text(&ttp),
            });
        }
        (hosts, totals)
    }

    fn view(&self) -> ReportView {
        let (hosts, totals) = self.hosts();
        ReportView {
            runbook: self.runbook.clone(),
            cycle: self.cycle.clone(),
            patch_tuesday: self.patch_tuesday.to_string(),
            generated_at: time(&Some(self.generated_at)),
            run_id: text(&self.run_id),
            hosts,
            rows: self.rows.iter().map(row_view).collect(),
            approvals: self.approvals.iter().map(approval_view).collect(),
            overdue: self.overdue.iter().map(overdue_view).collect(),
            totals,
            sla: self.sla.as_ref().map(sla_view),
        }
    }

    /// Counts of hosts by overall status.
    pub fn totals(&self) -> Totals {
        self.hosts().1
    }
}

fn row_view(r: &HostRow) -> RowView {
    let duration = match (r.started, r.finished) {
        (Some(s), Some(f)) => human_duration(f - s),
        _ => NONE.into(),
    };
    RowView {
        host: r.host.clone(),
        step: r.step.clone(),
        status: r.status.as_str(),
        reason: text(&r.reason),
        approver: text(&r.approver),
        started: time(&r.started),
        finished: time(&r.finished),
        duration,
    }
}

fn approval_view(a: &ApprovalRecord) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("step", a.step.clone()),
        ("who", a.who.clone()),
        ("decision", a.decision.clone()),
        ("when", time(&Some(a.when))),
        ("from_ip", text(&a.from_ip)),
    ])
}

fn overdue_view(o: &OverdueStep) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("step", o.step.clone()),
        ("host", text(&o.host)),
        ("deadline", time(&Some(o.deadline))),
        ("finished", time(&o.finished)),
    ])
}

/// The report rendered in the requested formats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderedReport {
    pub markdown: Option<String>,
    pub html: Option<String>,
}

/// A template given in place of a default: its name (decides Markdown or HTML) and source.
#[derive(Debug, Clone)]
pub struct TemplateOverride {
    pub name: String,
    pub source: String,
}

impl TemplateOverride {
    fn is_html(&self) -> bool {
        self.name.contains(".html")
    }
}

/// Renders `report` in `format` with the default templates, or `custom` in place of the one
/// its name selects. Strict mode: an unknown variable is an error.
pub fn render_report(
    report: &CycleReport,
    format: ReportFormat,
    custom: Option<&TemplateOverride>,
) -> Result<RenderedReport, ConnectorError> {
    let view = report.view();
    let pick = |html: bool, default: &'static str| match custom {
        Some(c) if c.is_html() == html => (c.source.as_str(), c.name.as_str()),
        _ => (
            default,
            if html {
                "report.html.hbs"
            } else {
                "report.md.hbs"
            },
        ),
    };
    let wants = |f| format == ReportFormat::Both || format == f;
    let mut out = RenderedReport::default();
    if wants(ReportFormat::Markdown) {
        let (source, name) = pick(false, MARKDOWN_TEMPLATE);
        out.markdown = Some(render(source, name, &view, false)?);
    }
    if wants(ReportFormat::Html) {
        let (source, name) = pick(true, HTML_TEMPLATE);
        out.html = Some(render(source, name, &view, true)?);
    }
    Ok(out)
}

fn render(
    source: &str,
    name: &str,
    view: &ReportView,
    html: bool,
) -> Result<String, ConnectorError> {
    let mut hb = handlebars::Handlebars::new();
    hb.set_strict_mode(true);
    if !html {
        hb.register_escape_fn(markdown_cell);
    }
    hb.render_template(source, view)
        .map_err(|e| ConnectorError::Fatal(format!("report template {name}: {e}")))
}

/// Keeps a value inside its Markdown table cell.
fn markdown_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The report, the step's inputs, split from what the engine passed.
fn split_inputs(inputs: &serde_json::Value) -> Result<(ReportInputs, CycleReport), ConnectorError> {
    let mut map = inputs.as_object().cloned().unwrap_or_default();
    let report = map.remove("report").ok_or_else(|| {
        ConnectorError::Fatal("report: the engine passes the cycle report as `report`".into())
    })?;
    let report: CycleReport = serde_json::from_value(report)
        .map_err(|e| ConnectorError::Fatal(format!("report: invalid cycle report: {e}")))?;
    let inputs: ReportInputs = parse_inputs("report", &serde_json::Value::Object(map))?;
    Ok((inputs, report))
}

fn load_override(
    inputs: &ReportInputs,
    ctx: &Context,
) -> Result<Option<TemplateOverride>, ConnectorError> {
    let Some(name) = &inputs.template else {
        return Ok(None);
    };
    let source = ctx.read_text(name).map_err(|e| {
        ConnectorError::Fatal(format!(
            "cannot read report template {}: {e}",
            ctx.resolve_path(name).display()
        ))
    })?;
    Ok(Some(TemplateOverride {
        name: name.clone(),
        source,
    }))
}

/// Where each format goes: `output` itself for one format; `<stem>.md` and `<stem>.html`
/// beside it for both.
fn output_paths(output: &Path, format: ReportFormat) -> (Option<PathBuf>, Option<PathBuf>) {
    match format {
        ReportFormat::Markdown => (Some(output.to_path_buf()), None),
        ReportFormat::Html => (None, Some(output.to_path_buf())),
        ReportFormat::Both => (
            Some(output.with_extension("md")),
            Some(output.with_extension("html")),
        ),
    }
}

fn write(path: &Path, content: &str) -> Result<(), ConnectorError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| ConnectorError::Fatal(format!("cannot create {}: {e}", dir.display())))?;
    }
    std::fs::write(path, content)
        .map_err(|e| ConnectorError::Fatal(format!("cannot write {}: {e}", path.display())))
}

fn attachments(report: &CycleReport, rendered: &RenderedReport, json: &str) -> Vec<Attachment> {
    let stem = format!("patch-report-{}", report.label()).replace(' ', "-");
    let mut out = Vec::new();
    if let Some(md) = &rendered.markdown {
        out.push(Attachment {
            filename: format!("{stem}.md"),
            content_type: "text/markdown; charset=utf-8".into(),
            content: md.clone().into_bytes(),
        });
    }
    if let Some(html) = &rendered.html {
        out.push(Attachment {
            filename: format!("{stem}.html"),
            content_type: "text/html; charset=utf-8".into(),
            content: html.clone().into_bytes(),
        });
    }
    out.push(Attachment {
        filename: format!("{stem}.json"),
        content_type: "application/json".into(),
        content: json.as_bytes().to_vec(),
    });
    out
}

/// The report's data as JSON (what the templates render, with the SLA section).
pub fn report_json(report: &CycleReport) -> String {
    serde_json::to_string_pretty(report).unwrap_or_default()
}

fn summary_line(report: &CycleReport) -> String {
    let t = report.totals();
    format!(
        "Patch report for {}: {} hosts, {} patched, {} failed, {} excepted, {} skipped. The full report is attached.\n",
        report.label(),
        t.hosts,
        t.patched,
        t.failed,
        t.excepted,
        t.skipped
    )
}

async fn execute(inputs: serde_json::Value, ctx: &Context) -> Result<Outputs, ConnectorError> {
    let (inputs, report) = split_inputs(&inputs)?;
    let custom = load_override(&inputs, ctx)?;
    let rendered = render_report(&report, inputs.format, custom.as_ref())?;
    let rendered = RenderedReport {
        markdown: rendered.markdown.map(|s| ctx.secrets.redact(&s)),
        html: rendered.html.map(|s| ctx.secrets.redact(&s)),
    };
    let json = ctx.secrets.redact(&report_json(&report));
    let mut out = Outputs::new();
    out.insert(
        "totals".into(),
        serde_json::to_value(report.totals()).unwrap_or_default(),
    );
    if let Some(sla) = &report.sla {
        out.insert("sla".into(), serde_json::to_value(sla).unwrap_or_default());
    }
    if let Some(output) = &inputs.output {
        let (md_path, html_path) = output_paths(&ctx.resolve_path(output), inputs.format);
        for (key, path, content) in [
            ("markdown_path", md_path, &rendered.markdown),
            ("html_path", html_path, &rendered.html),
        ] {
            if let (Some(path), Some(content)) = (path, content) {
                write(&path, content)?;
                out.insert(key.into(), path.display().to_string().into());
            }
        }
        let json_path = ctx.resolve_path(output).with_extension("json");
        write(&json_path, &json)?;
        out.insert("json_path".into(), json_path.display().to_string().into());
    }
    if let Some(to) = &inputs.to {
        let recipients = ctx
            .settings
            .resolve_recipients(to.as_slice())
            .map_err(ConnectorError::Fatal)?;
        let message = OutgoingEmail {
            to: recipients.clone(),
            subject: format!("Patch report: {}", report.label()),
            text: rendered
                .markdown
                .clone()
                .unwrap_or_else(|| summary_line(&report)),
            html: rendered.html.clone(),
            attachments: attachments(&report, &rendered, &json),
            message_id: Some(format!("{}.report", message_key(ctx))),
            ..OutgoingEmail::default()
        };
        until_cancelled(
            &ctx.cancel,
            send_email(&ctx.settings, &ctx.secrets, message),
        )
        .await?;
        ctx.log_line(&format!("report emailed to {}", recipients.join(", ")));
        out.insert("emailed_to".into(), recipients.into());
    }
    Ok(out)
}

/// The `report` connector.
pub struct Report;

impl Connector for Report {
    fn spec(&self) -> &'static ConnectorSpec {
        spec_of("report")
    }

    fn dry_run(&self, inputs: &serde_json::Value, ctx: &Context) -> Result<String, ConnectorError> {
        let mut map = inputs.as_object().cloned().unwrap_or_default();
        map.remove("report");
        let inputs: ReportInputs = parse_inputs("report", &serde_json::Value::Object(map))?;
        let format = match inputs.format {
            ReportFormat::Markdown => "Markdown",
            ReportFormat::Html => "HTML",
            ReportFormat::Both => "Markdown and HTML",
        };
        let mut line = format!("would render the cycle report ({format})");
        if let Some(output) = &inputs.output {
            line.push_str(&format!(", write it to {output}"));
        }
        if let Some(to) = &inputs.to {
            line.push_str(&format!(", email it to {}", to.as_slice().join(", ")));
        }
        Ok(ctx.secrets.redact(&line))
    }

    fn execute<'a>(
        &'a self,
        inputs: serde_json::Value,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<Outputs, ConnectorError>> {
        Box::pin(async move {
            execute(inputs, ctx)
                .await
                .map(|out| ctx.redact_outputs(out))
                .map_err(|e| e.redacted(&ctx.secrets))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_person_wrote_them() {
        assert_eq!(
            human_duration(chrono::Duration::seconds(42 * 60 + 10)),
            "42m 10s"
        );
        assert_eq!(
            human_duration(chrono::Duration::seconds(3 * 3600 + 60)),
            "3h 1m"
        );
        assert_eq!(
            human_duration(chrono::Duration::seconds(4 * 86_400 + 3_600)),
            "4d 1h 0m"
        );
    }

    fn patched_at(finished: &str) -> CycleReport {
        let at = |t: &str| DateTime::parse_from_rfc3339(t).unwrap();
        CycleReport {
            runbook: "emergency".into(),
            cycle: String::new(),
            patch_tuesday: NaiveDate::from_ymd_opt(2026, 12, 8).unwrap(),
            generated_at: at(finished),
            run_id: None,
            rows: vec![HostRow {
                host: "web01".into(),
                step: "patch".into(),
                status: HostStatus::Patched,
                reason: None,
                approver: None,
                started: Some(at(finished) - chrono::Duration::minutes(5)),
                finished: Some(at(finished)),
            }],
            approvals: vec![],
            overdue: vec![],
            sla: None,
        }
    }

    /// Issue 15: an emergency patched two days before Patch Tuesday said "0m 0s".
    #[test]
    fn a_host_patched_before_patch_tuesday_says_how_long_before() {
        let early = patched_at("2026-12-06T10:00:00-05:00").hosts().0;
        assert_eq!(early[0].time_to_patched, "1d 14h 0m before Patch Tuesday");
        let late = patched_at("2026-12-12T23:30:00-05:00").hosts().0;
        assert_eq!(late[0].time_to_patched, "4d 23h 30m");
    }
}
