//! Checks on the step graph and each step: needs, cycles, connectors and their inputs,
//! `if`, `undo`, roles, inventory groups, params.

use patchday_connectors::{CATALOG, lookup};

use super::Ctx;
use crate::runbook::Step;
use crate::yaml::{self, Located, Node, PathSeg, Value};

/// Inputs that name recipients (roles or addresses), per connector.
const RECIPIENT_INPUTS: &[(&str, &[&str])] = &[
    ("email", &["to", "cc"]),
    ("approval", &["approvers"]),
    ("manual", &["assignee"]),
    ("report", &["to"]),
];

pub(super) fn check(ctx: &mut Ctx) {
    check_step_ids(ctx);
    check_needs(ctx);
    check_cycles(ctx);
    let runbook = ctx.runbook;
    for (id, step) in &runbook.steps {
        check_connector(ctx, id, step);
        check_condition(ctx, step);
        check_for_each(ctx, step);
        check_undo(ctx, id, step);
        check_retry(ctx, step);
        check_notify_moot(ctx, id, step);
    }
    check_roles(ctx);
    check_params(ctx);
}

fn check_step_ids(ctx: &mut Ctx) {
    let runbook = ctx.runbook;
    for id in runbook.steps.keys() {
        let ok = !id.value.is_empty()
            && id
                .value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            ctx.error(
                id.loc,
                format!(
                    "step id `{}` may hold only letters, digits, `-` and `_`",
                    id.value
                ),
            );
        }
    }
    let name = &runbook.name;
    let ok = name.value.is_empty() // missing: reported by the loader
        || name.value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        ctx.error(
            name.loc,
            format!(
                "runbook name `{}` may hold only a-z, 0-9 and `-`",
                name.value
            ),
        );
    }
}

fn check_needs(ctx: &mut Ctx) {
    let runbook = ctx.runbook;
    for (id, step) in &runbook.steps {
        for need in &step.needs {
            if need.value == id.value {
                ctx.error(need.loc, format!("step `{}` needs itself", id.value));
            } else if !runbook.steps.contains_key(need.value.as_str())
                && !ctx.broken_steps.contains(&need.value)
            {
                let message = unknown(
                    "step",
                    &need.value,
                    runbook.steps.keys().map(|k| k.value.as_str()),
                );
                ctx.error(need.loc, format!("`needs` names an unknown {message}"));
            }
        }
    }
}

fn check_cycles(ctx: &mut Ctx) {
    for cycle in ctx.dag.cycles() {
        if cycle.len() == 2 {
            continue; // a step that needs itself, reported by check_needs
        }
        let first = &cycle[0];
        let loc = ctx
            .runbook
            .steps
            .get_key_value(first.as_str())
            .map(|(k, _)| k.loc)
            .unwrap_or_default();
        ctx.error(loc, format!("dependency cycle: {}", cycle.join(" -> ")));
    }
}

/// `unknown step `x`; did you mean `y`?`
pub(super) fn unknown<'a>(
    what: &str,
    name: &str,
    known: impl IntoIterator<Item = &'a str>,
) -> String {
    match yaml::nearest(name, known) {
        Some(best) => format!("{what} `{name}`; did you mean `{best}`?"),
        None => format!("{what} `{name}`"),
    }
}

fn check_connector(ctx: &mut Ctx, id: &Located<String>, step: &Step) {
    let Some(uses) = &step.uses else {
        if let Some(with) = &step.with {
            ctx.error(
                with.loc,
                format!("step `{}` has `with` but no `uses`", id.value),
            );
        }
        return;
    };
    check_inputs(ctx, uses, step.with.as_ref());
}

/// Checks `uses` names a connector and `with` fits its typed inputs.
fn check_inputs(ctx: &mut Ctx, uses: &Located<String>, with: Option<&Node>) {
    let Some(spec) = lookup(&uses.value) else {
        let message = unknown("connector", &uses.value, CATALOG.iter().map(|c| c.name));
        ctx.error(uses.loc, format!("unknown {message}"));
        return;
    };
    let empty = Node::new(Value::Map(Vec::new()), uses.loc);
    let with = with.unwrap_or(&empty);
    if let Err(e) = (spec.check)(with.to_json()) {
        let path: Vec<PathSeg> = e.path.iter().map(|k| path_seg(k)).collect();
        let message = friendly(&e.message);
        let (loc, prefix) = if message.starts_with("unknown input") {
            (with.key_loc_at(&path), String::new())
        } else if path.is_empty() {
            (with.loc, String::new())
        } else {
            (
                with.loc_at(&path),
                format!("`{}`: ", yaml::path_text(&path)),
            )
        };
        ctx.error(loc, format!("{} inputs: {prefix}{message}", spec.name));
    }
}

fn path_seg(key: &str) -> PathSeg {
    key.parse::<usize>()
        .map_or_else(|_| PathSeg::Key(key.to_string()), PathSeg::Index)
}

/// serde_json's messages say "invalid type: integer `5`, expected ..." and add a position
/// inside the JSON we made; keep the words, drop the position.
fn friendly(message: &str) -> String {
    let text = match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => message,
    };
    let text = text
        .replace("invalid type: ", "found ")
        .replace("unknown variant", "unknown value");
    let text = text.replace("unknown field", "unknown input");
    if let Some(rest) = text.strip_prefix("unknown input `")
        && let Some((name, expected)) = rest.split_once("`, expected ")
    {
        let names: Vec<&str> = expected
            .split('`')
            .filter(|s| !s.is_empty() && !s.contains(',') && !s.contains(' '))
            .collect();
        if let Some(best) = yaml::nearest(name, names.iter().copied()) {
            return format!("unknown input `{name}`; did you mean `{best}`?");
        }
        return format!("unknown input `{name}`, expected {expected}");
    }
    text
}

fn check_condition(ctx: &mut Ctx, step: &Step) {
    let Some(cond) = &step.condition else { return };
    let value = cond.value.trim();
    if matches!(value, "success" | "always" | "failure") || crate::template::is_template(value) {
        return;
    }
    let hint = yaml::nearest(value, ["success", "always", "failure"])
        .map(|b| format!("; did you mean `{b}`?"))
        .unwrap_or_default();
    ctx.error(
        cond.loc,
        format!("malformed `if` `{value}`: write success, always, failure, or a template such as `{{{{eq params.mode \"full\"}}}}`{hint}"),
    );
}

fn check_for_each(ctx: &mut Ctx, step: &Step) {
    let Some(fe) = &step.for_each else { return };
    let Some(inventory) = ctx.inventory else {
        if ctx.runbook.inventory.is_none() {
            ctx.error(
                fe.group.loc,
                "`for_each` needs an inventory: add `inventory: path/to/hosts.yaml` (or `{ ansible: PATH }`)",
            );
        }
        return;
    };
    if !inventory.groups.contains_key(fe.group.value.as_str()) {
        let message = unknown(
            "inventory group",
            &fe.group.value,
            inventory.groups.keys().map(|k| k.value.as_str()),
        );
        ctx.error(fe.group.loc, format!("unknown {message}"));
    }
    if let Some(batch) = &fe.batch
        && batch.value.of(100) == 0
    {
        ctx.error(
            batch.loc,
            "`batch` must be at least 1 (or a percentage above 0%)",
        );
    }
}

fn check_undo(ctx: &mut Ctx, id: &Located<String>, step: &Step) {
    let Some(undo) = &step.undo else { return };
    if step.uses.is_none() {
        ctx.error(
            undo.uses.loc,
            format!(
                "step `{}` has `undo` but no `uses`: there is nothing to undo",
                id.value
            ),
        );
    }
    check_inputs(ctx, &undo.uses, undo.with.as_ref());
}

/// `notify_moot` only means something on a step that asks people.
fn check_notify_moot(ctx: &mut Ctx, id: &Located<String>, step: &Step) {
    let Some(flag) = &step.notify_moot else {
        return;
    };
    let uses = step.uses.as_ref().map(|u| u.value.as_str());
    if !matches!(uses, Some("approval" | "manual")) {
        ctx.error(
            flag.loc,
            format!(
                "step `{}`: `notify_moot` is for `approval` and `manual` steps (it tells the \
                 people asked that their decision is no longer needed)",
                id.value
            ),
        );
    }
}

fn check_retry(ctx: &mut Ctx, step: &Step) {
    if let Some(retry) = &step.retry
        && retry.attempts.value == 0
    {
        ctx.error(
            retry.attempts.loc,
            "`attempts` counts the first attempt too: it must be at least 1",
        );
    }
}

/// Recipients that are not addresses must be roles of this runbook.
fn check_roles(ctx: &mut Ctx) {
    let runbook = ctx.runbook;
    let mut names: Vec<Located<String>> = Vec::new();
    if let Some(notify) = &runbook.notify {
        names.extend(
            notify
                .to
                .value
                .as_slice()
                .iter()
                .map(|n| Located::new(n.clone(), notify.to.loc)),
        );
    }
    for step in runbook.steps.values() {
        names.extend(step_recipients(step.uses.as_ref(), step.with.as_ref()));
        if let Some(undo) = &step.undo {
            names.extend(step_recipients(Some(&undo.uses), undo.with.as_ref()));
        }
    }
    for name in names {
        let is_role_name = !name.value.contains('@') && !crate::template::is_template(&name.value);
        if is_role_name && !runbook.roles.contains_key(name.value.as_str()) {
            let message = unknown(
                "role",
                &name.value,
                runbook.roles.keys().map(|k| k.value.as_str()),
            );
            ctx.error(
                name.loc,
                format!("unknown {message} (define it under `roles`, or write an email address)"),
            );
        }
    }
    for addresses in runbook.roles.values() {
        for address in addresses {
            if !address.value.contains('@') {
                ctx.error(
                    address.loc,
                    format!("`{}` is not an email address", address.value),
                );
            }
        }
    }
}

fn step_recipients(uses: Option<&Located<String>>, with: Option<&Node>) -> Vec<Located<String>> {
    let (Some(uses), Some(with)) = (uses, with) else {
        return Vec::new();
    };
    let Some((_, keys)) = RECIPIENT_INPUTS.iter().find(|(c, _)| *c == uses.value) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for key in *keys {
        match with.value.get(key).map(|n| (&n.value, n.loc)) {
            Some((Value::Str(s), loc)) => out.push(Located::new(s.clone(), loc)),
            Some((Value::Seq(items), _)) => out.extend(
                items
                    .iter()
                    .filter_map(|i| i.value.as_text().map(|t| Located::new(t, i.loc))),
            ),
            _ => {}
        }
    }
    out
}

fn check_params(ctx: &mut Ctx) {
    let runbook = ctx.runbook;
    for (name, param) in &runbook.params {
        if param.secret && param.default.is_some() {
            ctx.error(
                name.loc,
                format!(
                    "secret param `{}` must not have a default: secrets never appear in a runbook",
                    name.value
                ),
            );
        }
        if let (Some(choices), Some(default)) = (&param.choices, &param.default)
            && !choices.contains(default)
        {
            ctx.error(
                name.loc,
                format!(
                    "param `{}`: default `{default}` is not one of its choices",
                    name.value
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::friendly;

    #[test]
    fn serde_json_messages_become_plain_words() {
        assert_eq!(
            friendly("unknown field `subjet`, expected one of `to`, `cc`, `subject`, `body`"),
            "unknown input `subjet`; did you mean `subject`?"
        );
        assert_eq!(
            friendly("invalid type: integer `5`, expected a string"),
            "found integer `5`, expected a string"
        );
    }
}
