//! Checks on a runbook's notification templates (`notify.templates`): each file exists and
//! compiles, names only the variables its kind of email has, and an approval or task email
//! keeps the recipient's link. The files that pass become the runbook's
//! [`Templates`](crate::notification::Templates).

use super::Ctx;
use crate::notification::{NoticeKind, Template, Templates, variables};
use crate::template::VarRef;
use crate::yaml::{Loc, Located};

pub(super) fn check(ctx: &mut Ctx) -> Templates {
    let mut templates = Templates::default();
    let Some(notify) = &ctx.runbook.notify else {
        return templates;
    };
    for (kind, file) in notify.templates.files() {
        if let Some(template) = check_file(ctx, kind, file) {
            templates.set(kind, template);
        }
    }
    templates
}

/// Paths of the template files, as written (relative to the runbook).
pub(super) fn files(runbook: &crate::runbook::Runbook) -> Vec<&str> {
    let Some(notify) = &runbook.notify else {
        return Vec::new();
    };
    notify
        .templates
        .files()
        .map(|(_, file)| file.value.as_str())
        .collect()
}

fn check_file(ctx: &mut Ctx, kind: NoticeKind, file: &Located<String>) -> Option<Template> {
    let what = format!("`{}` template `{}`", kind.key(), file.value);
    let text = match ctx.sources.get(&ctx.resolve(&file.value)) {
        Some(Ok(text)) => text,
        Some(Err(e)) => {
            ctx.error(file.loc, format!("cannot read {what}: {e}"));
            return None;
        }
        None => {
            ctx.error(
                file.loc,
                format!("{what} was not found (paths are relative to the runbook)"),
            );
            return None;
        }
    };
    let template = Template::parse(text);
    let vars = match template.variables() {
        Ok(vars) => vars,
        Err(e) => {
            ctx.error(file.loc, format!("{what}: {e}"));
            return None;
        }
    };
    let errors_before = ctx.diags.len();
    for var in &vars {
        if let Err(problem) = check_var(kind, var) {
            ctx.error(
                file.loc,
                format!("{what}: `{{{{{}}}}}`: {problem}", var.raw),
            );
        }
    }
    check_link(ctx, kind, &vars, &what, file.loc);
    (ctx.diags.len() == errors_before).then_some(template)
}

fn check_var(kind: NoticeKind, var: &VarRef) -> Result<(), String> {
    let known = variables(kind);
    match var.segments.as_slice() {
        [] => Ok(()),
        [root] if known.contains(&root.as_str()) => Ok(()),
        [root, ..] if known.contains(&root.as_str()) => Err(format!("`{root}` has no fields")),
        [root, ..] => Err(match crate::yaml::nearest(root, known.iter().copied()) {
            Some(best) => format!("unknown variable `{root}`; did you mean `{best}`?"),
            None => format!(
                "unknown variable `{root}`: a `{}` email has {}",
                kind.key(),
                known
                    .iter()
                    .map(|v| format!("`{v}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// An approval or task email without `{{link}}` would leave its recipient no way to decide.
fn check_link(ctx: &mut Ctx, kind: NoticeKind, vars: &[VarRef], what: &str, loc: Loc) {
    let asks = matches!(kind, NoticeKind::Approval | NoticeKind::Task);
    if asks && !vars.iter().any(|v| v.segments == ["link"]) {
        ctx.error(
            loc,
            format!("{what} must contain `{{{{link}}}}`: it is the recipient's only way to decide"),
        );
    }
}
