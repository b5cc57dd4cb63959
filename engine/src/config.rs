//! The configuration file (`patchday.toml`, DESIGN §9). So far only the org-wide
//! `[[blackout]]` freezes are read; the daemon's sections (`[server]`, `[smtp]`, ...) come with
//! the daemon and are ignored until then.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::calendar::{Blackout, parse_date};

/// The file read when `--config` is not given, if it exists in the working folder.
pub const DEFAULT_FILE: &str = "patchday.toml";

/// What the configuration says.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Org-wide change freezes, added to every runbook's own blackouts.
    pub blackouts: Vec<Blackout>,
}

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read the configuration: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
}

#[derive(Debug, Deserialize)]
struct RawConfig {
    #[serde(default)]
    blackout: Vec<RawBlackout>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBlackout {
    from: String,
    to: String,
    reason: String,
}

/// Reads `explicit`, or `patchday.toml` in the working folder if it exists, or nothing.
pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None if Path::new(DEFAULT_FILE).is_file() => PathBuf::from(DEFAULT_FILE),
        None => return Ok(Config::default()),
    };
    let file = path.display().to_string();
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
        file: file.clone(),
        source,
    })?;
    parse(&file, &text)
}

/// Parses configuration text (no I/O).
pub fn parse(file: &str, text: &str) -> Result<Config, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        file: file.to_string(),
        message,
    };
    let raw: RawConfig =
        toml::from_str(text).map_err(|e| invalid(e.to_string().trim_end().to_string()))?;
    let mut blackouts = Vec::new();
    for (i, b) in raw.blackout.into_iter().enumerate() {
        let at = |e: String| invalid(format!("[[blackout]] #{}: {e}", i + 1));
        let from = parse_date(&b.from).map_err(at)?;
        let to = parse_date(&b.to).map_err(at)?;
        blackouts.push(Blackout::new(from, to, b.reason).map_err(at)?);
    }
    Ok(Config { blackouts })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_org_wide_blackouts() {
        let config = parse("p.toml", "[server]\nlisten = \"127.0.0.1:8080\"\n\n[[blackout]]\nfrom = \"2026-11-25\"\nto = \"2026-11-30\"\nreason = \"Black Friday\"\n").unwrap();
        assert_eq!(config.blackouts.len(), 1);
        assert_eq!(config.blackouts[0].reason, "Black Friday");
    }

    #[test]
    fn a_bad_blackout_names_the_file_and_entry() {
        let err = parse(
            "p.toml",
            "[[blackout]]\nfrom = \"2026-11-31\"\nto = \"2026-12-01\"\nreason = \"x\"\n",
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("p.toml: [[blackout]] #1: "),
            "{err}"
        );
        let err = parse("p.toml", "[[blackout]]\nfrom = 2026-11-01\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }
}
