//! `patchday sessions list|revoke ID` (issue #11): the live sessions in the daemon's database
//! (as `/sessions` shows an admin), and revoking one with its `auth.session_revoked` event
//! (actor `cli:<user>`). Reads the existing database like `patchday audit`; never creates one.

use std::process::ExitCode;

use super::{Globals, UsageError};
use crate::auth::session;
use crate::store::Store as _;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: SessionsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum SessionsCommand {
    /// Every live session: id, person, how signed in, source address, created, last seen,
    /// expires (JSON with --format json).
    List,
    /// Revoke the live session ID (as `list` prints it): it is signed out at its next request.
    Revoke {
        /// The session's id.
        id: String,
    },
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    let json = matches!(args.command, SessionsCommand::List)
        && super::text_or_json(globals.format, "sessions list")?;
    let config = globals.configuration()?;
    super::on_existing_store(&config.database_url, async |store| {
        let now = globals.clock.now();
        let live = store.live_sessions(now).await?;
        match args.command {
            SessionsCommand::List => list(&live, json),
            SessionsCommand::Revoke { id } => {
                let Some(row) = session::find(&live, &id) else {
                    return Err(UsageError(format!("no live session has the id `{id}`")).into());
                };
                let actor = format!("cli:{}", super::run::operator());
                let change = session::revocation(row, actor, None, now, now);
                store.commit(vec![change]).await?;
                outln!("revoked session {id} of {}", row.session.email);
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

/// Prints the live sessions, newest first.
fn list(live: &[crate::store::SessionRow], json: bool) -> anyhow::Result<ExitCode> {
    let ts =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for row in live {
        let s = &row.session;
        let id = session::public_id(&s.id_hash);
        let source = s.source_ip.as_deref().unwrap_or("-");
        if json {
            let line = serde_json::json!({
                "id": id, "email": s.email, "via": s.via, "source_ip": s.source_ip,
                "created_at": ts(s.created_at), "last_seen_at": ts(row.last_seen_at),
                "expires_at": ts(s.expires_at),
            });
            outln!("{line}");
        } else {
            outln!(
                "{id}  {}  {}  {source}  created {}  last seen {}  expires {}",
                s.email,
                s.via,
                ts(s.created_at),
                ts(row.last_seen_at),
                ts(s.expires_at)
            );
        }
    }
    if live.is_empty() && !json {
        outln!("no live sessions");
    }
    Ok(ExitCode::SUCCESS)
}
