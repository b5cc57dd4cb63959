//! `patchday new runbook|inventory NAME`: a commented starter file that validates as written,
//! for a newcomer to edit rather than to assemble from the schema.
//!
//! The runbook starter shows every part of the format once (schedule, roles, notifications,
//! an approval, a command, a smoke check, a report-style email); with `--inventory FILE` it
//! fans its patch steps out over that inventory's groups, one wave per group in file order.
//! Files are never overwritten.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::{Globals, UsageError};
use crate::yaml::{self, Limits};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// A starter runbook NAME.yaml (a-z, 0-9 and -).
    Runbook(RunbookArgs),
    /// A starter inventory NAME.yaml: hosts, groups (waves) and an exception.
    Inventory(InventoryArgs),
}

#[derive(Debug, clap::Args)]
struct RunbookArgs {
    /// The runbook's name, also its file name.
    name: String,
    /// The folder to write into.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// An inventory to fan the patch steps out over, one wave per group.
    #[arg(long, value_name = "FILE")]
    inventory: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct InventoryArgs {
    /// The file's name (NAME.yaml).
    name: String,
    /// The folder to write into.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
}

pub fn run(args: Args, _globals: &Globals) -> anyhow::Result<ExitCode> {
    let (path, text) = match args.what {
        What::Runbook(args) => {
            check_name(&args.name)?;
            let inventory = args
                .inventory
                .as_deref()
                .map(|file| InventoryRef::read(file, &args.dir))
                .transpose()?;
            let schema = schema_line(&args.dir, "runbook");
            let text = runbook_text(&args.name, &schema, inventory.as_ref());
            (args.dir.join(format!("{}.yaml", args.name)), text)
        }
        What::Inventory(args) => {
            check_name(&args.name)?;
            let schema = schema_line(&args.dir, "inventory");
            (
                args.dir.join(format!("{}.yaml", args.name)),
                inventory_text(&schema),
            )
        }
    };
    write_new(&path, &text)?;
    outln!("wrote {}", path.display());
    outln!("check it with: patchday validate {}", path.display());
    Ok(ExitCode::SUCCESS)
}

fn check_name(name: &str) -> Result<(), UsageError> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(UsageError(format!(
            "`{name}`: a name holds only a-z, 0-9 and - (e.g. monthly-linux)"
        )))
    }
}

/// Creates `path` with `text`; an existing file is left alone and refused.
fn write_new(path: &Path, text: &str) -> Result<(), UsageError> {
    use std::io::Write as _;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| UsageError(format!("{}: {e}", dir.display())))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => UsageError(format!(
                "{} exists already; nothing was written",
                path.display()
            )),
            _ => UsageError(format!("{}: {e}", path.display())),
        })?;
    file.write_all(text.as_bytes())
        .map_err(|e| UsageError(format!("{}: {e}", path.display())))
}

/// The `yaml-language-server` line: the nearest `schemas/<kind>.schema.json` above `dir`
/// (relative to it), else where `patchday schema --write schemas/` beside the folder puts it.
fn schema_line(dir: &Path, kind: &str) -> String {
    let file = format!("schemas/{kind}.schema.json");
    let start = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let relative = start
        .ancestors()
        .enumerate()
        .find(|(_, ancestor)| ancestor.join(&file).is_file())
        .map(|(up, _)| format!("{}{file}", "../".repeat(up)))
        .unwrap_or_else(|| format!("../{file}"));
    format!("# yaml-language-server: $schema={relative}")
}

/// An inventory named by `--inventory`: how the runbook refers to it, and its groups.
struct InventoryRef {
    /// The path as written in the runbook (relative to the runbook's folder when possible).
    path: String,
    groups: Vec<String>,
}

impl InventoryRef {
    fn read(file: &Path, runbook_dir: &Path) -> Result<InventoryRef, UsageError> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| UsageError(format!("{}: {e}", file.display())))?;
        let root = yaml::parse(&text, Limits::INVENTORY)
            .map_err(|e| UsageError(format!("{}:{}: {}", file.display(), e.loc.line, e.message)))?;
        let groups: Vec<String> = root.to_json()["groups"]
            .as_object()
            .map(|g| g.keys().cloned().collect())
            .unwrap_or_default();
        if groups.is_empty() {
            return Err(UsageError(format!(
                "{}: the inventory has no `groups`; the runbook fans out over groups",
                file.display()
            )));
        }
        Ok(InventoryRef {
            path: relative_to(file, runbook_dir),
            groups,
        })
    }
}

/// `file` as seen from `dir` (both made absolute), else as given.
fn relative_to(file: &Path, dir: &Path) -> String {
    let (Ok(file_abs), Ok(dir_abs)) = (std::fs::canonicalize(file), absolute_dir(dir)) else {
        return file.display().to_string();
    };
    let common = dir_abs
        .ancestors()
        .enumerate()
        .find(|(_, a)| file_abs.starts_with(a));
    match common {
        Some((up, base)) => {
            let rest = file_abs.strip_prefix(base).unwrap_or(&file_abs);
            format!("{}{}", "../".repeat(up), rest.display())
        }
        None => file_abs.display().to_string(),
    }
}

/// `dir` made absolute; it may not exist yet (it is created when the file is written).
fn absolute_dir(dir: &Path) -> std::io::Result<PathBuf> {
    match std::fs::canonicalize(dir) {
        Ok(path) => Ok(path),
        Err(_) => Ok(std::env::current_dir()?.join(dir)),
    }
}

const RUNBOOK_HEAD: &str = r#"#
# A starter runbook written by `patchday new runbook`. It validates as it is; edit it, then
# `patchday validate` it, `patchday plan` it and `patchday simulate` a cycle before it runs.
# Every field is explained in the README ("Authoring runbooks") and in the JSON Schema, which
# editors with the YAML language server use to complete and check this file as you type.
name: NAME
description: Monthly patching, a week after Patch Tuesday
timezone: UTC                          # an IANA zone; every wall-clock time below is in it

# When a cycle starts. One cycle a month here; `patchday calendar` lists the next ones.
schedule:
  - at: patch_tuesday-7d 09:00         # a week before Patch Tuesday (the second Tuesday)
blackouts:                             # cycles whose start falls here are skipped, with the reason
  - { from: 2026-12-21, to: 2027-01-04, reason: year-end change freeze }
catch_up: 24h                          # after downtime, a cycle late by less than this still starts
on_failure: stop                       # or `rollback`: run the `undo` of every step that succeeded

# People, by role. A recipient is a role name or an email address.
roles:
  committee: [patch-committee@example.com]
  cab: [cab-chair@example.com, it-director@example.com]
  sysadmins: [sysadmins@example.com]

# Emails patchday sends on its own (approval and task emails are always sent).
notify: { on: [failure, overdue, finished], to: [committee] }

# Values a run can be given (`patchday trigger NAME --param kb_list=...`); `{{params.kb_list}}`.
params:
  kb_list: { default: "", description: KB articles in scope }
"#;

const RUNBOOK_STEPS: &str = r#"
# The steps: a map keyed by step id, in order. `needs` makes the graph; `at` holds a step until
# a time; `uses` names the connector and `with` its inputs (see docs/connectors.md).
steps:
  notify-committee:
    description: Tell the committee the cycle has started
    uses: email
    with:
      to: committee
      subject: "Patch cycle {{cycle}}: Patch Tuesday is {{patch_tuesday}}"
      body: "KBs in scope: {{params.kb_list}}. The run: {{run.url}}"

  cab-approval:
    description: The CAB approves the cycle
    needs: [notify-committee]
    at: patch_tuesday-1d 10:00         # the Monday before Patch Tuesday
    uses: approval
    with:
      approvers: cab                   # each gets an email with their own signed link
      quorum: 1
      expires: 48h
      message: "Approve patching for cycle {{cycle}}"
    deadline: patch_tuesday-1d 17:00   # not decided by then: an `overdue` email to `notify.to`
"#;

const LOCAL_PATCH_STEPS: &str = r#"
  patch:
    description: The patch command (on this machine; give `host:` to run it over SSH)
    needs: [cab-approval]
    at: patch_tuesday+4d 22:00         # the Saturday after Patch Tuesday (not the second Saturday)
    uses: command
    with: { run: "echo patching for {{cycle}}" }
    timeout: 1h
    retry: { attempts: 2, backoff: 5m }

  smoke-test:
    description: Check the service answers after patching
    needs: [patch]
    uses: check
    with: { command: "true", within: 15m }

  # To patch hosts of an inventory instead, write `inventory: hosts.yaml` above
  # (`patchday new inventory hosts` makes one) and fan a step out over a group:
  #   patch:
  #     uses: command
  #     for_each: { group: wave1, batch: 2, max_failures: 0 }
  #     with: { host: "{{host.address}}", run: "sudo apt-get -y upgrade" }

  tell-sysadmins:
    description: Say how the night went, whatever happened
    needs: [smoke-test]
    if: always
    uses: email
    with:
      to: sysadmins
      subject: "Patch cycle {{cycle}}: smoke test {{steps.smoke-test.status}}"
      body: "The run: {{run.url}}"
"#;

fn runbook_text(name: &str, schema: &str, inventory: Option<&InventoryRef>) -> String {
    let mut text = format!("{schema}\n{}", RUNBOOK_HEAD.replace("NAME", name));
    if let Some(inventory) = inventory {
        text.push_str(&format!(
            "\n# The hosts the patch steps fan out over.\ninventory: {}\n",
            inventory.path
        ));
    }
    text.push_str(RUNBOOK_STEPS);
    match inventory {
        Some(inventory) => text.push_str(&wave_steps(&inventory.groups)),
        None => text.push_str(LOCAL_PATCH_STEPS),
    }
    text
}

/// One patch step per group, each after the one before, then an email.
fn wave_steps(groups: &[String]) -> String {
    let mut text = String::new();
    let mut previous = "cab-approval".to_string();
    for (i, group) in groups.iter().enumerate() {
        let id = format!("patch-{}", step_id(group));
        let at = if i == 0 {
            "\n    at: patch_tuesday+4d 22:00         # the Saturday after Patch Tuesday"
        } else {
            ""
        };
        text.push_str(&format!(
            r#"
  {id}:
    description: Patch the hosts of group {group}, two at a time
    needs: [{previous}]{at}
    uses: command
    for_each: {{ group: {group}, batch: 2, max_failures: 0 }}
    with: {{ host: "{{{{host.address}}}}", run: "sudo apt-get -y upgrade" }}
    timeout: 1h
"#
        ));
        previous = id;
    }
    text.push_str(&format!(
        r#"
  tell-sysadmins:
    description: Say how the night went, whatever happened
    needs: [{previous}]
    if: always
    uses: email
    with:
      to: sysadmins
      subject: "Patch cycle {{{{cycle}}}}: {{{{steps.{previous}.status}}}}"
      body: "The run: {{{{run.url}}}}"
"#
    ));
    text
}

/// A group name as a step id: letters, digits, `-` and `_`.
fn step_id(group: &str) -> String {
    group
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

const INVENTORY_BODY: &str = r#"#
# A starter inventory written by `patchday new inventory`: the hosts runbooks fan out over.
# A runbook names it with `inventory: <path relative to the runbook>` and fans a step out
# with `for_each: { group: wave1 }`; `{{host.address}}`, `{{host.vm}}`, `{{host.vars.site}}`
# are then the host's values.

hosts:
  web01: { address: web01.example.com, os: linux, criticality: business, user: patchday, vars: { site: east } }
  web02: { address: web02.example.com, os: linux, criticality: business, user: patchday, vars: { site: west } }
  db01: { address: db01.example.com, vm: vm-101, os: linux, criticality: mission, port: 2222 }
  legacy01: { address: legacy01.example.com, os: windows, criticality: business }

# Groups, in the order hosts are patched within them. One group per wave is a common layout.
groups:
  wave1: [web01, db01]
  wave2: [web02, legacy01]

# Hosts left out of every fan-out until the day after `until`; the report lists them as excepted.
exceptions:
  - { host: legacy01, until: 2027-03-01, reason: vendor does not support the update yet, approved_by: ciso@example.com }
"#;

fn inventory_text(schema: &str) -> String {
    format!("{schema}\n{INVENTORY_BODY}")
}
