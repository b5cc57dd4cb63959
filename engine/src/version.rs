//! A runbook version: the runbook's text and the text of every file it read (its inventory, the
//! template files of its `email` and `report` steps, its notification templates), as one value
//! that can be stored and checked again without the disk.
//!
//! Validation makes one for every runbook it passes ([`crate::validate::CheckedRunbook::version`]).
//! A run stores the version it started with in its snapshot (`runs.snapshot`), and every path
//! that drives, decides, expires, resumes or shows the run rebuilds its `CheckedRunbook` from
//! it ([`Version::check`]): an edit, a deleted file, a restart or another daemon cannot change
//! what a started run does. Template files are read from the version too (the connectors get
//! [`Version::resolved_files`]).
//!
//! The version's hash ([`Version::hash`], the run's `content_hash`) covers the runbook's text
//! and every file with the name the runbook gives it; not where the folder is, so the same
//! runbook read by two daemons (or by `patchday resume`) has the same hash.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::runbook::load_runbook;
use crate::validate::{CheckedRunbook, Sources};

/// One version of a runbook and the files it read, as read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// The runbook file as it was named when read (`runbooks/monthly.yaml`).
    pub file: String,
    /// The folder the runbook's relative paths start from (as the reader named it).
    pub dir: PathBuf,
    /// The runbook's text.
    pub text: String,
    /// The files the runbook refers to, by the path it names them with (relative to `dir`).
    pub files: BTreeMap<String, String>,
    /// Ansible inventory sources read through `ansible-inventory --list`: what it printed
    /// (JSON), by the path the runbook names the source with.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub listed: BTreeMap<String, String>,
}

/// Why a stored version cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    /// The run's snapshot holds no version (or not one this build can read).
    #[error("run {run}: its snapshot holds no runbook version ({why})")]
    Missing { run: String, why: String },
    /// The stored version does not pass this build's validation.
    #[error("the stored version of runbook `{file}` does not validate: {errors}")]
    Invalid { file: String, errors: String },
}

impl Version {
    /// The version the runbook in `file` was checked from: its text and every file of `paths`
    /// (its references, resolved against `dir`) that `sources` holds, read or listed.
    pub fn from_sources(file: &str, dir: &Path, paths: &[PathBuf], sources: &Sources) -> Version {
        let text = match sources.get(Path::new(file)) {
            Some(Ok(text)) => text.clone(),
            _ => String::new(),
        };
        let name = |path: &Path| {
            let relative = path.strip_prefix(dir).unwrap_or(path);
            relative.to_string_lossy().into_owned()
        };
        let ok =
            |read: Option<&Result<String, String>>| read.and_then(|r| r.as_ref().ok()).cloned();
        let files = paths
            .iter()
            .filter_map(|path| Some((name(path), ok(sources.get(path))?)))
            .collect();
        let listed = paths
            .iter()
            .filter_map(|path| Some((name(path), ok(sources.listed(path))?)))
            .collect();
        Version {
            file: file.to_string(),
            dir: dir.to_path_buf(),
            text,
            files,
            listed,
        }
    }

    /// SHA-256 (hex) over the runbook's text and each file's name and text, length-prefixed.
    pub fn hash(&self) -> String {
        use sha2::Digest;
        let mut digest = sha2::Sha256::new();
        let mut field = |bytes: &[u8]| {
            digest.update((bytes.len() as u64).to_be_bytes());
            digest.update(bytes);
        };
        field(b"patchday runbook version 1");
        field(self.text.as_bytes());
        for (name, text) in &self.files {
            field(name.as_bytes());
            field(text.as_bytes());
        }
        for (name, json) in &self.listed {
            field(b"listed");
            field(name.as_bytes());
            field(json.as_bytes());
        }
        let out = digest.finalize();
        out.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The files by the path the connectors resolve (`dir` joined with each name).
    pub fn resolved_files(&self) -> BTreeMap<PathBuf, String> {
        self.files
            .iter()
            .map(|(name, text)| (self.dir.join(name), text.clone()))
            .collect()
    }

    /// Loads and checks the version again, from its own texts only (no I/O).
    pub fn check(&self) -> Result<CheckedRunbook, VersionError> {
        let mut sources = Sources::default();
        sources.insert(PathBuf::from(&self.file), Ok(self.text.clone()));
        for (path, text) in self.resolved_files() {
            sources.insert(path, Ok(text));
        }
        for (name, json) in &self.listed {
            sources.insert_listed(self.dir.join(name), Ok(json.clone()));
        }
        let loaded = load_runbook(&self.file, &self.text);
        let (checked, diagnostics) = crate::validate::check(&loaded, &self.dir, &sources);
        checked.ok_or_else(|| VersionError::Invalid {
            file: self.file.clone(),
            errors: diagnostics
                .iter()
                .filter(|d| d.is_error())
                .map(|d| d.render(None).trim_end().to_string())
                .collect::<Vec<_>>()
                .join("; "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNBOOK: &str = "name: v\ninventory: hosts.yaml\nsteps:\n  a:\n    uses: noop\n    for_each: { group: web }\n";
    const HOSTS: &str = "hosts:\n  h1: { address: 10.0.0.1 }\ngroups:\n  web: [h1]\n";

    fn checked(dir: &str, hosts: &str) -> CheckedRunbook {
        let mut sources = Sources::default();
        let file = format!("{dir}/v.yaml");
        sources.insert(PathBuf::from(&file), Ok(RUNBOOK.into()));
        sources.insert(Path::new(dir).join("hosts.yaml"), Ok(hosts.into()));
        let (checked, diags) =
            crate::validate::check(&load_runbook(&file, RUNBOOK), Path::new(dir), &sources);
        checked.unwrap_or_else(|| panic!("{diags:#?}"))
    }

    #[test]
    fn a_version_holds_the_files_it_read_and_checks_again_without_them() {
        let checked = checked("/nowhere", HOSTS);
        let version = &checked.version;
        assert_eq!(version.files.keys().collect::<Vec<_>>(), ["hosts.yaml"]);
        let again = version.check().unwrap();
        assert_eq!(again.version.hash(), version.hash());
        assert!(again.inventory.unwrap().hosts.contains_key("h1"));
    }

    #[test]
    fn the_hash_covers_every_file_but_not_where_the_folder_is() {
        let here = checked("/a", HOSTS);
        let there = checked("/b", HOSTS);
        assert_eq!(here.version.hash(), there.version.hash());
        let more = HOSTS.replace("[h1]", "[h1, h2]").replace(
            "h1: { address: 10.0.0.1 }",
            "h1: { address: 10.0.0.1 }\n  h2: { address: 10.0.0.2 }",
        );
        assert_ne!(checked("/a", &more).version.hash(), here.version.hash());
    }

    #[test]
    fn a_version_that_no_longer_validates_is_a_typed_error() {
        let mut version = (*checked("/a", HOSTS).version).clone();
        version.files.clear();
        let err = version.check().unwrap_err();
        assert!(err.to_string().contains("hosts.yaml"), "{err}");
    }

    /// An Ansible inventory read through `ansible-inventory --list`: the version keeps what it
    /// printed, and rebuilds the same hosts from it, with no Ansible and no inventory file.
    #[test]
    fn a_listed_inventory_is_kept_as_it_was_printed() {
        let runbook = "name: l\ninventory: { ansible: inv }\nsteps:\n  a:\n    uses: noop\n    for_each: { group: web }\n";
        let json = r#"{"_meta": {"hostvars": {"w1": {"ansible_host": "10.0.0.1"}}}, "all": {"children": ["web"]}, "web": {"hosts": ["w1"]}}"#;
        let mut sources = Sources::default();
        sources.insert(PathBuf::from("/a/l.yaml"), Ok(runbook.into()));
        sources.insert_listed(PathBuf::from("/a/inv"), Ok(json.into()));
        let (checked, diags) = crate::validate::check(
            &load_runbook("/a/l.yaml", runbook),
            Path::new("/a"),
            &sources,
        );
        let checked = checked.unwrap_or_else(|| panic!("{diags:#?}"));
        assert_eq!(
            checked.version.listed.get("inv").map(String::as_str),
            Some(json)
        );
        let again = checked.version.check().unwrap();
        assert_eq!(again.version.hash(), checked.version.hash());
        assert!(again.inventory.unwrap().hosts.contains_key("w1"));
    }
}
