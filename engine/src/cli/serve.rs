//! `patchday serve`: the daemon (scheduler, runs, outbox mailer, HTTP server). Configuration
//! is layered: defaults, `patchday.toml` (or `--config`), `PATCHDAY_*` variables, then the
//! flags here and the global `--database`. With no configuration at all it runs on SQLite in
//! the working folder, writes emails into `outbox/` and listens on 127.0.0.1:8080.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use super::{Globals, UsageError};
use crate::clock::{Clock, VirtualClock};
use crate::config;
use crate::daemon::{Daemon, Delivery, Options, Runbooks, on_signal};
use crate::logging::LogFormat;
use crate::store::any::AnyStore;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on (default 127.0.0.1:8080; port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// The runbooks folder (default: runbooks).
    #[arg(long, value_name = "DIR")]
    runbooks: Option<PathBuf>,
    /// Where emails are written when no [smtp] is configured.
    #[arg(long, value_name = "DIR", default_value = "outbox")]
    outbox: PathBuf,
    /// Seconds running steps may go on after SIGTERM before the daemon stops anyway.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    grace: u64,
    /// Run on a virtual clock starting at --now: sleeping jumps, so the scheduler goes to the
    /// next due cycle at once (demos and tests).
    #[arg(long)]
    virtual_clock: bool,
    /// Log lines as readable text or as JSON objects (for log shippers); `RUST_LOG` filters.
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    let usage = |e: &dyn std::fmt::Display| UsageError(e.to_string());
    let mut layers = config::read_file(globals.config.as_deref()).map_err(|e| usage(&e))?;
    layers.environment(|var| std::env::var(var).ok());
    if let Some(url) = &globals.database {
        layers.set("database.url", url.clone(), "--database");
    }
    if let Some(listen) = &args.listen {
        layers.set("server.listen", listen.clone(), "--listen");
    }
    if let Some(dir) = &args.runbooks {
        layers.set("runbooks.dir", dir.display().to_string(), "--runbooks");
    }
    if globals.ansible_inventory {
        layers.set(
            "ansible.inventory",
            "ansible-inventory",
            "--ansible-inventory",
        );
    }
    let config = config::resolve(layers).map_err(|e| usage(&e))?;
    let clock: Arc<dyn Clock> = if args.virtual_clock {
        Arc::new(VirtualClock::new(globals.clock.now()))
    } else {
        globals.clock.clone()
    };
    crate::logging::init(args.log_format, clock.clone());
    let runbooks = Runbooks::load(
        &config.runbooks.dir,
        &config.blackouts,
        &config.ansible_inventories,
    )
    .map_err(|e| usage(&e))?;
    let delivery = Delivery::from_config(&config, &args.outbox).map_err(|e| usage(&e))?;
    let options = Options {
        config,
        clock,
        virtual_clock: args.virtual_clock,
        delivery,
        grace: Duration::from_secs(args.grace),
    };
    super::run::runtime()?.block_on(async move {
        let store = AnyStore::open(&options.config.database_url)
            .await
            .map_err(|e| usage(&format!("database: {e}")))?;
        let daemon = Daemon::new(store.clone(), runbooks, options);
        tokio::spawn(on_signal(daemon.shutdown_token()));
        let result = daemon
            .run(|ready| {
                outln!("{}", ready.line());
                if let Some(line) = ready.sign_in_line() {
                    outln!("{line}");
                }
            })
            .await;
        store.close().await;
        match result {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(e @ crate::daemon::DaemonError::Listen { .. }) => Err(usage(&e).into()),
            Err(e) => Err(e.into()),
        }
    })
}
