//! The commands that operate a running daemon through its JSON API (DESIGN §7, §8):
//! `trigger`, `runs`, `status`, `cancel`, `approve`, `retry`, `skip`, `abort` (the operator's
//! decision on a step that waits for one); and `api-token`, which makes a new API token and
//! the line for the tokens file.
//!
//! `--server` defaults to the configuration's `[server] public_url` (else
//! `http://<listen>`, i.e. `http://127.0.0.1:8080`); `--token` defaults to the environment
//! variable `PATCHDAY_API_TOKEN`, else to the `local` token a daemon on the configured SQLite
//! database wrote next to it (`<database>.local-token`, see `patchday serve`). Text by default; `--format json` prints the API's JSON.
//! `status` prints every row of a run whose rows fit the run detail's first page; of a larger
//! run the counts by state and step, then the rows not succeeded, pending or waiting (every row
//! with `--all`), read page by page through `GET /runs/{id}/steps` as `steps_next` leads.
//! Exit codes: 0 done; 1 the run failed or was cancelled (`status`), or the daemon refused the
//! action because of the run's state (409: already finished, already decided, duplicate
//! cycle); 2 usage, authentication (401), not found, bad request or no connection.

use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::{Value, json};

use super::{Globals, UsageError, text_or_json};

/// The environment variable holding the API token.
pub const TOKEN_ENV: &str = "PATCHDAY_API_TOKEN";

/// Where the daemon is and how to authenticate.
#[derive(Debug, clap::Args)]
pub struct Server {
    /// The daemon's URL (default: [server] public_url from the configuration, else
    /// http://127.0.0.1:8080).
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// API token (default: the environment variable PATCHDAY_API_TOKEN, else the `local` token
    /// next to the configured SQLite database, written by `patchday serve`).
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct TriggerArgs {
    /// The runbook's name (e.g. emergency-zero-day).
    runbook: String,
    /// A param value (repeatable): --param cve=CVE-2026-12345
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = super::parse_param)]
    params: Vec<(String, String)>,
    /// The cycle the run belongs to (one run per runbook and cycle). Without it the run is a
    /// manual run: no cycle, and any number of them.
    #[arg(long, value_name = "CYCLE")]
    cycle: Option<String>,
    /// Run the --cycle again although it has a run already (needs --reason; audited).
    #[arg(long, requires = "cycle", requires = "reason")]
    rerun: bool,
    /// Why the cycle is run again (recorded in the audit log with who asked).
    #[arg(long, value_name = "TEXT", requires = "rerun")]
    reason: Option<String>,
    #[command(flatten)]
    server: Server,
}

#[derive(Debug, clap::Args)]
pub struct RunsArgs {
    /// How many recent runs to list.
    #[arg(long, default_value_t = 20)]
    limit: u32,
    #[command(flatten)]
    server: Server,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The run id.
    run: String,
    #[command(flatten)]
    server: Server,
}

/// `patchday status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The run id.
    run: String,
    /// List every row of a large run (text), not only those that are not succeeded, pending
    /// or waiting; a small run's rows are all listed anyway.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    server: Server,
}

#[derive(Debug, clap::Args)]
pub struct ApproveArgs {
    /// The run id.
    run: String,
    /// The approval or manual step.
    #[arg(long, value_name = "ID")]
    step: String,
    /// The host of a fanned-out step.
    #[arg(long, default_value = "")]
    host: String,
    /// The choice (an approval's choices, or done/failed for a manual task).
    #[arg(long, default_value = "approve")]
    choice: String,
    /// A comment recorded with the decision.
    #[arg(long, value_name = "TEXT")]
    comment: Option<String>,
    /// Why you decide for the step's people (required with an admin token: an override).
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    #[command(flatten)]
    server: Server,
}

/// `retry`, `skip` or `abort` a step that waits for an operator.
#[derive(Debug, clap::Args)]
pub struct SettleArgs {
    /// The run id.
    run: String,
    /// The interrupted step.
    #[arg(long, value_name = "ID")]
    step: String,
    /// The host of a fanned-out step.
    #[arg(long, value_name = "H", default_value = "")]
    host: String,
    /// Why (recorded in the audit log with who decided).
    #[arg(long, value_name = "TEXT")]
    reason: String,
    #[command(flatten)]
    server: Server,
}

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// The token's name: API actions are audited as api:NAME.
    name: String,
    /// What it may do: read, operate, approve, admin, feed (comma-separated; feed: only
    /// the calendar feed `/calendar.ics?token=...`). Without it: admin.
    #[arg(long, value_name = "LIST")]
    scopes: Option<String>,
    /// The person an `approve` token decides as (needed with approve).
    #[arg(long, value_name = "EMAIL")]
    owner: Option<String>,
}

/// A request's outcome: status and JSON body.
struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    fn error_text(&self) -> String {
        self.body
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| self.body.to_string())
    }
}

/// The `local` token a daemon on this machine's SQLite database wrote next to it.
fn local_token(database_url: &str) -> anyhow::Result<String> {
    let missing = || {
        UsageError(format!(
            "no API token: pass --token or set {TOKEN_ENV} (see `patchday api-token`)"
        ))
    };
    let file = crate::daemon::local_token_file(database_url).ok_or_else(missing)?;
    let text = std::fs::read_to_string(&file).map_err(|_| missing())?;
    Ok(text.trim().to_string())
}

/// Sends one request to the daemon.
fn call(
    globals: &Globals,
    server: &Server,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Answer> {
    let config = || globals.configuration();
    let base = match &server.server {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => config()?.public_url(),
    };
    let token = match server
        .token
        .clone()
        .or_else(|| std::env::var(TOKEN_ENV).ok())
        .filter(|t| !t.is_empty())
    {
        Some(token) => token,
        None => local_token(&config()?.database_url)?,
    };
    let url = format!("{base}/api/v1{path}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .context("HTTP client")?;
        let mut request = match method {
            "POST" => client.post(&url),
            _ => client.get(&url),
        }
        .bearer_auth(token)
        .header("accept", "application/json");
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&body)?);
        }
        let response = request
            .send()
            .await
            .map_err(|e| UsageError(format!("cannot reach the daemon at {base}: {e}")))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| UsageError(format!("{url}: reading the answer: {e}")))?;
        let body: Value = serde_json::from_slice(&bytes).map_err(|_| {
            UsageError(format!(
                "{url} answered {status} without JSON: is this a patchday daemon?"
            ))
        })?;
        Ok(Answer { status, body })
    })
}

/// A failed answer as an exit: 409 → 1 (the run's state refused it), others → 2.
fn refused(answer: &Answer, json: bool) -> anyhow::Result<ExitCode> {
    if answer.status == 409 {
        if json {
            super::print_json(&answer.body)?;
        }
        errln!("error: {}", answer.error_text());
        return Ok(ExitCode::from(1));
    }
    let text = answer.error_text();
    Err(UsageError(match answer.status {
        401 => format!("the daemon refused the token: {text}"),
        _ => format!("{text} (HTTP {})", answer.status),
    })
    .into())
}

fn field<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

/// A run's cycle as the CLI says it, in the words the pages and emails use: `cycle 2026-12`,
/// or `(manual run)` for a run without a cycle (issue 15: the CLI said `cycle -`).
pub(crate) fn cycle_words(cycle: &str) -> String {
    match cycle {
        "" => "(manual run)".to_string(),
        cycle => format!("cycle {cycle}"),
    }
}

/// A run's cycle in the `runs` table: the cycle, or `manual`.
fn cycle_column(cycle: &str) -> &str {
    if cycle.is_empty() { "manual" } else { cycle }
}

pub fn trigger(args: TriggerArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let json = text_or_json(globals.format, "trigger")?;
    let params: serde_json::Map<String, Value> = args
        .params
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let mut body = json!({ "runbook": args.runbook, "params": params });
    if let Some(cycle) = &args.cycle {
        body["cycle"] = json!(cycle);
    }
    if let Some(reason) = args.reason.filter(|_| args.rerun) {
        body["rerun"] = json!(reason);
    }
    let answer = call(globals, &args.server, "POST", "/runs", Some(body))?;
    if answer.status != 201 {
        return refused(&answer, json);
    }
    if json {
        super::print_json(&answer.body)?;
    } else {
        let run = &answer.body["run"];
        outln!(
            "run {} started: {} {}",
            field(run, "id"),
            field(run, "runbook"),
            cycle_words(field(run, "cycle"))
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn runs(args: RunsArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let json = text_or_json(globals.format, "runs")?;
    let path = format!("/runs?limit={}", args.limit.max(1));
    let answer = call(globals, &args.server, "GET", &path, None)?;
    if answer.status != 200 {
        return refused(&answer, json);
    }
    if json {
        super::print_json(&answer.body)?;
        return Ok(ExitCode::SUCCESS);
    }
    let runs = answer.body["runs"].as_array().cloned().unwrap_or_default();
    if runs.is_empty() {
        outln!("no runs yet");
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{:<52} {:<24} {:<10} {:<10} started",
        "run",
        "runbook",
        "cycle",
        "state"
    );
    for run in &runs {
        outln!(
            "{:<52} {:<24} {:<10} {:<10} {}",
            field(run, "id"),
            field(run, "runbook"),
            cycle_column(field(run, "cycle")),
            field(run, "state"),
            field(run, "started_at")
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn status(args: StatusArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let json = text_or_json(globals.format, "status")?;
    let path = format!("/runs/{}", encode(&args.run));
    let answer = call(globals, &args.server, "GET", &path, None)?;
    if answer.status != 200 {
        return refused(&answer, json);
    }
    let state = field(&answer.body["run"], "state").to_string();
    if json {
        super::print_json(&answer.body)?;
    } else {
        print_status(globals, &args, answer.body)?;
    }
    Ok(match state.as_str() {
        "failed" | "cancelled" => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    })
}

/// The text of `patchday status`: the run's line, then every row of a run whose rows fit the
/// answer's first page; for a larger run its rows counted by step and state, then (streamed
/// through the paged route, page by page) the rows an operator may act on, or every row with
/// `--all`.
fn print_status(globals: &Globals, args: &StatusArgs, detail: Value) -> anyhow::Result<()> {
    let run = &detail["run"];
    outln!(
        "run {}: {} {} {}",
        field(run, "id"),
        field(run, "runbook"),
        cycle_words(field(run, "cycle")),
        field(run, "state")
    );
    let complete = detail["steps_next"].is_null();
    if !complete {
        print_counts(&detail["counts"]);
    }
    let all = args.all || complete;
    if !all {
        outln!("\nthe rows not {QUIET_WORDS} (--all lists every row):");
    }
    outln!("\n{:<28} {:<14} {:<14} note", "step", "host", "state");
    let shown = |row: &Value| all || !QUIET_STATES.contains(&field(row, "state"));
    let (listed, left_out) = stream_rows(globals, args, detail, shown)?;
    if listed == 0 {
        outln!("(none)");
    }
    if left_out > 0 {
        outln!("({left_out} rows {QUIET_WORDS} not listed)");
    }
    Ok(())
}

/// The states of rows `patchday status` leaves out of a large run's listing (the counts give
/// them): done as planned, or not started yet.
const QUIET_STATES: [&str; 3] = ["succeeded", "pending", "waiting"];
const QUIET_WORDS: &str = "succeeded, pending or waiting";

/// How many rows `patchday status` asks for a page when it follows `steps_next`.
const STATUS_PAGE: u32 = 1000;

/// A run's rows counted: in all and by state, then by step and state.
fn print_counts(counts: &Value) {
    let by_state: Vec<String> = counts["by_state"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(state, n)| format!("{n} {state}"))
        .collect();
    outln!("\n{} rows: {}", counts["rows"], by_state.join(", "));
    outln!("\n{:<28} {:<14} {:>10}", "step", "state", "rows");
    for count in counts["by_step"].as_array().into_iter().flatten() {
        outln!(
            "{:<28} {:<14} {:>10}",
            field(count, "step"),
            field(count, "state"),
            count["rows"].as_u64().unwrap_or(0)
        );
    }
}

/// Prints the rows of the detail's first page, then of each page `steps_next` leads to through
/// `GET /runs/{id}/steps` (one page in memory at a time), each that `shown` keeps; how many it
/// listed and how many it left out.
fn stream_rows(
    globals: &Globals,
    args: &StatusArgs,
    mut detail: Value,
    shown: impl Fn(&Value) -> bool,
) -> anyhow::Result<(u64, u64)> {
    let (mut rows, mut next) = (detail["steps"].take(), detail["steps_next"].take());
    let (mut listed, mut left_out) = (0, 0);
    loop {
        for row in rows.as_array().into_iter().flatten() {
            if shown(row) {
                print_row(row);
                listed += 1;
            } else {
                left_out += 1;
            }
        }
        let Some(after) = next.as_i64() else {
            return Ok((listed, left_out));
        };
        let path = format!(
            "/runs/{}/steps?limit={STATUS_PAGE}&after={after}",
            encode(&args.run)
        );
        let mut answer = call(globals, &args.server, "GET", &path, None)?;
        if answer.status != 200 {
            let text = answer.error_text();
            return Err(UsageError(format!("{path}: {text} (HTTP {})", answer.status)).into());
        }
        (rows, next) = (answer.body["steps"].take(), answer.body["next"].take());
        if next.as_i64().is_some_and(|n| n <= after) {
            return Err(UsageError(format!("{path}: the cursor did not move on")).into());
        }
    }
}

/// One step row of `patchday status`.
fn print_row(row: &Value) {
    outln!(
        "{:<28} {:<14} {:<14} {}",
        field(row, "step"),
        field(row, "host"),
        field(row, "state"),
        field(row, "reason")
    );
}

pub fn cancel(args: RunArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let json = text_or_json(globals.format, "cancel")?;
    let path = format!("/runs/{}/cancel", encode(&args.run));
    let answer = call(globals, &args.server, "POST", &path, Some(json!({})))?;
    if !matches!(answer.status, 200 | 202) {
        return refused(&answer, json);
    }
    if json {
        super::print_json(&answer.body)?;
    } else if answer.status == 202 {
        outln!(
            "run {}: cancellation requested; attempts in flight are still stopping",
            args.run
        );
    } else {
        outln!("run {} {}", args.run, field(&answer.body["run"], "state"));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn approve(args: ApproveArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let json = text_or_json(globals.format, "approve")?;
    let path = format!(
        "/runs/{}/steps/{}/decision",
        encode(&args.run),
        encode(&args.step)
    );
    let body = json!({
        "host": args.host,
        "choice": args.choice,
        "comment": args.comment,
        "reason": args.reason,
    });
    let answer = call(globals, &args.server, "POST", &path, Some(body))?;
    if answer.status != 200 {
        return refused(&answer, json);
    }
    if json {
        super::print_json(&answer.body)?;
        return Ok(ExitCode::SUCCESS);
    }
    let b = &answer.body;
    let host = if args.host.is_empty() {
        String::new()
    } else {
        format!(" [{}]", args.host)
    };
    let settled = match b.get("settled").and_then(Value::as_str) {
        Some(state) => format!("step {state}"),
        None => format!(
            "{} of {} decisions so far",
            b["decisions_so_far"], b["quorum"]
        ),
    };
    outln!(
        "{}{host}: `{}` recorded as {} ({settled})",
        args.step,
        field(b, "choice"),
        field(b, "actor")
    );
    Ok(ExitCode::SUCCESS)
}

/// `retry`, `skip` or `abort` (`decision`): settles an interrupted step through
/// `POST /runs/{id}/steps/{step}/resume`.
pub fn settle(args: SettleArgs, decision: &str, globals: &Globals) -> anyhow::Result<ExitCode> {
    let json = text_or_json(globals.format, decision)?;
    if args.reason.trim().is_empty() {
        return Err(
            UsageError("--reason: say why (it is recorded in the audit log)".into()).into(),
        );
    }
    let path = format!(
        "/runs/{}/steps/{}/resume",
        encode(&args.run),
        encode(&args.step)
    );
    let body = json!({ "host": args.host, "decision": decision, "reason": args.reason });
    let answer = call(globals, &args.server, "POST", &path, Some(body))?;
    if answer.status != 200 {
        return refused(&answer, json);
    }
    if json {
        super::print_json(&answer.body)?;
        return Ok(ExitCode::SUCCESS);
    }
    let host = if args.host.is_empty() {
        String::new()
    } else {
        format!(" [{}]", args.host)
    };
    let done = match decision {
        "retry" => "runs again",
        "skip" => "skipped",
        _ => "aborted: the run is cancelled",
    };
    outln!(
        "run {}: {}{host} {done}; the run is {}",
        args.run,
        args.step,
        field(&answer.body["run"], "state")
    );
    Ok(ExitCode::SUCCESS)
}

pub fn api_token(args: TokenArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    use crate::daemon::tokens::{new_token, token_hash, valid_name};
    let json = text_or_json(globals.format, "api-token")?;
    if !valid_name(&args.name) {
        return Err(UsageError(format!(
            "`{}`: a token name is letters, digits, `.`, `_`, `-`, `@` (at most 64)",
            args.name
        ))
        .into());
    }
    let token = new_token().map_err(|e| anyhow::anyhow!("OS randomness: {e}"))?;
    let mut line = format!("{} {}", args.name, token_hash(&token));
    if let Some(scopes) = &args.scopes {
        line.push_str(&format!(" scopes={scopes}"));
    }
    if let Some(owner) = &args.owner {
        line.push_str(&format!(" owner={owner}"));
    }
    crate::daemon::tokens::ApiTokens::parse(&line).map_err(|(_, e)| UsageError(e))?;
    if json {
        super::print_json(&json!({ "name": args.name, "token": token, "line": line }))?;
    } else {
        outln!("token for api:{} (shown once; keep it secret):", args.name);
        outln!("  {token}");
        outln!("add this line to the [security] api_tokens_file (it holds only the hash):");
        outln!("  {line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `patchday login-url`.
#[derive(Debug, clap::Args)]
pub struct LoginUrlArgs {
    /// The daemon's base URL (default: `[server] public_url`, else `http://<listen>`).
    #[arg(long)]
    url: Option<String>,
}

/// `patchday login-url`: a one-time sign-in URL for the local operator, signed with the link
/// secret the daemon reads (`[security] link_secret_file`, or the key next to its SQLite
/// database).
pub fn login_url(args: LoginUrlArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let config = globals.configuration()?;
    if !crate::daemon::link_secret_lasts(&config) {
        return Err(UsageError(
            "the daemon signs links with a key of its own process (no [security] \
             link_secret_file, no SQLite database): use the URL `patchday serve` printed, or \
             set link_secret_file"
                .into(),
        )
        .into());
    }
    let links = crate::daemon::sign_in_links(&config).map_err(|e| UsageError(e.to_string()))?;
    let nonce = crate::links::new_nonce(&mut crate::daemon::http::auth::os_random);
    let token = links.mint(
        crate::auth::LOCAL_OPERATOR,
        globals.clock.now(),
        crate::auth::LOCAL_LINK_TTL,
        nonce,
    )?;
    let base = args.url.unwrap_or_else(|| config.public_url());
    outln!("{}/signin/{token}", base.trim_end_matches('/'));
    Ok(ExitCode::SUCCESS)
}

/// Percent-encodes a path segment.
fn encode(segment: &str) -> String {
    let mut out = String::new();
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
