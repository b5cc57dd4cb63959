//! The runbooks folder as a git work tree (DESIGN §5, §9): which commit a run's runbook was
//! read at, and `git pull --ff-only` for `[runbooks] git_pull`. Runs the `git` program (no
//! library): the folder is an operator's checkout, and git's own behaviour (credentials,
//! hooks, config) is what they expect. Blocking: call from `spawn_blocking` in async code.

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Why a git command failed.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run git: {0}")]
    Spawn(std::io::Error),
    #[error("`git {args}` failed: {stderr}")]
    Failed { args: String, stderr: String },
}

/// The commit checked out in the work tree holding `dir`: the full hash, with `-dirty`
/// appended when tracked files differ from it (the runbook may not be what the commit
/// holds). `None` when `dir` is not in a git work tree or git is missing.
pub fn commit_of(dir: &Path) -> Option<String> {
    let head = git(dir, &["rev-parse", "--verify", "--quiet", "HEAD"]).ok()?;
    let head = head.trim().to_string();
    if head.is_empty() {
        return None;
    }
    let status = git(dir, &["status", "--porcelain", "--untracked-files=no"]).ok()?;
    Some(if status.trim().is_empty() {
        head
    } else {
        format!("{head}-dirty")
    })
}

/// `git pull --ff-only` in the work tree holding `dir`; returns git's summary line. Never
/// prompts (no terminal, `GIT_TERMINAL_PROMPT=0`): a pull that needs credentials fails.
pub fn pull_ff_only(dir: &Path) -> Result<String, GitError> {
    let out = git(dir, &["pull", "--ff-only", "--quiet"])?;
    Ok(out.trim().to_string())
}

/// Runs `git -C dir args...`; stdout on success.
fn git(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    let output: Output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .output()
        .map_err(GitError::Spawn)?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(GitError::Failed {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(dir: &Path, args: &[&str]) {
        let status = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    }

    #[test]
    fn a_folder_outside_git_has_no_commit() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(commit_of(dir.path()), None);
    }

    #[test]
    fn the_commit_is_read_and_local_edits_mark_it_dirty() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        sh(root, &["init", "-q"]);
        std::fs::write(root.join("a.yaml"), "name: a\n").unwrap();
        sh(root, &["add", "a.yaml"]);
        sh(root, &["commit", "-q", "-m", "a"]);
        let head = commit_of(root).expect("a commit");
        assert_eq!(head.len(), 40, "{head}");
        // An untracked file does not make it dirty; an edited tracked file does.
        std::fs::write(root.join("outbox.eml"), "x").unwrap();
        assert_eq!(commit_of(root), Some(head.clone()));
        std::fs::write(root.join("a.yaml"), "name: b\n").unwrap();
        assert_eq!(commit_of(root), Some(format!("{head}-dirty")));
    }

    #[test]
    fn pull_ff_only_brings_new_commits_and_refuses_a_diverged_history() {
        let dir = tempfile::tempdir().unwrap();
        let upstream = dir.path().join("upstream");
        let clone = dir.path().join("clone");
        std::fs::create_dir(&upstream).unwrap();
        sh(&upstream, &["init", "-q", "-b", "main"]);
        std::fs::write(upstream.join("a.yaml"), "1\n").unwrap();
        sh(&upstream, &["add", "."]);
        sh(&upstream, &["commit", "-q", "-m", "1"]);
        sh(
            dir.path(),
            &["clone", "-q", upstream.to_str().unwrap(), "clone"],
        );
        std::fs::write(upstream.join("a.yaml"), "2\n").unwrap();
        sh(&upstream, &["commit", "-q", "-am", "2"]);
        pull_ff_only(&clone).unwrap();
        assert_eq!(
            std::fs::read_to_string(clone.join("a.yaml")).unwrap(),
            "2\n"
        );
        // Both sides move on: a fast-forward is impossible, the pull fails and changes nothing.
        std::fs::write(upstream.join("a.yaml"), "3\n").unwrap();
        sh(&upstream, &["commit", "-q", "-am", "3"]);
        std::fs::write(clone.join("a.yaml"), "local\n").unwrap();
        sh(&clone, &["commit", "-q", "-am", "local"]);
        let err = pull_ff_only(&clone).unwrap_err();
        assert!(matches!(err, GitError::Failed { .. }), "{err}");
        assert_eq!(
            std::fs::read_to_string(clone.join("a.yaml")).unwrap(),
            "local\n"
        );
    }
}
