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

/// The API tokens: names and the SHA-256 of each token.
#[derive(Debug, Clone, Default)]
pub struct ApiTokens {
    entries: Vec<(String, [u8; 32])>,
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
        let mut entries: Vec<(String, [u8; 32])> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let (Some(name), Some(hash), None) = (words.next(), words.next(), words.next()) else {
                return Err((line_no, "write `NAME SHA256HEX`".into()));
            };
            if !valid_name(name) {
                return Err((
                    line_no,
                    format!("`{name}`: a name is letters, digits, `.`, `_`, `-`, `@`"),
                ));
            }
            let Some(digest) = parse_hex32(hash) else {
                return Err((
                    line_no,
                    "the hash must be 64 hex digits (the SHA-256 of the token)".into(),
                ));
            };
            if entries.iter().any(|(n, _)| n == name) {
                return Err((line_no, format!("`{name}` appears twice")));
            }
            entries.push((name.to_string(), digest));
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

    /// The name of the token, if it is one of ours. Constant time in the token's content.
    pub fn check(&self, token: &str) -> Option<&str> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (name, stored) in &self.entries {
            let diff = stored
                .iter()
                .zip(digest.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 && found.is_none() {
                found = Some(name.as_str());
            }
        }
        found
    }
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
        assert_eq!(tokens.check(&token), Some("alice"));
        assert_eq!(tokens.check("other"), Some("bob"));
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
    }
}
