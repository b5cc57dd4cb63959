//! Bearer tokens of the JSON API (DESIGN §7, §9 `[security] api_tokens_file`).
//!
//! The file holds one token per line, as its name and the SHA-256 of the token in hex, never
//! the token itself:
//!
//! ```text
//! # name   sha256(token), hex
//! alice    5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8
//! ci-bot   6b86b273ff34fce19b44dcec4ca8a1b9b6d2e09d0b05e0a2e5ad0a4b2e3f0c1d
//! ```
//!
//! A line may go on with `scopes=read,operate,approve,admin,feed` (what the token may do, see
//! [`Scope`]; without it, `admin`: the first format's tokens could do everything) and
//! `owner=EMAIL` (the person an `approve` token decides as; required with `approve`).
//! Blank lines and lines starting with `#` are ignored; names are unique and made of letters,
//! digits and `.`, `_`, `-`, `@`. `patchday api-token NAME` prints a new random token and its
//! line. A request carries `Authorization: Bearer <token>`; the SHA-256 of the given token is
//! compared with every stored hash in constant time (no early exit, every entry looked at), and
//! the API acts as `api:<name>`. Without a file the API refuses every request.
//!
//! The daemon looks at the file every second ([`watch`]) and takes a changed file at once: a
//! token added or removed works or stops working without a restart. A changed file that does
//! not parse is logged and the tokens in force stay.

use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::Shared;
use super::runbooks::{WATCH_INTERVAL, stamp};
use crate::store::Store;

/// Why the tokens file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    #[error("{path}: cannot read the API tokens file: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: String,
        line: usize,
        message: String,
    },
}

/// What a token may do. `read` sees runbooks and runs; `operate` also triggers, cancels and
/// settles interrupted steps; `approve` decides the approval and task steps its owner is one of
/// the people of, as that person; `admin` may do all of it and decide any step as itself (an
/// override, audited as one). `feed` reads only the calendar feed (`/calendar.ics?token=...`):
/// such a token travels in URLs, so it grants nothing else, and no other scope (not even
/// `admin`) grants the feed, so a powerful token is never pasted into a calendar program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Read,
    Operate,
    Approve,
    Admin,
    Feed,
}

impl Scope {
    fn parse(word: &str) -> Option<Scope> {
        match word {
            "read" => Some(Scope::Read),
            "operate" => Some(Scope::Operate),
            "approve" => Some(Scope::Approve),
            "admin" => Some(Scope::Admin),
            "feed" => Some(Scope::Feed),
            _ => None,
        }
    }
}

/// One token: its name, scopes and owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub name: String,
    pub scopes: Vec<Scope>,
    /// The person the token acts for (`owner=` in the file): an `approve` token decides as them.
    pub owner: Option<String>,
}

impl Grant {
    /// Whether the token holds `scope` (`admin` holds every scope but `feed`; `operate`
    /// includes `read`; `feed` is held only by itself).
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.iter().any(|s| {
            *s == scope
                || (*s == Scope::Admin && scope != Scope::Feed)
                || (*s == Scope::Operate && scope == Scope::Read)
        })
    }
}

/// The API tokens: each one's grant and the SHA-256 of the token.
#[derive(Debug, Clone, Default)]
pub struct ApiTokens {
    entries: Vec<(Grant, [u8; 32])>,
}

impl ApiTokens {
    /// Reads the tokens file at `path`.
    pub fn load(path: &std::path::Path) -> Result<ApiTokens, TokensError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| TokensError::Read {
            path: shown.clone(),
            source,
        })?;
        ApiTokens::parse(&text).map_err(|(line, message)| TokensError::Invalid {
            path: shown,
            line,
            message,
        })
    }

    /// Parses the file's text; an error is (line number, message).
    pub fn parse(text: &str) -> Result<ApiTokens, (usize, String)> {
        let mut entries: Vec<(Grant, [u8; 32])> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (grant, digest) = parse_line(line).map_err(|m| (line_no, m))?;
            if entries.iter().any(|(g, _)| g.name == grant.name) {
                return Err((line_no, format!("`{}` appears twice", grant.name)));
            }
            entries.push((grant, digest));
        }
        Ok(ApiTokens { entries })
    }

    /// How many tokens there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is none (the API then refuses every request).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The grant of the token, if it is one of ours. Constant time in the token's content.
    pub fn check(&self, token: &str) -> Option<&Grant> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (grant, stored) in &self.entries {
            let diff = stored
                .iter()
                .zip(digest.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 && found.is_none() {
                found = Some(grant);
            }
        }
        found
    }
}

/// `NAME SHA256HEX [scopes=a,b] [owner=EMAIL]`; without `scopes=`, `admin` (the file's first
/// format, whose tokens could do everything).
fn parse_line(line: &str) -> Result<(Grant, [u8; 32]), String> {
    let mut words = line.split_whitespace();
    let (Some(name), Some(hash)) = (words.next(), words.next()) else {
        return Err(
            "write `NAME SHA256HEX [scopes=read,operate,approve,admin,feed] [owner=EMAIL]`".into(),
        );
    };
    if !valid_name(name) {
        return Err(format!(
            "`{name}`: a name is letters, digits, `.`, `_`, `-`, `@`"
        ));
    }
    let digest =
        parse_hex32(hash).ok_or("the hash must be 64 hex digits (the SHA-256 of the token)")?;
    let mut grant = Grant {
        name: name.to_string(),
        scopes: vec![Scope::Admin],
        owner: None,
    };
    for word in words {
        match word.split_once('=') {
            Some(("scopes", list)) => {
                grant.scopes = list
                    .split(',')
                    .map(|s| {
                        Scope::parse(s).ok_or(format!(
                            "`{s}` is not read, operate, approve, admin or feed"
                        ))
                    })
                    .collect::<Result<_, _>>()?;
            }
            Some(("owner", email)) => {
                grant.owner = Some(
                    crate::auth::normalize_email(email)
                        .ok_or(format!("owner `{email}` is not an email address"))?,
                );
            }
            _ => return Err(format!("`{word}`: expected scopes=... or owner=...")),
        }
    }
    if grant.scopes.contains(&Scope::Approve) && grant.owner.is_none() {
        return Err("an `approve` token needs an owner=EMAIL: it decides as that person".into());
    }
    Ok((grant, digest))
}

/// Whether `name` may name a token.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

/// The SHA-256 of a token, in hex (what the tokens file stores).
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new random token: `pdt_` and 32 random bytes in hex.
pub fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("pdt_{hex}"))
}

fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Reloads the tokens file at `path` whenever its size or modification time changes, until
/// shutdown.
pub async fn watch<S: Store>(shared: Arc<Shared<S>>, path: PathBuf) {
    let mut last = stamp(&path);
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tokio::time::sleep(WATCH_INTERVAL) => {}
        }
        let now = stamp(&path);
        if now == last {
            continue;
        }
        last = now;
        match ApiTokens::load(&path) {
            Ok(tokens) => {
                tracing::info!(
                    "API tokens reloaded from {}: {} token(s)",
                    path.display(),
                    tokens.len()
                );
                shared.set_api_tokens(tokens);
            }
            Err(e) => tracing::warn!("{e}; the API tokens in force stay"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_by_their_hash() {
        let token = new_token().unwrap();
        assert!(token.starts_with("pdt_") && token.len() == 68);
        let text = format!(
            "# comment\n\nalice {}\nbob {}\n",
            token_hash(&token),
            token_hash("other")
        );
        let tokens = ApiTokens::parse(&text).unwrap();
        assert_eq!(tokens.len(), 2);
        assert_eq!(tokens.check(&token).map(|g| g.name.as_str()), Some("alice"));
        assert_eq!(tokens.check("other").map(|g| g.name.as_str()), Some("bob"));
        assert_eq!(tokens.check("wrong"), None);
        assert_eq!(tokens.check(""), None);
    }

    #[test]
    fn bad_lines_are_reported_with_their_number() {
        assert_eq!(ApiTokens::parse("alice\n").unwrap_err().0, 1);
        assert_eq!(ApiTokens::parse("\nalice xyz\n").unwrap_err().0, 2);
        let hash = token_hash("t");
        assert!(
            ApiTokens::parse(&format!("a {hash}\na {hash}\n"))
                .unwrap_err()
                .1
                .contains("twice")
        );
        assert!(ApiTokens::parse(&format!("bad/name {hash}\n")).is_err());
        assert!(ApiTokens::parse(&format!("a {hash} extra\n")).is_err());
        assert!(ApiTokens::parse(&format!("a {hash} scopes=approve\n")).is_err());
        assert!(ApiTokens::parse(&format!("a {hash} scopes=root\n")).is_err());
    }

    #[test]
    fn scopes_and_owners_are_read_and_old_lines_are_admin() {
        let hash = token_hash("t");
        let other = token_hash("u");
        let text =
            format!("old {hash}\nalice {other} scopes=read,approve owner=Alice@Example.com\n");
        let tokens = ApiTokens::parse(&text).unwrap();
        let old = tokens.check("t").unwrap();
        assert!(old.allows(Scope::Approve) && old.allows(Scope::Operate) && old.owner.is_none());
        let alice = tokens.check("u").unwrap();
        assert_eq!(alice.owner.as_deref(), Some("alice@example.com"));
        assert!(alice.allows(Scope::Read) && alice.allows(Scope::Approve));
        assert!(!alice.allows(Scope::Operate) && !alice.allows(Scope::Admin));
        assert!(!old.allows(Scope::Feed), "admin does not grant the feed");
        let feed = ApiTokens::parse(&format!("cal {hash} scopes=feed\n")).unwrap();
        let feed = &feed.entries[0].0;
        assert!(feed.allows(Scope::Feed));
        assert!(!feed.allows(Scope::Read) && !feed.allows(Scope::Operate));
    }
}
