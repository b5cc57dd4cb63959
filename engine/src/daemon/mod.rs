//! The daemon (`patchday serve`, DESIGN §5, §7, §9): one process that loads the runbooks
//! folder, resumes unfinished runs, fires cycles on the calendar ([`scheduler`]), sends the
//! outbox ([`mailer`]) and serves the pages, `/metrics` and `/healthz` ([`http`]).
//!
//! Shape: [`Daemon::run`] spawns the tasks and waits for a shutdown signal. Each run is driven
//! in its own task. On shutdown the scheduler stops at once; runs get a grace period to finish
//! the attempts they have in flight (a run that is only waiting for a time is stopped at once),
//! then their tasks are dropped. Nothing is lost: every transition was committed before its
//! effect, and the next start resumes the runs (`Engine::recover`, then `drive`).
//!
//! Approval and task links (DESIGN §7): the engine gets a [`LinkMinter`] keyed with the link
//! secret ([`link_minter`]), so a person-step's emails carry signed links; [`http`] serves them.
//! A settling decision drives the run again ([`Shared::spawn_run`]: at most one driver task per
//! run; a request while one runs makes it drive once more). The JSON API (`/api/v1`, bearer
//! tokens from [`tokens`]) starts runs, cancels them ([`Shared::cancel_run`]) and decides as
//! `api:<token name>`. [`expiry`] fails person-steps whose
//! `expires` passed and drives their runs on.
//!
//! Time comes from the injected [`Clock`]. With a virtual clock (`serve --virtual-clock`)
//! sleeping jumps; the scheduler then jumps once, to the first due fire, and afterwards only
//! fires what is due (it never races ahead month after month).
//!
//! Several daemons may share one database ([`cluster`]): one leads (scheduler, expiry, orphaned
//! runs); every run task claims its run before driving it, and its commits are fenced by the
//! claim's epoch; every mailer claims the rows it sends.

pub mod chain;
pub mod checkpointer;
pub mod cluster;
pub mod compliance_mail;
pub mod expiry;
pub mod http;
pub mod mailer;
pub mod metrics;
pub mod runbooks;
pub mod scheduler;
pub mod tokens;
pub mod versions;

pub use crate::run::new_run_id;
pub use runbooks::{LoadedRunbook, Runbooks};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use patchday_connectors::secrets::Secrets;
use patchday_connectors::settings::Settings;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument as _;

use crate::clock::Clock;
use crate::config::Config;
use crate::links::LinkSigner;
use crate::run::{CancelBy, Engine, LinkMinter, Mode, Outcome, RunError};
use crate::store::{Fence, RunClaim, RunRow, StepState, Store, StoreError};
use crate::validate::CheckedRunbook;
use crate::version::VersionError;

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("runbooks folder {dir}: {message}")]
    Runbooks { dir: String, message: String },
    #[error("{what} {path}: {source}")]
    File {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP server: {0}")]
    Http(std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("[auth.oidc]: {0}")]
    Oidc(String),
    #[error("[server] tls_cert_file, tls_key_file: {0}")]
    Tls(String),
    #[error("link secret: {0}")]
    LinkSecret(String),
    #[error(transparent)]
    Tokens(#[from] tokens::TokensError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// Where emails go.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// Through the configured SMTP server.
    Smtp {
        settings: Arc<Settings>,
        secrets: Arc<Secrets>,
    },
    /// Written as `<id>.eml` files into this folder.
    Folder(PathBuf),
}

impl Delivery {
    /// From the configuration: SMTP when `[smtp]` is set (its password file is read now, by
    /// [`Config::connectors`]), otherwise `outbox_dir`.
    pub fn from_config(config: &Config, outbox_dir: &Path) -> Result<Delivery, DaemonError> {
        if config.smtp.is_none() {
            return Ok(Delivery::Folder(outbox_dir.to_path_buf()));
        }
        let connectors = config.connectors()?;
        Ok(Delivery::Smtp {
            settings: Arc::new(connectors.settings),
            secrets: Arc::new(connectors.secrets),
        })
    }

    /// How the start-up line describes it.
    pub fn describe(&self) -> String {
        match self {
            Delivery::Smtp { settings, .. } => {
                let smtp = settings.smtp.as_ref().expect("SMTP delivery has settings");
                format!("emails via SMTP {}:{}", smtp.host, smtp.port())
            }
            Delivery::Folder(dir) => {
                let shown = if dir.is_relative() {
                    format!("./{}", dir.display())
                } else {
                    dir.display().to_string()
                };
                format!("emails to {shown}: no [smtp] configured")
            }
        }
    }
}

/// Panics in a row after which a run is failed instead of driven again.
const MAX_PANICS: u32 = 2;

/// The text a panic was raised with.
fn panic_message(error: tokio::task::JoinError) -> String {
    let payload = error.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// What the daemon needs besides a store.
pub struct Options {
    pub config: Config,
    pub clock: Arc<dyn Clock>,
    /// True when `clock` jumps when slept on (`--virtual-clock`).
    pub virtual_clock: bool,
    pub delivery: Delivery,
    /// How long running attempts may go on after a shutdown signal.
    pub grace: Duration,
}

/// What [`Daemon::run`] reports once it is listening.
#[derive(Debug, Clone)]
pub struct Ready {
    pub url: String,
    pub addr: SocketAddr,
    pub database: String,
    pub delivery: String,
    pub runbooks: usize,
    pub rejected: usize,
    /// The local operator's one-time sign-in URL (like Jupyter's): whoever reads the daemon's
    /// output may sign in once, as an admin, within 24 hours.
    pub sign_in: Option<String>,
}

impl Ready {
    /// `patchday serving http://127.0.0.1:8080 (SQLite patchday.db, emails to ./outbox: ...)`.
    pub fn line(&self) -> String {
        format!(
            "patchday serving {} ({}, {}; {} runbook{} loaded{})",
            self.url,
            self.database,
            self.delivery,
            self.runbooks,
            if self.runbooks == 1 { "" } else { "s" },
            if self.rejected > 0 {
                format!(", {} rejected", self.rejected)
            } else {
                String::new()
            }
        )
    }

    /// `sign in as the local operator (once, within 24h): URL`, when there is a URL.
    pub fn sign_in_line(&self) -> Option<String> {
        self.sign_in
            .as_ref()
            .map(|url| format!("sign in as the local operator (once, within 24h): {url}"))
    }
}

/// `SQLite patchday.db` / `PostgreSQL db.example.com/patchday` (no credentials).
pub fn describe_database(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let path = rest.trim_start_matches("//");
        let path = path.split('?').next().unwrap_or(path);
        return format!("SQLite {path}");
    }
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let host = rest.rsplit_once('@').map(|(_, h)| h).unwrap_or(rest);
    let host = host.split('?').next().unwrap_or(host);
    format!("PostgreSQL {host}")
}

/// The state the tasks share.
pub struct Shared<S: Store> {
    pub engine: Arc<Engine<S>>,
    /// The runbooks in force; swapped whole by a reload ([`runbooks::reload`]).
    runbooks: RwLock<Arc<Runbooks>>,
    /// The versions of unfinished runs (rebuilt from their snapshots), besides those in force.
    versions: versions::Versions,
    /// Wakes the scheduler when the runbooks changed.
    pub reschedule: Arc<Notify>,
    /// What this process counts for `/metrics`.
    pub counters: metrics::Counters,
    pub clock: Arc<dyn Clock>,
    /// Cancelled on SIGTERM/SIGINT: stop scheduling, stop serving.
    pub shutdown: CancellationToken,
    /// Wakes the mailer when something may have been added to the outbox.
    pub mail: Arc<Notify>,
    /// Wakes the expiry task when a run may have started waiting for a person.
    pub inputs: Arc<Notify>,
    /// Wakes the checkpointer when a run's driver stopped (the run ended or waits).
    pub checkpoint: Arc<Notify>,
    /// The run tasks, by run id: at most one per run.
    runs: Mutex<BTreeMap<String, RunTask>>,
    pub started_at: DateTime<Utc>,
    /// The JSON API's bearer tokens (`[security] api_tokens_file`; none: the API refuses all),
    /// replaced whole when the file changes ([`tokens::watch`]).
    api_tokens: RwLock<Arc<tokens::ApiTokens>>,
    /// This daemon among the daemons sharing the database: node id, leadership, lease clock.
    pub cluster: cluster::Cluster,
    /// Sign-in links, roles, session cookies ([`http::auth`]).
    pub auth: http::auth::AuthState,
    /// The audit chain as last verified, for the audit browser ([`chain`]).
    pub chain: chain::ChainWatch,
    /// `[compliance]`: the monthly compliance email ([`compliance_mail`]).
    pub compliance: Option<crate::config::ComplianceConfig>,
}

/// The driver task of one run.
struct RunTask {
    handle: JoinHandle<()>,
    /// Someone asked for the run to be driven while the task was driving it: drive again.
    again: bool,
    /// Cancels the run (an operator's `cancel`), and who asked.
    cancel: CancellationToken,
    cancel_by: CancelBy,
}

impl<S: Store> Shared<S> {
    /// The runbooks in force now (a reload may replace them at any time after).
    pub fn runbooks(&self) -> Arc<Runbooks> {
        self.runbooks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The API tokens in force now.
    pub fn api_tokens(&self) -> Arc<tokens::ApiTokens> {
        self.api_tokens
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Makes `tokens` the API tokens in force.
    pub fn set_api_tokens(&self, tokens: tokens::ApiTokens) {
        *self.api_tokens.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(tokens);
    }

    /// Makes `runbooks` the ones in force (the caller wakes the scheduler if it runs).
    pub fn set_runbooks(&self, runbooks: Runbooks) {
        *self.runbooks.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(runbooks);
    }

    /// The runbook version `run` is bound to, rebuilt from its snapshot if this daemon does
    /// not hold it ([`versions`]): never the folder's, which may have changed or gone.
    pub fn version_for_run(&self, run: &RunRow) -> Result<Arc<CheckedRunbook>, VersionError> {
        self.versions.for_run(run, &self.runbooks())
    }

    /// [`Shared::version_for_run`], `None` (logged) when the stored version cannot be used.
    pub fn checked_for_run(&self, run: &RunRow) -> Option<Arc<CheckedRunbook>> {
        self.version_for_run(run)
            .map_err(|e| tracing::warn!("run {}: {e}", run.id))
            .ok()
    }

    /// Drops the versions no unfinished run uses and not in force (after a reload, and when
    /// a run ends).
    pub async fn prune_versions(&self) {
        match self.engine.store.unfinished_versions().await {
            Ok(unfinished) => {
                let mut keep: std::collections::BTreeSet<String> =
                    unfinished.into_iter().map(|(_, hash)| hash).collect();
                keep.extend(
                    self.runbooks()
                        .by_name
                        .values()
                        .map(|l| l.content_hash.clone()),
                );
                self.versions.prune(&keep);
            }
            Err(e) => tracing::warn!("pruning runbook versions: {e}"),
        }
    }

    /// The runbook versions in memory: in force, and of unfinished runs (distinct).
    pub fn versions_in_memory(&self) -> usize {
        let mut hashes = self.versions.hashes();
        hashes.extend(
            self.runbooks()
                .by_name
                .values()
                .map(|l| l.content_hash.clone()),
        );
        hashes.len()
    }

    /// Drives a run in its own task until it finishes or waits for a person. If a task already
    /// drives the run, that task drives it once more when it is done instead (never two drivers
    /// on one run; no request lost between the driver's last look and its end).
    pub fn spawn_run(self: &Arc<Self>, checked: Arc<CheckedRunbook>, run_id: String) {
        self.spawn_driver(checked, run_id, None, None);
    }

    /// [`Shared::spawn_run`] for a run this daemon claimed already (picked up as the leader).
    pub fn spawn_claimed(self: &Arc<Self>, checked: Arc<CheckedRunbook>, id: String, c: RunClaim) {
        self.spawn_driver(checked, id, None, Some(c));
    }

    /// Cancels a run as `actor`: its driver task (started for it if there is none, e.g. while
    /// the run waits for a person) commits the cancellation and stops what is in flight.
    pub fn cancel_run(self: &Arc<Self>, checked: Arc<CheckedRunbook>, run_id: String, actor: &str) {
        self.spawn_driver(checked, run_id, Some(actor), None);
    }

    fn spawn_driver(
        self: &Arc<Self>,
        checked: Arc<CheckedRunbook>,
        run_id: String,
        cancel_as: Option<&str>,
        mut claim: Option<RunClaim>,
    ) {
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        runs.retain(|_, t| !t.handle.is_finished());
        if let Some(task) = runs.get_mut(&run_id) {
            if let Some(actor) = cancel_as {
                task.cancel_by.set(actor);
                task.cancel.cancel();
            }
            task.again = true;
            return;
        }
        let cancel = CancellationToken::new();
        let cancel_by = CancelBy::default();
        if let Some(actor) = cancel_as {
            cancel_by.set(actor);
            cancel.cancel();
        }
        let shared = self.clone();
        let id = run_id.clone();
        let (token, by) = (cancel.clone(), cancel_by.clone());
        // The task cannot look at `runs` before its entry is in: the lock is held until then.
        // Every line the run causes (here, in the driver and its attempts) carries these fields.
        let span = tracing::info_span!("run", runbook = %checked.runbook.name.value, run_id = %id);
        let driver = async move {
            let mut panics = 0;
            loop {
                // Each turn runs in a task of its own, so that a panic in it is caught here: it
                // is counted, the run is driven again, and failed after the second one (the
                // daemon goes on in any case). The turn's token stops its attempts then.
                let turn = token.child_token();
                let task = {
                    let (shared, checked, id) = (shared.clone(), checked.clone(), id.clone());
                    let (token, turn, by, claim) =
                        (token.clone(), turn.clone(), by.clone(), claim.take());
                    let turn = async move {
                        // Claimed (several daemons): see cluster.rs.
                        cluster::drive_claimed(&shared, &checked, &id, &token, &turn, &by, claim)
                            .await
                    };
                    AbortOnDropHandle::new(tokio::spawn(turn.in_current_span()))
                };
                let again = match task.await {
                    Ok(again) => again,
                    Err(e) if e.is_panic() => {
                        turn.cancel();
                        panics += 1;
                        shared
                            .after_panic(&checked, &id, &panic_message(e), panics)
                            .await
                    }
                    Err(_) => false,
                };
                let ended = {
                    let mut runs = shared.runs.lock().unwrap_or_else(|e| e.into_inner());
                    match runs.get_mut(&id) {
                        Some(task) if task.again || again => {
                            task.again = false;
                            false
                        }
                        _ => {
                            runs.remove(&id);
                            true
                        }
                    }
                };
                if ended {
                    shared.checkpoint.notify_one();
                    shared.prune_versions().await;
                    return;
                }
            }
        };
        let handle = tokio::spawn(driver.instrument(span));
        runs.insert(
            run_id,
            RunTask {
                handle,
                again: false,
                cancel,
                cancel_by,
            },
        );
    }

    /// After a run task panicked (`panics` times in a row): counted; the run is driven again
    /// the first time, failed (audited, the committee told) the second. Returns whether to
    /// drive it again.
    async fn after_panic(
        &self,
        checked: &CheckedRunbook,
        id: &str,
        message: &str,
        panics: u32,
    ) -> bool {
        self.engine.count_panic();
        if panics < MAX_PANICS {
            tracing::error!("run {id}: its task panicked ({message}); driving it again");
            return true;
        }
        tracing::error!("run {id}: its task panicked again ({message}); failing the run");
        let reason = format!("the engine failed while driving the run ({message})");
        cluster::fail_claimed(self, Some(checked), id, &reason).await;
        false
    }

    /// One call of [`Engine::drive`], logged; every commit carries `fence`.
    async fn drive_once(
        &self,
        checked: &CheckedRunbook,
        id: &str,
        cancel: &CancellationToken,
        by: &CancelBy,
        fence: Option<Fence>,
    ) -> Result<Outcome, RunError> {
        // Runs are not cancelled at shutdown (that would end them for good): their tasks
        // are dropped after the grace period and resumed at the next start. `cancel` fires
        // only for an operator's cancellation.
        let outcome = self
            .engine
            .drive_fenced(checked, id, cancel.clone(), by.clone(), fence)
            .await;
        match &outcome {
            Ok(Outcome::Finished(state)) => {
                tracing::info!("run {id} {}", format!("{state:?}").to_lowercase());
            }
            Ok(Outcome::Blocked(rows)) => {
                let waiting: Vec<String> = rows
                    .iter()
                    .map(|(step, host, state)| {
                        let host = if host.is_empty() {
                            String::new()
                        } else {
                            format!(" [{host}]")
                        };
                        format!("{step}{host} {}", crate::run::state_word(*state))
                    })
                    .collect();
                tracing::info!("run {id} waits for a decision: {}", waiting.join(", "));
                self.inputs.notify_one();
            }
            Err(e) => tracing::warn!("run {id}: {e}"),
        }
        self.mail.notify_one();
        outcome
    }

    /// Ids of the runs whose tasks are still going.
    fn active_runs(&self) -> Vec<String> {
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        runs.retain(|_, t| !t.handle.is_finished());
        runs.keys().cloned().collect()
    }

    /// Ends every run task (their state is on disk; the next start resumes them).
    fn abort_runs(&self) {
        let runs = std::mem::take(&mut *self.runs.lock().unwrap_or_else(|e| e.into_inner()));
        for (_, task) in runs {
            task.handle.abort();
        }
    }

    /// Whether any active run has an attempt in flight (a step row `running`).
    async fn attempts_in_flight(&self) -> bool {
        for id in self.active_runs() {
            match self.engine.store.steps(&id).await {
                Ok(rows) if rows.iter().any(|r| r.state == StepState::Running) => return true,
                Ok(_) => {}
                Err(_) => return true,
            }
        }
        false
    }
}

/// The daemon: a store, the loaded runbooks, and the options.
pub struct Daemon<S: Store> {
    shared: Arc<Shared<S>>,
    options: Options,
    /// The HTTP listener, bound by [`Daemon::new`].
    listener: Option<std::net::TcpListener>,
    /// Why the daemon cannot start (the link secret), reported by [`Daemon::run`].
    refused: Option<DaemonError>,
}

impl<S: Store> Daemon<S> {
    /// Builds the engine over `store`; `runbooks` as [`Runbooks::load`] read them.
    pub fn new(store: S, runbooks: Runbooks, options: Options) -> Daemon<S> {
        let mail = Arc::new(Notify::new());
        let mut engine = Engine::new(store, options.clock.clone(), Mode::Live);
        // Bound here, so that run pages and links carry the real address (`--listen :0`)
        // from the first email on, resumed runs included.
        let (listener, mut refused) = match bind(&options.config) {
            Ok((listener, url)) => {
                engine.public_url = url;
                (Some(listener), None)
            }
            Err(e) => (None, Some(e)),
        };
        // The connectors see `[smtp]` (email and report steps log in as the mailer does),
        // `[ssh]` and `[libvirt]`: the same function builds them for `patchday run`.
        match options.config.connectors() {
            Ok(connectors) => {
                engine.settings = Arc::new(connectors.settings);
                engine.secrets = Arc::new(connectors.secrets);
            }
            Err(e) => {
                refused.get_or_insert(e.into());
            }
        }
        let wake = mail.clone();
        engine.observer = Arc::new(move |_| wake.notify_one());
        match link_minter(&options.config) {
            Ok(minter) => engine.links = Some(Arc::new(minter)),
            Err(e) => {
                refused.get_or_insert(e);
            }
        }
        let auth = match auth_state(&options.config, &engine.public_url) {
            Ok(auth) => auth,
            Err(e) => {
                refused.get_or_insert(e);
                auth_state_unkeyed(&options.config)
            }
        };
        let mut options = options;
        if options.config.security.api_tokens_file.is_none() {
            options.config.security.api_tokens_file =
                local_api_tokens(&options.config.database_url);
        }
        let api_tokens = match &options.config.security.api_tokens_file {
            Some(path) => match tokens::ApiTokens::load(path) {
                Ok(tokens) => tokens,
                Err(e) => {
                    refused.get_or_insert(e.into());
                    tokens::ApiTokens::default()
                }
            },
            None => {
                tracing::info!("no [security] api_tokens_file: the JSON API refuses every request");
                tokens::ApiTokens::default()
            }
        };
        let cluster = cluster::Cluster::new(
            cluster::node_id(&options.config),
            options.config.server.lease_ttl,
            Arc::new(crate::clock::SystemClock),
        );
        let shared = Arc::new(Shared {
            engine: Arc::new(engine),
            runbooks: RwLock::new(Arc::new(Runbooks::default())),
            versions: versions::Versions::default(),
            reschedule: Arc::new(Notify::new()),
            counters: metrics::Counters::default(),
            clock: options.clock.clone(),
            shutdown: CancellationToken::new(),
            mail,
            inputs: Arc::new(Notify::new()),
            checkpoint: Arc::new(Notify::new()),
            runs: Mutex::new(BTreeMap::new()),
            started_at: options.clock.now(),
            api_tokens: RwLock::new(Arc::new(api_tokens)),
            cluster,
            auth,
            chain: chain::ChainWatch::default(),
            compliance: options.config.compliance.clone(),
        });
        shared.set_runbooks(runbooks);
        Daemon {
            shared,
            options,
            listener,
            refused,
        }
    }

    /// The token that stops the daemon (cancel it to shut down, as SIGTERM does).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shared.shutdown.clone()
    }

    /// Resumes unfinished runs, starts the scheduler, the mailer and the HTTP server, reports
    /// `ready`, and returns after a graceful shutdown.
    pub async fn run(self, ready: impl FnOnce(&Ready)) -> Result<(), DaemonError> {
        let Daemon {
            shared,
            options,
            listener,
            refused,
        } = self;
        if let Some(e) = refused {
            return Err(e);
        }
        let listener = listener.expect("bound when nothing was refused");
        let listener = tokio::net::TcpListener::from_std(listener).map_err(DaemonError::Http)?;
        let local = listener.local_addr().map_err(DaemonError::Http)?;
        let url = shared.engine.public_url.clone();
        // Leads (and resumes the runs nobody holds) if no other daemon does.
        cluster::start(&shared).await;
        runbooks::record_initial(&shared).await?;

        let leadership = tokio::spawn(cluster::lead(shared.clone()));
        let scheduler = tokio::spawn(scheduler::run(shared.clone(), options.virtual_clock));
        let mailer = tokio::spawn(mailer::run(shared.clone(), options.delivery.clone()));
        let expiry = tokio::spawn(expiry::run(shared.clone(), options.virtual_clock));
        let last_checkpoint = CancellationToken::new();
        let checkpointer = tokio::spawn(checkpointer::run(
            shared.clone(),
            options.config.audit.clone(),
            last_checkpoint.clone(),
        ));
        let chain_watch = tokio::spawn(chain::run(shared.clone()));
        let watcher = tokio::spawn(runbooks::watch(
            shared.clone(),
            runbooks::Watch {
                dir: options.config.runbooks.dir.clone(),
                blackouts: options.config.blackouts.clone(),
                git_pull: options.config.runbooks.git_pull,
                git_timeout: options.config.runbooks.git_timeout,
                ansible: options.config.ansible_inventories.clone(),
            },
        ));
        let tokens_watcher = options
            .config
            .security
            .api_tokens_file
            .clone()
            .map(|path| tokio::spawn(tokens::watch(shared.clone(), path)));
        let tls = match &options.config.server.tls {
            None => None,
            Some((cert, key)) => {
                let certificates = Arc::new(
                    http::tls::Certificates::load(cert, key)
                        .map_err(|e| DaemonError::Tls(e.to_string()))?,
                );
                tokio::spawn(http::tls::watch(
                    certificates.clone(),
                    shared.shutdown.clone(),
                ));
                let acceptor = http::tls::acceptor(certificates)
                    .map_err(|e| DaemonError::Tls(e.to_string()))?;
                Some(acceptor)
            }
        };
        let server = {
            let router = http::router(shared.clone());
            let stop = shared.shutdown.clone();
            let files = http::serve::open_files_limit();
            let cap = http::serve::connection_cap(files);
            tracing::info!("http: at most {cap} connections (open-files limit {files})");
            let limits = (cap, options.config.server.header_timeout);
            let proxies = options.config.server.trusted_proxies.clone();
            tokio::spawn(http::serve::serve(
                listener, router, limits, tls, proxies, stop,
            ))
        };
        ready(&Ready {
            url,
            addr: local,
            database: describe_database(&options.config.database_url),
            delivery: options.delivery.describe(),
            runbooks: shared.runbooks().by_name.len(),
            rejected: shared.runbooks().rejected.len(),
            sign_in: match shared.auth.local_sign_in_path() {
                Ok(path) => Some(format!("{}{path}", shared.engine.public_url)),
                Err(e) => {
                    tracing::warn!("no local sign-in URL: {e}");
                    None
                }
            },
        });

        shared.shutdown.cancelled().await;
        tracing::info!("shutting down: no new cycles; waiting for running steps");
        let _ = leadership.await;
        let _ = scheduler.await;
        let _ = expiry.await;
        let _ = watcher.await;
        let _ = chain_watch.await;
        if let Some(task) = tokens_watcher {
            let _ = task.await;
        }
        let deadline = tokio::time::Instant::now() + options.grace;
        while !shared.active_runs().is_empty()
            && shared.attempts_in_flight().await
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let left = shared.active_runs();
        if !left.is_empty() {
            tracing::info!(
                "{} run(s) left to resume at the next start: {}",
                left.len(),
                left.join(", ")
            );
        }
        shared.abort_runs();
        last_checkpoint.cancel();
        let _ = checkpointer.await;
        cluster::stop(&shared).await;
        // One last pass of the outbox, then stop.
        let _ = mailer.await;
        let _ = server.await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Binds `[server] listen` (port 0: a free port); returns the listener and the public URL
/// (`[server] public_url`, else `http://<the bound address>`).
fn bind(config: &Config) -> Result<(std::net::TcpListener, String), DaemonError> {
    let addr = config.server.listen;
    let listen = |source| DaemonError::Listen { addr, source };
    let listener = std::net::TcpListener::bind(addr).map_err(listen)?;
    listener.set_nonblocking(true).map_err(listen)?;
    let local = listener.local_addr().map_err(listen)?;
    let url = match &config.server.public_url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None if config.server.tls.is_some() => format!("https://{local}"),
        None => format!("http://{local}"),
    };
    Ok((listener, url))
}

/// The engine's link minter: the secret from `[security] link_secret_file` (at least 32 bytes;
/// a trailing newline is not part of it); without one, from `<database file>.link-key` next to
/// a SQLite database, created with 32 random bytes (mode 0600) if missing, so links survive a
/// restart; with neither (an in-memory or PostgreSQL database), a random secret for this
/// process only (logged: its links die with it). Links live `[security] link_ttl` unless a
/// step sets `expires`; nonces come from the OS.
pub fn link_minter(config: &Config) -> Result<LinkMinter, DaemonError> {
    let secret = link_secret(config)?;
    let signer = LinkSigner::new(&secret).map_err(|e| DaemonError::LinkSecret(e.to_string()))?;
    let ttl = chrono::Duration::from_std(config.security.link_ttl)
        .map_err(|e| DaemonError::LinkSecret(format!("link_ttl: {e}")))?;
    let random = Arc::new(|buf: &mut [u8]| getrandom::fill(buf).expect("OS randomness"));
    Ok(LinkMinter::new(signer, ttl, random))
}

/// The sign-in links' signer: keyed from the link secret ([`link_secret`]), so the links
/// `patchday login-url` makes work on the daemon that shares its secret.
pub fn sign_in_links(config: &Config) -> Result<crate::auth::SignInLinks, DaemonError> {
    crate::auth::SignInLinks::new(&link_secret(config)?)
        .map_err(|e| DaemonError::LinkSecret(e.to_string()))
}

/// The HTTP server's sign-in state: the sign-in links' key, `[auth]`'s roles, `Secure`
/// cookies when the public URL is `https://`.
fn auth_state(config: &Config, public_url: &str) -> Result<http::auth::AuthState, DaemonError> {
    Ok(http::auth::AuthState {
        links: sign_in_links(config)?,
        roles: config.roles.clone(),
        secure: public_url.starts_with("https://"),
        clock: Arc::new(crate::clock::SystemClock),
        refusals: Default::default(),
        random: http::auth::os_random,
        oidc: oidc(config, public_url)?,
        approvals_sign_in: config.approvals_sign_in,
        metrics_token: metrics_token(config)?,
    })
}

/// SHA-256 of the token in `[server] metrics_token_file` (trimmed), if one is configured.
fn metrics_token(config: &Config) -> Result<Option<[u8; 32]>, DaemonError> {
    let Some(path) = &config.server.metrics_token_file else {
        return Ok(None);
    };
    let token = std::fs::read_to_string(path).map_err(|source| DaemonError::File {
        what: "[server] metrics_token_file",
        path: path.display().to_string(),
        source,
    })?;
    Ok(Some(
        <sha2::Sha256 as sha2::Digest>::digest(token.trim().as_bytes()).into(),
    ))
}

/// The OIDC client of `[auth.oidc]` (its secret read from `client_secret_file`), if configured.
fn oidc(
    config: &Config,
    public_url: &str,
) -> Result<Option<Arc<crate::auth::oidc::Oidc>>, DaemonError> {
    let Some(oidc) = &config.oidc else {
        return Ok(None);
    };
    let path = &oidc.client_secret_file;
    let secret = std::fs::read_to_string(path).map_err(|source| DaemonError::File {
        what: "[auth.oidc] client_secret_file",
        path: path.display().to_string(),
        source,
    })?;
    let redirect = format!("{public_url}/signin/oidc/callback");
    crate::auth::oidc::Oidc::new(oidc.clone(), secret.trim().to_string(), &redirect)
        .map(|o| Some(Arc::new(o)))
        .map_err(|e| DaemonError::Oidc(e.to_string()))
}

/// A stand-in for a daemon that refuses to start anyway (its link secret is unusable).
fn auth_state_unkeyed(config: &Config) -> http::auth::AuthState {
    let mut key = [0u8; 32];
    http::auth::os_random(&mut key);
    http::auth::AuthState {
        links: crate::auth::SignInLinks::new(&key).expect("32 bytes"),
        roles: config.roles.clone(),
        secure: false,
        clock: Arc::new(crate::clock::SystemClock),
        refusals: Default::default(),
        random: http::auth::os_random,
        oidc: None,
        approvals_sign_in: config.approvals_sign_in,
        metrics_token: Some([0; 32]),
    }
}

/// Whether the link secret outlives the daemon's process (a file names it, or the key sits
/// next to a SQLite database), so that another process (`patchday login-url`) can sign with it.
pub fn link_secret_lasts(config: &Config) -> bool {
    config.security.link_secret_file.is_some() || sqlite_file(&config.database_url).is_some()
}

/// The link secret: `[security] link_secret_file`, else the key file next to a SQLite
/// database (created if missing), else random for this process (see [`link_minter`]).
fn link_secret(config: &Config) -> Result<Vec<u8>, DaemonError> {
    let file = |what: &'static str, path: &Path, source: std::io::Error| DaemonError::File {
        what,
        path: path.display().to_string(),
        source,
    };
    let secret: Vec<u8> = if let Some(path) = &config.security.link_secret_file {
        let mut bytes =
            std::fs::read(path).map_err(|e| file("[security] link_secret_file", path, e))?;
        while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            bytes.pop();
        }
        bytes
    } else if let Some(path) = sqlite_file(&config.database_url) {
        let key = PathBuf::from(format!("{}.link-key", path.display()));
        match std::fs::read(&key) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let secret = hex(&random_bytes(32)?).into_bytes();
                write_private(&key, &secret).map_err(|e| file("link key", &key, e))?;
                tracing::info!("created the link key {}", key.display());
                secret
            }
            Err(e) => return Err(file("link key", &key, e)),
        }
    } else {
        tracing::info!(
            "no [security] link_secret_file: links are signed with a key that dies with this process",
        );
        random_bytes(32)?
    };
    Ok(secret)
}

/// With no `[security] api_tokens_file` and a SQLite database file: the tokens file
/// `<database>.api-tokens` next to it, created on first start with one token named `local`
/// whose plain text is written to `<database>.local-token` (mode 0600), where the CLI on this
/// machine finds it ([`local_token_file`]). Whoever can read the database folder can operate
/// the daemon, as they could edit the database anyway. `None` for other databases.
fn local_api_tokens(database_url: &str) -> Option<PathBuf> {
    let token_file = local_token_file(database_url)?;
    let tokens_file = PathBuf::from(format!(
        "{}.api-tokens",
        sqlite_file(database_url)?.display()
    ));
    if tokens_file.exists() {
        return Some(tokens_file);
    }
    let made = tokens::new_token()
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|token| {
            write_private(&token_file, format!("{token}\n").as_bytes())?;
            let line = format!("local {}\n", tokens::token_hash(&token));
            write_private(&tokens_file, line.as_bytes())
        });
    match made {
        Ok(()) => {
            tracing::info!(
                "created the API token `local` in {} (the CLI on this machine reads it)",
                token_file.display()
            );
            Some(tokens_file)
        }
        Err(e) => {
            tracing::warn!("cannot create {}: {e}", tokens_file.display());
            None
        }
    }
}

/// `<database>.local-token`: where a daemon on a SQLite file keeps its `local` API token.
pub fn local_token_file(database_url: &str) -> Option<PathBuf> {
    let db = sqlite_file(database_url)?;
    Some(PathBuf::from(format!("{}.local-token", db.display())))
}

/// The file of a `sqlite://` URL (`None` for memory databases and PostgreSQL).
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let path = rest.trim_start_matches("//");
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path.contains(":memory:") || url.contains("mode=memory") {
        return None;
    }
    Some(PathBuf::from(path))
}

fn random_bytes(n: usize) -> Result<Vec<u8>, DaemonError> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes)
        .map_err(|e| DaemonError::LinkSecret(format!("OS randomness: {e}")))?;
    Ok(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates `path` readable by its owner only (fails if it exists).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut out = options.open(path)?;
    out.write_all(bytes)?;
    out.sync_all()
}

/// Waits for SIGTERM or SIGINT, then cancels `token`.
pub async fn on_signal(token: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::warn!("cannot listen for signals");
            return;
        };
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
            _ = token.cancelled() => return,
        };
        // Shut down first, then say so: the shutdown must not depend on the log.
        token.cancel();
        tracing::info!("{name} received");
    }
    #[cfg(not(unix))]
    {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = token.cancelled() => return,
        }
        token.cancel();
        tracing::info!("Ctrl-C received");
    }
}

/// What the daemon's unit tests build daemons from.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use super::{Delivery, LoadedRunbook, Options};
    use crate::clock::Clock;
    use crate::config::Config;
    use crate::runbook::load_runbook;
    use crate::validate::{Sources, check};

    /// `yaml`, read from `file`, checked and loaded as the daemon holds a runbook.
    pub fn loaded(file: &str, yaml: &str) -> LoadedRunbook {
        let mut sources = Sources::default();
        sources.insert(file.into(), Ok(yaml.to_string()));
        let (checked, diags) = check(&load_runbook(file, yaml), Path::new(""), &sources);
        let checked = checked.unwrap_or_else(|| panic!("{diags:#?}"));
        LoadedRunbook {
            content_hash: checked.version.hash(),
            checked: Arc::new(checked),
            file: file.into(),
            commit: None,
        }
    }

    /// Polls `check` every 20 ms for at most 20 s.
    pub async fn until<F: std::future::Future<Output = bool>>(what: &str, check: impl Fn() -> F) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !check().await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Options on `clock` mailing through `delivery`: a free loopback port, and an in-memory
    /// database URL (so no link key file is made next to a database).
    pub fn options(clock: Arc<dyn Clock>, delivery: Delivery) -> Options {
        let mut config = Config {
            database_url: "sqlite::memory:".into(),
            ..Default::default()
        };
        config.server.listen = "127.0.0.1:0".parse().expect("an address");
        Options {
            config,
            clock,
            virtual_clock: false,
            delivery,
            grace: Duration::from_secs(1),
        }
    }
}

#[cfg(test)]
mod lasting_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_is_described_without_credentials() {
        assert_eq!(
            describe_database("sqlite://patchday.db"),
            "SQLite patchday.db"
        );
        assert_eq!(
            describe_database("sqlite:///var/lib/patchday/p.db?mode=rwc"),
            "SQLite /var/lib/patchday/p.db"
        );
        assert_eq!(
            describe_database("postgres://pd:hunter2@db.example.com/patchday"),
            "PostgreSQL db.example.com/patchday"
        );
    }
}
