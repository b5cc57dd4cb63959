//! Reading runbooks and the files they refer to from disk: the only I/O on the way to a
//! checked runbook. Everything after this (loading, validation, planning) is pure.

use std::path::{Path, PathBuf};

use crate::diagnostic::Diagnostic;
use crate::runbook::{LoadedRunbook, load_runbook};
use crate::validate::{self, CheckedRunbook, Sources};

/// The runbook files named on the command line: files as given, folders expanded to the
/// `*.yaml` / `*.yml` files directly inside them, sorted by name.
pub fn expand(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
                })
                .collect();
            found.sort();
            out.extend(found);
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

/// The result of checking a set of runbooks together.
pub struct Checked {
    pub runbooks: Vec<(LoadedRunbook, Option<CheckedRunbook>)>,
    pub diagnostics: Vec<Diagnostic>,
    /// Texts of every file read, for rendering snippets.
    pub sources: Sources,
}

impl Checked {
    pub fn is_valid(&self) -> bool {
        !self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// The source text of `file`, for snippets.
    pub fn text(&self, file: &str) -> Option<&str> {
        match self.sources.get(Path::new(file)) {
            Some(Ok(text)) => Some(text),
            _ => None,
        }
    }
}

/// Reads, loads and checks runbook files as one set (names must be unique across it).
pub fn check_files(files: &[PathBuf]) -> Checked {
    let mut sources = Sources::default();
    let mut loaded = Vec::new();
    for file in files {
        let shown = file.display().to_string();
        let text = read(file);
        sources.insert(file.clone(), text.clone());
        let loaded_one = match text {
            Ok(text) => load_runbook(&shown, &text),
            Err(e) => unreadable(&shown, &e),
        };
        read_references(&loaded_one, file, &mut sources);
        loaded.push(loaded_one);
    }
    let mut diagnostics = validate::check_unique_names(&loaded.iter().collect::<Vec<_>>());
    let mut runbooks = Vec::new();
    for (one, file) in loaded.into_iter().zip(files) {
        let (checked, diags) = validate::check(&one, &dir_of(file), &sources);
        diagnostics.extend(diags);
        runbooks.push((one, checked));
    }
    crate::diagnostic::sort(&mut diagnostics);
    diagnostics.dedup();
    Checked {
        runbooks,
        diagnostics,
        sources,
    }
}

fn dir_of(file: &Path) -> PathBuf {
    file.parent().map(Path::to_path_buf).unwrap_or_default()
}

fn unreadable(file: &str, error: &str) -> LoadedRunbook {
    let mut loaded = load_runbook(file, "");
    loaded.diagnostics = vec![Diagnostic::error(
        file,
        crate::yaml::Loc::default(),
        format!("cannot read the file: {error}"),
    )];
    loaded
}

fn read_references(loaded: &LoadedRunbook, file: &Path, sources: &mut Sources) {
    let Some(runbook) = &loaded.runbook else {
        return;
    };
    for path in validate::references(runbook, &dir_of(file)) {
        if !sources.contains(&path) && path.exists() {
            sources.insert(path.clone(), read(&path));
        }
    }
}

/// Reads a text file, never blocking and never reading more than the runbook limit: the file
/// is opened without waiting (`O_NONBLOCK`: a FIFO does not hold the reader up), must be a
/// regular file by the open handle (a FIFO, a device such as `/dev/zero` behind a symlink, or
/// a socket is refused), and is read through that handle up to the limit (a file that grows
/// after the check is still cut off there).
fn read(path: &Path) -> Result<String, String> {
    use std::io::Read as _;
    let limit = crate::yaml::Limits::RUNBOOK.max_bytes as u64;
    let file = open_without_waiting(path).map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file (a FIFO, a device or a socket): refused".into());
    }
    let too_big = |size: u64| format!("the file is {size} bytes; the limit is {limit} bytes");
    if meta.len() > limit {
        return Err(too_big(meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > limit {
        return Err(too_big(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "the file is not UTF-8 text (byte {})",
            e.utf8_error().valid_up_to()
        )
    })
}

/// Opens `path` for reading without waiting for a writer (a FIFO would block an open).
fn open_without_waiting(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits());
    }
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regular_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.yaml");
        std::fs::write(&file, "name: a\n").unwrap();
        assert_eq!(read(&file).unwrap(), "name: a\n");
    }

    /// A FIFO nobody writes to: refused at once, not waited on.
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("hosts.yaml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let err = read(&fifo).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
    }

    /// A symlink to `/dev/zero` (endless): refused, nothing read.
    #[test]
    fn a_device_behind_a_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("hosts.yaml");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let err = read(&link).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
    }

    #[test]
    fn a_file_over_the_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("big.yaml");
        let limit = crate::yaml::Limits::RUNBOOK.max_bytes;
        std::fs::write(&file, vec![b'#'; limit + 1]).unwrap();
        let err = read(&file).unwrap_err();
        assert!(err.contains("the limit is"), "{err}");
    }
}
