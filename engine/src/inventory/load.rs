//! Reading a runbook's inventory from the files already read into [`Sources`] (no I/O): a
//! patchday inventory, or an Ansible one (INI, YAML, or `ansible-inventory --list` output)
//! with patchday's exceptions from a file of their own. Problems are reported against the
//! file they are in, with its line.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ansible::{self, AnsibleInventory};
use super::{Exception, Inventory};
use crate::diagnostic::Diagnostic;
use crate::runbook::load::deserialize_document;
use crate::runbook::{AnsibleInventoryRef, InventoryRef};
use crate::validate::Sources;
use crate::yaml::{self, Limits, Located};

/// An exceptions file beside an Ansible inventory: `exceptions:` as in a patchday inventory.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExceptionsFile {
    #[serde(default)]
    exceptions: Vec<Exception>,
}

/// The files an inventory reference reads, resolved against the runbook's folder.
pub fn files(reference: &InventoryRef, dir: &Path) -> Vec<PathBuf> {
    match reference {
        InventoryRef::File(path) => vec![dir.join(&path.value)],
        InventoryRef::Ansible(a) => std::iter::once(&a.ansible)
            .chain(a.exceptions.as_ref())
            .map(|p| dir.join(&p.value))
            .collect(),
    }
}

/// Whether the native reader takes `path` as YAML (Ansible's `yaml` plugin: by extension).
pub fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// Reads the inventory `file` (a runbook) refers to; `None` after reporting why not.
pub fn load(
    file: &str,
    reference: &InventoryRef,
    dir: &Path,
    sources: &Sources,
    diags: &mut Vec<Diagnostic>,
) -> Option<Inventory> {
    let inventory = match reference {
        InventoryRef::File(path) => patchday_inventory(file, path, dir, sources, diags)?,
        InventoryRef::Ansible(a) => ansible_inventory(file, a, dir, sources, diags)?,
    };
    let shown = |path: &Located<String>| dir.join(&path.value).display().to_string();
    let exceptions_in = match reference {
        InventoryRef::Ansible(a) => a.exceptions.as_ref().map_or(String::new(), shown),
        InventoryRef::File(path) => shown(path),
    };
    check(&shown(reference.path()), &exceptions_in, &inventory, diags);
    Some(inventory)
}

/// The text of `path`, or an error at the runbook's reference.
fn text<'a>(
    file: &str,
    what: &str,
    reference: &Located<String>,
    path: &Path,
    sources: &'a Sources,
    diags: &mut Vec<Diagnostic>,
) -> Option<&'a str> {
    let message = match sources.get(path) {
        Some(Ok(text)) => return Some(text),
        Some(Err(e)) => format!("cannot read {what} `{}`: {e}", reference.value),
        None => format!("{what} `{}` was not found", reference.value),
    };
    diags.push(Diagnostic::error(file, reference.loc, message));
    None
}

fn patchday_inventory(
    file: &str,
    reference: &Located<String>,
    dir: &Path,
    sources: &Sources,
    diags: &mut Vec<Diagnostic>,
) -> Option<Inventory> {
    let path = dir.join(&reference.value);
    let text = text(file, "inventory", reference, &path, sources, diags)?;
    yaml_document(&path, text, diags)
}

/// A patchday inventory file checked on its own (`patchday validate inventory/hosts.yaml`).
pub fn check_file(file: &str, text: &str) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    if let Some(inventory) = yaml_document::<Inventory>(Path::new(file), text, &mut diags) {
        check(file, file, &inventory, &mut diags);
    }
    diags
}

/// A YAML file (an inventory, an exceptions file) deserialized with every error reported
/// against it, within the inventory budgets: straight from the text when it is right (no
/// located tree: a tenth of the memory for 100,000 hosts), else through the tree.
fn yaml_document<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<T> {
    if let Some(value) = yaml::from_str_when_valid(text, Limits::INVENTORY) {
        return Some(value);
    }
    let shown = path.display().to_string();
    let root = match yaml::parse(text, Limits::INVENTORY) {
        Ok(root) => root,
        Err(e) => {
            diags.push(Diagnostic::error(&shown, e.loc, e.message));
            return None;
        }
    };
    deserialize_document(&shown, root, diags, &mut Vec::new())
}

fn ansible_inventory(
    file: &str,
    reference: &AnsibleInventoryRef,
    dir: &Path,
    sources: &Sources,
    diags: &mut Vec<Diagnostic>,
) -> Option<Inventory> {
    let path = dir.join(&reference.ansible.value);
    let shown = path.display().to_string();
    let read = match sources.listed(&path) {
        Some(Ok(json)) => ansible::list::parse(json)
            .map_err(|e| vec![Diagnostic::error(file, reference.ansible.loc, e)]),
        Some(Err(e)) => Err(vec![Diagnostic::error(
            file,
            reference.ansible.loc,
            format!(
                "`ansible-inventory --list` of `{}` failed: {e}",
                reference.ansible.value
            ),
        )]),
        None => native(file, reference, &path, sources, diags),
    };
    let parsed: AnsibleInventory = match read {
        Ok(parsed) => parsed,
        Err(errors) => {
            diags.extend(errors);
            return None;
        }
    };
    let mut inventory = match parsed.into_inventory() {
        Ok(inventory) => inventory,
        Err((loc, e)) => {
            diags.push(Diagnostic::error(&shown, loc, e));
            return None;
        }
    };
    inventory.ansible_source = Some(PathBuf::from(&reference.ansible.value));
    if let Some(exceptions) = &reference.exceptions {
        inventory.exceptions = exceptions_file(file, exceptions, dir, sources, diags)?;
    }
    Some(inventory)
}

/// The INI or YAML file, read natively.
fn native(
    file: &str,
    reference: &AnsibleInventoryRef,
    path: &Path,
    sources: &Sources,
    diags: &mut Vec<Diagnostic>,
) -> Result<AnsibleInventory, Vec<Diagnostic>> {
    let Some(text) = text(
        file,
        "Ansible inventory",
        &reference.ansible,
        path,
        sources,
        diags,
    ) else {
        if let Some(last) = diags.last_mut() {
            last.message.push_str(
                " (the native reader takes one INI or YAML file; folders, scripts and plugins \
                 are read with `--ansible-inventory`)",
            );
        }
        return Err(Vec::new());
    };
    let shown = path.display().to_string();
    let parsed = if is_yaml(path) {
        ansible::yaml::parse_text(text)
    } else {
        ansible::ini::parse(text)
    };
    parsed.map_err(|errors| {
        errors
            .into_iter()
            .map(|(loc, message)| Diagnostic::error(&shown, loc, message))
            .collect()
    })
}

fn exceptions_file(
    file: &str,
    reference: &Located<String>,
    dir: &Path,
    sources: &Sources,
    diags: &mut Vec<Diagnostic>,
) -> Option<Vec<Exception>> {
    let path = dir.join(&reference.value);
    let text = text(file, "exceptions file", reference, &path, sources, diags)?;
    let read: ExceptionsFile = yaml_document(&path, text, diags)?;
    Some(read.exceptions)
}

/// Group members (in `file`) and exceptions (in `exceptions_file`) must name hosts of the
/// inventory.
fn check(file: &str, exceptions_file: &str, inventory: &Inventory, diags: &mut Vec<Diagnostic>) {
    let unknown = |name: &str| {
        let suggestion = yaml::nearest(name, inventory.hosts.keys().map(|k| k.value.as_str()));
        match suggestion {
            Some(s) => format!("unknown host `{name}`; did you mean `{s}`?"),
            None => format!("unknown host `{name}`: it is not in `hosts`"),
        }
    };
    for member in inventory.groups.values().flatten() {
        if !inventory.hosts.contains_key(member.value.as_str()) {
            diags.push(Diagnostic::error(file, member.loc, unknown(&member.value)));
        }
    }
    for exception in &inventory.exceptions {
        if !inventory.hosts.contains_key(exception.host.value.as_str()) {
            diags.push(Diagnostic::error(
                exceptions_file,
                exception.host.loc,
                unknown(&exception.host.value),
            ));
        }
    }
}
