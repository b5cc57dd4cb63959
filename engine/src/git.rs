//! The runbooks folder as a git work tree (DESIGN §5, §9): which commit a run's runbook was
//! read at, and `git pull --ff-only` for `[runbooks] git_pull`. Runs the `git` program (no
//! library): the folder is an operator's checkout, and git's own behaviour (credentials,
//! hooks, config) is what they expect. [`commit_of`] blocks (call it from `spawn_blocking` in
//! async code); [`pull_ff_only`] is async and bounded: a pull that hangs (a remote that never
//! answers) is killed with every process it started when its time is up, or as soon as its
//! future is dropped (the daemon shutting down never waits for it).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// Why a git command failed.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run git: {0}")]
    Spawn(std::io::Error),
    #[error("`git {args}` failed: {stderr}")]
    Failed { args: String, stderr: String },
    #[error("`git pull` took longer than {}s and was killed", .0.as_secs())]
    TimedOut(Duration),
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
/// prompts (no terminal, `GIT_TERMINAL_PROMPT=0`): a pull that needs credentials fails. Git
/// runs in a process group of its own, killed (SIGKILL, ssh and helpers included) when the
/// pull takes longer than `timeout` or the future is dropped.
pub async fn pull_ff_only(dir: &Path, timeout: Duration) -> Result<String, GitError> {
    let mut command = tokio::process::Command::new("git");
    command
        .arg("-C")
        .arg(dir)
        .args(["pull", "--ff-only", "--quiet"])
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    let child = command.spawn().map_err(GitError::Spawn)?;
    let _group = child.id().map(KillGroup);
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(output) => output.map_err(GitError::Spawn)?,
        Err(_) => return Err(GitError::TimedOut(timeout)),
    };
    finished(&["pull", "--ff-only", "--quiet"], output)
}

/// Kills a process group when dropped (what is left of it, if anything).
struct KillGroup(u32);

impl Drop for KillGroup {
    fn drop(&mut self) {
        use nix::sys::signal::{Signal, killpg};
        use nix::unistd::Pid;
        if let Ok(pgid) = i32::try_from(self.0) {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }
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
    finished(args, output)
}

/// stdout of a finished `git` on success, else its stderr as the error.
fn finished(args: &[&str], output: Output) -> Result<String, GitError> {
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

    /// `<dir>/upstream`, a repository with one commit of `a.yaml`, and `<dir>/clone` of it.
    fn upstream_and_clone(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
        let (upstream, clone) = (dir.join("upstream"), dir.join("clone"));
        std::fs::create_dir(&upstream).unwrap();
        sh(&upstream, &["init", "-q", "-b", "main"]);
        std::fs::write(upstream.join("a.yaml"), "1\n").unwrap();
        sh(&upstream, &["add", "."]);
        sh(&upstream, &["commit", "-q", "-m", "1"]);
        sh(dir, &["clone", "-q", upstream.to_str().unwrap(), "clone"]);
        (upstream, clone)
    }

    fn pull(dir: &Path) -> Result<String, GitError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(pull_ff_only(dir, Duration::from_secs(60)))
    }

    #[test]
    fn pull_ff_only_brings_new_commits_and_refuses_a_diverged_history() {
        let dir = tempfile::tempdir().unwrap();
        let (upstream, clone) = upstream_and_clone(dir.path());
        std::fs::write(upstream.join("a.yaml"), "2\n").unwrap();
        sh(&upstream, &["commit", "-q", "-am", "2"]);
        pull(&clone).unwrap();
        assert_eq!(
            std::fs::read_to_string(clone.join("a.yaml")).unwrap(),
            "2\n"
        );
        // Both sides move on: a fast-forward is impossible, the pull fails and changes nothing.
        std::fs::write(upstream.join("a.yaml"), "3\n").unwrap();
        sh(&upstream, &["commit", "-q", "-am", "3"]);
        std::fs::write(clone.join("a.yaml"), "local\n").unwrap();
        sh(&clone, &["commit", "-q", "-am", "local"]);
        let err = pull(&clone).unwrap_err();
        assert!(matches!(err, GitError::Failed { .. }), "{err}");
        assert_eq!(
            std::fs::read_to_string(clone.join("a.yaml")).unwrap(),
            "local\n"
        );
    }

    /// A remote that never answers: the pull is killed when its time is up, with every
    /// process it started (nothing of it is left running).
    #[tokio::test]
    async fn a_hung_pull_is_killed_with_what_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let (_, clone) = upstream_and_clone(dir.path());
        // The "remote" side of the fetch hangs (git runs it through the shell).
        let marker = format!("600.{}", std::process::id());
        let hang = format!("sleep {marker}; true");
        sh(&clone, &["config", "remote.origin.uploadpack", &hang]);
        let started = std::time::Instant::now();
        let err = pull_ff_only(&clone, Duration::from_millis(500))
            .await
            .unwrap_err();
        assert!(matches!(err, GitError::TimedOut(_)), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
        let left = || {
            std::fs::read_dir("/proc")
                .unwrap()
                .filter_map(Result::ok)
                .any(|e| {
                    std::fs::read(e.path().join("cmdline"))
                        .map(|c| String::from_utf8_lossy(&c).contains(&marker))
                        .unwrap_or(false)
                })
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while left() {
            assert!(
                std::time::Instant::now() < deadline,
                "the hung pull's processes live on"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
