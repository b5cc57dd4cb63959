//! The command line (DESIGN §8): argument parsing and dispatch. This is the binary's edge:
//! errors become messages and exit codes here (0 success, 1 the thing checked failed,
//! 2 usage, configuration or I/O error), and `anyhow` is used only here.

/// `println!` that ends the process quietly when stdout is closed (`patchday ... | head`).
macro_rules! outln {
    ($($arg:tt)*) => { $crate::cli::write_out(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprintln!` that drops the text when stderr is closed instead of panicking.
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `print!` that ends the process quietly when stdout is closed.
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::write_out(format_args!($($arg)*)) };
}

mod api;
mod audit;
mod calendar;
mod compliance;
mod evidence;
mod new;
mod plan;
mod run;
mod schema;
mod serve;
mod sessions;
mod simulate;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};

use crate::clock::{Clock, ManualClock, SystemClock};

/// patchday: patch-management runbooks keyed to Patch Tuesday.
#[derive(Debug, Parser)]
#[command(name = "patchday", version, about, long_about = None, propagate_version = true)]
#[command(
    after_help = "Start with `patchday validate runbooks/`, then `patchday calendar runbooks/monthly.yaml` \
and `patchday plan runbooks/monthly.yaml`.\nExit codes: 0 success, 1 the thing checked failed, 2 usage, configuration or I/O error."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Configuration file (default: patchday.toml in the working folder, if there is one).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Database URL (default: sqlite://patchday.db in the working folder).
    #[arg(long, global = true, value_name = "URL")]
    database: Option<String>,
    /// Pretend it is this time (RFC 3339, e.g. 2026-12-01T08:00:00-05:00).
    #[arg(long, global = true, value_name = "RFC3339", value_parser = parse_instant)]
    now: Option<DateTime<Utc>>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Read Ansible inventories (`inventory: { ansible: SRC }`) through `ansible-inventory -i
    /// SRC --list`, so dynamic inventories, plugins and folders work (from
    /// $PATCHDAY_ANSIBLE_BIN_DIR, else the PATH; `serve` also reads `[ansible]`).
    #[arg(long, global = true)]
    ansible_inventory: bool,
}

/// Output formats; `dot`, `mermaid` and `svg` only for `plan`, `ics` only for `calendar`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Dot,
    Mermaid,
    /// The step graph as the run page draws it (every step pending; `plan` only).
    Svg,
    /// RFC 5545 (`calendar` only).
    Ics,
    /// A standalone HTML document (`compliance` only).
    Html,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check runbook files or folders; every error as file:line:col with a snippet.
    Validate(validate::Args),
    /// Show the next cycles of a runbook: when each fires, and which a blackout skips.
    Calendar(calendar::Args),
    /// Show a runbook's steps in order with waves, dependencies and planned start times.
    Plan(plan::Args),
    /// Print the runbook JSON Schema (or write both schemas into a folder).
    Schema(schema::Args),
    /// Run a runbook now, in the foreground, with live progress; exit 0 if it succeeds.
    Run(run::RunArgs),
    /// Resume a run after a crash, or settle an interrupted step (--retry, --skip, --abort).
    Resume(run::ResumeArgs),
    /// Play a whole cycle on a virtual clock with connectors in dry-run mode.
    Simulate(simulate::Args),
    /// Verify, export, checkpoint and prove the hash-chained audit log.
    Audit(audit::Args),
    /// Write the auditor's evidence pack of a run (or verify one offline).
    Evidence(evidence::Args),
    /// Patch SLA compliance of the runs started in a period (Markdown, or --format json).
    Compliance(compliance::Args),
    /// Run the daemon: scheduler, runs, outbox mailer, HTTP server.
    Serve(serve::Args),
    /// Start a run on the daemon (e.g. emergency-zero-day --param cve=CVE-2026-12345).
    Trigger(api::TriggerArgs),
    /// List the daemon's recent runs.
    Runs(api::RunsArgs),
    /// Show a run's state and steps; exit 1 if it failed or was cancelled.
    Status(api::StatusArgs),
    /// Cancel a running run on the daemon.
    Cancel(api::RunArgs),
    /// Decide an approval or manual step as the operator (api:<token name>).
    Approve(api::ApproveArgs),
    /// Run an interrupted step again (it waits for an operator after a restart).
    Retry(api::SettleArgs),
    /// Skip an interrupted step: the run goes on without it.
    Skip(api::SettleArgs),
    /// Abort the run at an interrupted step: the run is cancelled.
    Abort(api::SettleArgs),
    /// Make a new API token: prints it once, and the line for the tokens file.
    ApiToken(api::TokenArgs),
    /// Write a commented starter runbook or inventory that validates.
    New(new::Args),
    /// Print a one-time sign-in URL for the local operator (an admin; works once, within 24h).
    LoginUrl(api::LoginUrlArgs),
    /// List the live sign-in sessions, or revoke one.
    Sessions(sessions::Args),
}

/// What every command gets besides its own arguments.
pub(crate) struct Globals {
    pub format: Format,
    pub clock: std::sync::Arc<dyn Clock>,
    pub config: Option<PathBuf>,
    /// `--database`, if given.
    pub database: Option<String>,
    /// `--ansible-inventory`.
    pub ansible_inventory: bool,
}

impl Globals {
    /// The configuration as the daemon reads it: `patchday.toml` (or `--config`) <
    /// `PATCHDAY_*` variables < `--database`. The operator and audit commands use it to find
    /// the daemon and its database.
    pub(crate) fn configuration(&self) -> anyhow::Result<crate::config::Config> {
        let mut layers = crate::config::read_file(self.config.as_deref())
            .map_err(|e| UsageError(e.to_string()))?;
        layers.environment(|var| std::env::var(var).ok());
        if let Some(url) = &self.database {
            layers.set("database.url", url.clone(), "--database");
        }
        Ok(crate::config::resolve(layers).map_err(|e| UsageError(e.to_string()))?)
    }
}

impl Globals {
    /// How the commands that read runbooks read Ansible inventories: natively, or with
    /// `--ansible-inventory` through `ansible-inventory` in `$PATCHDAY_ANSIBLE_BIN_DIR` (the
    /// variable of `[ansible] bin_dir`), else on the PATH.
    pub(crate) fn ansible_inventories(&self) -> crate::sources::AnsibleInventories {
        if !self.ansible_inventory {
            return crate::sources::AnsibleInventories::Native;
        }
        crate::sources::AnsibleInventories::List(self.ansible().program("ansible-inventory"))
    }

    /// Where `patchday run` finds Ansible: `$PATCHDAY_ANSIBLE_BIN_DIR`, else the PATH.
    pub(crate) fn ansible(&self) -> patchday_connectors::settings::AnsibleSettings {
        patchday_connectors::settings::AnsibleSettings {
            bin_dir: std::env::var_os(crate::config::env_name("ansible.bin_dir"))
                .map(PathBuf::from),
        }
    }
}

/// Failures that end a command with exit code 2 (usage, configuration, I/O).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UsageError(pub String);

/// Runs the CLI with the process arguments.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let globals = Globals {
        format: cli.format,
        clock: match cli.now {
            Some(now) => std::sync::Arc::new(ManualClock::new(now)),
            None => std::sync::Arc::new(SystemClock),
        },
        config: cli.config,
        database: cli.database,
        ansible_inventory: cli.ansible_inventory,
    };
    let result = match cli.command {
        Command::Validate(args) => validate::run(args, &globals),
        Command::Calendar(args) => calendar::run(args, &globals),
        Command::Plan(args) => plan::run(args, &globals),
        Command::Schema(args) => schema::run(args, &globals),
        Command::Run(args) => run::run(args, &globals),
        Command::Resume(args) => run::resume(args, &globals),
        Command::Simulate(args) => simulate::run(args, &globals),
        Command::Audit(args) => audit::run(args, &globals),
        Command::Evidence(args) => evidence::run(args, &globals),
        Command::Compliance(args) => compliance::run(args, &globals),
        Command::Serve(args) => serve::run(args, &globals),
        Command::Trigger(args) => api::trigger(args, &globals),
        Command::Runs(args) => api::runs(args, &globals),
        Command::Status(args) => api::status(args, &globals),
        Command::Cancel(args) => api::cancel(args, &globals),
        Command::Approve(args) => api::approve(args, &globals),
        Command::Retry(args) => api::settle(args, "retry", &globals),
        Command::Skip(args) => api::settle(args, "skip", &globals),
        Command::Abort(args) => api::settle(args, "abort", &globals),
        Command::ApiToken(args) => api::api_token(args, &globals),
        Command::New(args) => new::run(args, &globals),
        Command::LoginUrl(args) => api::login_url(args, &globals),
        Command::Sessions(args) => sessions::run(args, &globals),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            errln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// `--cycle YYYY-MM` (a month cycle) or `--cycle YYYY-MM-DD` (a day cycle: cron schedules).
fn parse_cycle(text: &str) -> Result<crate::calendar::Cycle, String> {
    text.parse().map_err(|e| format!("{e}"))
}

/// `--param NAME=VALUE`.
fn parse_param(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{text}`: write NAME=VALUE"))
}

fn parse_instant(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!("`{text}` is not an RFC 3339 time such as 2026-12-01T08:00:00-05:00 ({e})")
        })
}

/// Loads and checks one runbook for commands that need a valid one; prints the diagnostics
/// and returns `Ok(None)` (exit 1) when it is invalid.
pub(crate) fn checked_runbook(
    path: &std::path::Path,
    globals: &Globals,
) -> anyhow::Result<Option<crate::validate::CheckedRunbook>> {
    if !path.is_file() {
        return Err(UsageError(format!("{}: no such runbook file", path.display())).into());
    }
    let checked =
        crate::sources::check_files_with(&[path.to_path_buf()], &globals.ansible_inventories());
    validate::print_diagnostics(&checked, false);
    let runbook = checked.runbooks.into_iter().next().and_then(|(_, c)| c);
    Ok(runbook)
}

/// Runs `work` on the existing database at `url` (a missing one is a usage error: nothing is
/// created), on a one-thread runtime, and closes the store after it.
pub(crate) fn on_existing_store<T>(
    url: &str,
    work: impl AsyncFnOnce(&crate::store::any::AnyStore) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    use anyhow::Context as _;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let store = crate::store::any::AnyStore::open_existing(url)
            .await
            .map_err(|e| UsageError(format!("cannot open the database: {e}")))?;
        let result = work(&store).await;
        store.close().await;
        result
    })
}

/// Rejects formats a command does not produce.
pub(crate) fn text_or_json(format: Format, command: &str) -> anyhow::Result<bool> {
    match format {
        Format::Text => Ok(false),
        Format::Json => Ok(true),
        other => Err(UsageError(
            format!("`{command}` prints text or json, not {other:?}").to_lowercase(),
        )
        .into()),
    }
}

/// Writes to stdout; a reader that went away (a closed pipe) ends the process with success,
/// as Unix tools do, instead of a panic.
pub(crate) fn write_out(args: std::fmt::Arguments) {
    use std::io::Write as _;
    if let Err(e) = std::io::stdout().lock().write_fmt(args) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        errln!("error: cannot write to stdout: {e}");
        std::process::exit(2);
    }
}

/// Prints JSON with a final newline.
pub(crate) fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
