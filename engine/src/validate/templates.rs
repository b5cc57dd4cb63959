//! Checks on templates: every variable a `with:` string, an `if`, or a template file names
//! must exist in the step's context, and `steps.<id>` must be upstream of the step.
//!
//! Context (DESIGN §3): `runbook`, `cycle`, `patch_tuesday`, `params.*`, `steps.<id>.status`,
//! `steps.<id>.outputs.*`, `host.*` (inside `for_each`), `run.id`, `run.url`.

use super::Ctx;
use super::steps::unknown;
use crate::runbook::{Runbook, Step};
use crate::template::{VarRef, is_template, variables};
use crate::yaml::{Loc, Node, Value};

const ROOTS: &[&str] = &[
    "runbook",
    "cycle",
    "patch_tuesday",
    "params",
    "steps",
    "host",
    "run",
];
const HOST_FIELDS: &[&str] = &[
    "name",
    "address",
    "vm",
    "os",
    "criticality",
    "user",
    "port",
    "vars",
];
const RUN_FIELDS: &[&str] = &["id", "url"];
const STEP_FIELDS: &[&str] = &["status", "outputs"];
/// Connectors whose `template:` input names a template file.
const TEMPLATE_FILE_CONNECTORS: &[&str] = &["email", "report"];

/// What a template inside one step may refer to.
struct Scope<'a> {
    runbook: &'a Runbook,
    dag: &'a crate::dag::Dag,
    step_index: usize,
    step_id: &'a str,
    /// In `undo`, the step sees its own results too.
    sees_itself: bool,
    fan_out: bool,
    /// The connector runs a whole batch at once (`ansible`): `host` differs per row, so
    /// `with:` cannot name it.
    batch: Option<&'a str>,
}

impl Scope<'_> {
    /// Whether this step can see the status and outputs of step `id` (its upstream).
    fn sees(&self, id: &str) -> bool {
        match self.runbook.steps.get_index_of(id) {
            Some(i) if i == self.step_index => self.sees_itself,
            Some(i) => self.dag.reaches(i, self.step_index),
            None => false,
        }
    }
}

pub(super) fn check(ctx: &mut Ctx) {
    let runbook = ctx.runbook;
    for (index, (id, step)) in runbook.steps.iter().enumerate() {
        let mut scope = Scope {
            runbook,
            dag: ctx.dag,
            step_index: index,
            step_id: &id.value,
            sees_itself: false,
            fan_out: step.for_each.is_some(),
            batch: batch_connector(step.uses.as_ref().map(|u| u.value.as_str())),
        };
        if let Some(with) = &step.with {
            check_node(ctx, &scope, with);
        }
        if let Some(cond) = &step.condition
            && is_template(&cond.value)
        {
            check_text(ctx, &scope, &cond.value, cond.loc, None);
        }
        check_template_file(
            ctx,
            &scope,
            step.uses.as_ref().map(|u| u.value.as_str()),
            step.with.as_ref(),
        );
        if let Some(undo) = &step.undo {
            scope.sees_itself = true;
            scope.batch = batch_connector(Some(&undo.uses.value));
            if let Some(with) = &undo.with {
                check_node(ctx, &scope, with);
            }
            check_template_file(ctx, &scope, Some(&undo.uses.value), undo.with.as_ref());
        }
    }
}

/// Template files named by `template:` inputs, relative to the runbook, with the step using them.
pub(super) fn template_files(runbook: &Runbook) -> Vec<(String, &Step)> {
    let mut out = Vec::new();
    for step in runbook.steps.values() {
        let uses = step.uses.as_ref().map(|u| u.value.as_str());
        if let Some(path) = template_input(uses, step.with.as_ref()) {
            out.push((path.0, step));
        }
        if let Some(undo) = &step.undo
            && let Some(path) = template_input(Some(&undo.uses.value), undo.with.as_ref())
        {
            out.push((path.0, step));
        }
    }
    out
}

fn template_input(uses: Option<&str>, with: Option<&Node>) -> Option<(String, Loc)> {
    if !TEMPLATE_FILE_CONNECTORS.contains(&uses?) {
        return None;
    }
    let node = with?.value.get("template")?;
    let text = node.value.as_text()?;
    Some((text, node.loc))
}

/// A template file must exist and compile. Email templates see the step's context, so their
/// variables are checked; report templates see the cycle report, which the report connector defines.
fn check_template_file(ctx: &mut Ctx, scope: &Scope, uses: Option<&str>, with: Option<&Node>) {
    let Some((relative, loc)) = template_input(uses, with) else {
        return;
    };
    let path = ctx.resolve(&relative);
    match ctx.sources.get(&path) {
        Some(Ok(text)) if uses == Some("email") => {
            let text = text.clone();
            check_text(ctx, scope, &text, loc, Some(&relative));
        }
        Some(Ok(text)) => {
            if let Err(e) = variables(text) {
                ctx.error(loc, format!("template file `{relative}`: {e}"));
            }
        }
        Some(Err(e)) => ctx.error(loc, format!("cannot read template file `{relative}`: {e}")),
        None => ctx.error(
            loc,
            format!("template file `{relative}` was not found (paths are relative to the runbook)"),
        ),
    }
}

fn check_node(ctx: &mut Ctx, scope: &Scope, node: &Node) {
    for (_, string) in node.strings() {
        if let Value::Str(text) = &string.value
            && is_template(text)
        {
            check_text(ctx, scope, text, string.loc, None);
        }
    }
}

fn check_text(ctx: &mut Ctx, scope: &Scope, text: &str, loc: Loc, file: Option<&str>) {
    let prefix = file
        .map(|f| format!("template file `{f}`: "))
        .unwrap_or_default();
    match variables(text) {
        Err(e) => ctx.error(loc, format!("{prefix}{e}")),
        Ok(vars) => {
            for var in vars {
                if let Err(problem) = check_var(scope, &var) {
                    ctx.error(loc, format!("{prefix}`{{{{{}}}}}`: {problem}", var.raw));
                }
            }
        }
    }
}

fn check_var(scope: &Scope, var: &VarRef) -> Result<(), String> {
    let segs: Vec<&str> = var.segments.iter().map(String::as_str).collect();
    match segs.as_slice() {
        [] => Ok(()),
        ["runbook" | "cycle" | "patch_tuesday"] => Ok(()),
        ["runbook" | "cycle" | "patch_tuesday", ..] => Err(format!("`{}` has no fields", segs[0])),
        ["params", name, ..] => check_param(scope, name),
        ["params"] => Err("name a param: `params.<name>`".into()),
        ["steps", id, rest @ ..] => check_step_ref(scope, id, rest),
        ["steps"] => Err("name a step: `steps.<id>.status` or `steps.<id>.outputs.<name>`".into()),
        ["host", rest @ ..] => check_host(scope, rest),
        ["run", field] if RUN_FIELDS.contains(field) => Ok(()),
        ["run", ..] => Err(format!("`run` has only {}", list(RUN_FIELDS))),
        [root, ..] => Err(format!(
            "unknown {}",
            unknown("variable", root, ROOTS.iter().copied())
        )),
    }
}

fn check_param(scope: &Scope, name: &str) -> Result<(), String> {
    if scope.runbook.params.contains_key(name) {
        return Ok(());
    }
    Err(format!(
        "unknown {} (declare it under `params`)",
        unknown(
            "param",
            name,
            scope.runbook.params.keys().map(|k| k.value.as_str())
        )
    ))
}

fn check_step_ref(scope: &Scope, id: &str, rest: &[&str]) -> Result<(), String> {
    if !scope.runbook.steps.contains_key(id) {
        return Err(format!(
            "unknown {}",
            unknown(
                "step",
                id,
                scope.runbook.steps.keys().map(|k| k.value.as_str())
            )
        ));
    }
    if !scope.sees(id) {
        return Err(format!(
            "step `{id}` is not upstream of `{}`: add it to `needs` (directly or through another step) to use its results",
            scope.step_id
        ));
    }
    match rest {
        ["status"] | ["outputs", ..] => Ok(()),
        _ => Err(format!(
            "a step has {}: `steps.{id}.status` or `steps.{id}.outputs.<name>`",
            list(STEP_FIELDS)
        )),
    }
}

fn check_host(scope: &Scope, rest: &[&str]) -> Result<(), String> {
    if !scope.fan_out {
        return Err(format!(
            "`host` exists only in steps with `for_each`, and `{}` has none",
            scope.step_id
        ));
    }
    if let Some(connector) = scope.batch {
        return Err(format!(
            "`{connector}` runs once for a whole batch of hosts, so its `with:` cannot differ \
             per host; per-host values belong in the inventory's host vars, which it reads"
        ));
    }
    match rest {
        [] => Ok(()),
        [field, ..] if HOST_FIELDS.contains(field) => Ok(()),
        [field, ..] => Err(format!(
            "unknown {}",
            unknown("host field", field, HOST_FIELDS.iter().copied())
        )),
    }
}

/// `uses` when that connector settles a batch of hosts in one execution.
fn batch_connector(uses: Option<&str>) -> Option<&str> {
    uses.filter(|u| patchday_connectors::lookup(u).is_some_and(|c| c.batch))
}

fn list(items: &[&str]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
