//! Handlebars templates: which variables a template names, so validation can check them
//! before anything runs, and the registry everything renders with. Rendering is strict (an
//! unknown variable is an error) everywhere but in simulations.

use handlebars::template::{HelperTemplate, Parameter, Template, TemplateElement};

/// Block helpers whose body is rendered in the same scope (so variables inside are checked).
const SAME_SCOPE_BLOCKS: &[&str] = &["if", "unless"];

/// A variable a template names, as written (`steps.patch.outputs.exit_code`), split on `.` / `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarRef {
    pub raw: String,
    pub segments: Vec<String>,
}

/// A handlebars registry for plain text (no HTML escaping): strict (an unknown variable is an
/// error) or lenient (simulation, where dry-run connectors produce no outputs and missing
/// values render empty).
pub fn registry(strict: bool) -> handlebars::Handlebars<'static> {
    let mut hb = handlebars::Handlebars::new();
    hb.set_strict_mode(strict);
    hb.register_escape_fn(handlebars::no_escape);
    hb
}

/// Whether a string holds template syntax at all (plain strings need no compiling).
pub fn is_template(text: &str) -> bool {
    text.contains("{{")
}

/// The variables `text` names at the top scope. Inside `#each` / `#with` the scope changes,
/// so only the block's arguments are checked there.
pub fn variables(text: &str) -> Result<Vec<VarRef>, String> {
    let template = Template::compile(text).map_err(|e| compile_message(&e))?;
    let mut out = Vec::new();
    collect(&template, &mut out);
    Ok(out)
}

fn compile_message(err: &handlebars::TemplateError) -> String {
    let text = err.to_string();
    let first = text.lines().next().unwrap_or(&text).trim();
    let first = first.strip_prefix("Template error: ").unwrap_or(first);
    if first.starts_with("invalid handlebars syntax") {
        return "malformed template: invalid handlebars syntax (an unclosed `{{#block}}`, or a stray `{{`?)".to_string();
    }
    format!("malformed template: {first}")
}

fn collect(template: &Template, out: &mut Vec<VarRef>) {
    for element in &template.elements {
        match element {
            TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) => {
                collect_expression(h, out)
            }
            TemplateElement::HelperBlock(h) => collect_block(h, out),
            _ => {}
        }
    }
}

fn collect_expression(h: &HelperTemplate, out: &mut Vec<VarRef>) {
    if h.params.is_empty() && h.hash.is_empty() {
        // `{{name}}`: a variable (or a helper without arguments, which we do not use).
        collect_param(&h.name, out, true);
    }
    for p in h.params.iter().chain(h.hash.values()) {
        collect_param(p, out, false);
    }
}

fn collect_block(h: &HelperTemplate, out: &mut Vec<VarRef>) {
    for p in h.params.iter().chain(h.hash.values()) {
        collect_param(p, out, false);
    }
    let same_scope =
        matches!(&h.name, Parameter::Name(n) if SAME_SCOPE_BLOCKS.contains(&n.as_str()));
    if same_scope {
        for t in h.template.iter().chain(h.inverse.iter()) {
            collect(t, out);
        }
    }
}

fn collect_param(p: &Parameter, out: &mut Vec<VarRef>, name_is_var: bool) {
    match p {
        Parameter::Path(handlebars::Path::Relative((_, raw))) => out.push(var_ref(raw)),
        Parameter::Name(name) if name_is_var => out.push(var_ref(name)),
        Parameter::Subexpression(sub) => {
            if let TemplateElement::Expression(h) = sub.element.as_ref() {
                for p in h.params.iter().chain(h.hash.values()) {
                    collect_param(p, out, false);
                }
            }
        }
        _ => {}
    }
}

fn var_ref(raw: &str) -> VarRef {
    let segments = raw
        .split(['.', '/'])
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_start_matches('[').trim_end_matches(']').to_string())
        .collect();
    VarRef {
        raw: raw.to_string(),
        segments,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Vec<String> {
        variables(text)
            .unwrap()
            .into_iter()
            .map(|v| v.raw)
            .collect()
    }

    #[test]
    fn finds_plain_and_nested_variables() {
        assert_eq!(
            names("Cycle {{cycle}} on {{host.address}}"),
            vec!["cycle", "host.address"]
        );
        assert_eq!(
            names("{{steps.patch-node1.status}}"),
            vec!["steps.patch-node1.status"]
        );
    }

    #[test]
    fn looks_inside_if_but_not_inside_each() {
        let found = names(
            "{{#if params.kb}}{{params.kb}}{{else}}{{cycle}}{{/if}}{{#each steps.a.outputs.list}}{{name}}{{/each}}",
        );
        assert_eq!(
            found,
            vec!["params.kb", "params.kb", "cycle", "steps.a.outputs.list"]
        );
    }

    #[test]
    fn helper_arguments_are_variables() {
        assert_eq!(
            names("{{#if (eq steps.cab.outputs.choice \"patch-now\")}}x{{/if}}"),
            vec!["steps.cab.outputs.choice"]
        );
    }

    #[test]
    fn malformed_templates_are_reported() {
        assert!(variables("{{#if x}}unclosed").is_err());
    }
}
