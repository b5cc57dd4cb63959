//! The connector reference (`docs/connectors.md`), generated from the same source as the
//! runbook schema: each connector's typed inputs (their JSON Schema, with the doc comments as
//! descriptions) and its declared outputs. A test fails when the committed file drifts;
//! regenerate it with `patchday schema --connectors > docs/connectors.md`.

use std::fmt::Write as _;

use patchday_connectors::CATALOG;
use schemars::generate::SchemaSettings;
use serde_json::Value;

/// Outputs of the connectors the engine runs itself (approvals and manual tasks).
const ENGINE_OUTPUTS: &[(&str, &[(&str, &str)])] = &[
    (
        "approval",
        &[
            ("choice", "the choice that reached the quorum"),
            ("decided_by", "the addresses of the people who decided"),
        ],
    ),
    (
        "manual",
        &[
            ("choice", "`done` or `failed`"),
            ("decided_by", "who settled the task"),
        ],
    ),
];

/// The whole reference, as Markdown.
pub fn connectors_markdown() -> String {
    let mut generator = SchemaSettings::draft2020_12().into_generator();
    let schemas: Vec<Value> = CATALOG
        .iter()
        .map(|c| (c.schema)(&mut generator).to_value())
        .collect();
    let definitions = generator.take_definitions(true);
    let mut out = String::from(
        "# Connector reference\n\nGenerated from the connectors' typed inputs (`connectors/src/inputs.rs`) by \
         `patchday schema --connectors`; do not edit by hand. Every string input is a handlebars \
         template; numbers, booleans and enum values are literal. How each connector behaves and \
         fails is described in `connectors/README.md`.\n",
    );
    for (spec, schema) in CATALOG.iter().zip(&schemas) {
        let resolved = resolve(schema, &definitions);
        let _ = write!(
            out,
            "\n## `{}`\n\n{}. Idempotent: {}.{}\n\n",
            spec.name,
            spec.summary,
            if spec.idempotent { "yes" } else { "no" },
            if spec.batch {
                " In `for_each`, one execution per batch settles each host's row; `with:` \
                 cannot use `{{host.*}}`."
            } else {
                ""
            }
        );
        out.push_str(&inputs_table(&resolved, &definitions));
        out.push_str(&outputs_table(spec.name, spec.outputs));
    }
    out
}

/// Follows a `$ref` into the definitions.
fn resolve(schema: &Value, definitions: &serde_json::Map<String, Value>) -> Value {
    match schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.rsplit('/').next())
    {
        Some(name) => definitions.get(name).cloned().unwrap_or(Value::Null),
        None => schema.clone(),
    }
}

fn inputs_table(schema: &Value, definitions: &serde_json::Map<String, Value>) -> String {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return "No inputs.\n".to_string();
    };
    let mut out = String::from("| input | type | required | meaning |\n|---|---|---|---|\n");
    for (name, property) in properties {
        let own = property.get("description").and_then(Value::as_str);
        let of_type = resolve(property, definitions);
        let of_type = of_type.get("description").and_then(Value::as_str);
        let description = own
            .or(of_type)
            .unwrap_or("")
            .replace('\n', " ")
            .replace('|', "\\|");
        let _ = writeln!(
            out,
            "| `{name}` | {} | {} | {description} |",
            type_text(property, definitions),
            if required.contains(&name.as_str()) {
                "yes"
            } else {
                ""
            }
        );
    }
    out
}

/// A short type description: `string`, `integer`, `one of a, b`, `list of string`, ...
fn type_text(schema: &Value, definitions: &serde_json::Map<String, Value>) -> String {
    let schema = resolve(schema, definitions);
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let values: Vec<String> = values
            .iter()
            .filter_map(Value::as_str)
            .map(|v| format!("`{v}`"))
            .collect();
        return format!("one of {}", values.join(", "));
    }
    if let Some(value) = schema.get("const").and_then(Value::as_str) {
        return format!("`{value}`");
    }
    if let Some(options) = schema
        .get("anyOf")
        .or_else(|| schema.get("oneOf"))
        .and_then(Value::as_array)
    {
        if options.iter().all(|o| o.get("const").is_some()) {
            let values: Vec<String> = options
                .iter()
                .filter_map(|o| o.get("const").and_then(Value::as_str))
                .map(|v| format!("`{v}`"))
                .collect();
            return format!("one of {}", values.join(", "));
        }
        let texts: Vec<String> = options
            .iter()
            .map(|o| type_text(o, definitions))
            .filter(|t| t != "null")
            .collect();
        return texts.join(" or ");
    }
    if schema.get("pattern").and_then(Value::as_str) == Some("^([0-9]+[smhd])+$") {
        return "duration".to_string();
    }
    let kind = match schema.get("type") {
        Some(Value::Array(types)) => {
            let types: Vec<&str> = types
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .collect();
            match types.as_slice() {
                [one] => Some(Value::String(one.to_string())),
                _ => return types.join(" or "),
            }
        }
        other => other.cloned(),
    };
    match kind.as_ref() {
        Some(Value::String(t)) if t == "array" => format!(
            "list of {}",
            schema
                .get("items")
                .map(|i| type_text(i, definitions))
                .unwrap_or_else(|| "values".into())
        ),
        Some(Value::String(t)) if t == "object" => "mapping".to_string(),
        Some(Value::String(t)) => t.clone(),
        _ => "any".to_string(),
    }
}

fn outputs_table(name: &str, declared: &[(&str, &str)]) -> String {
    let outputs = if declared.is_empty() {
        ENGINE_OUTPUTS
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(declared, |(_, o)| *o)
    } else {
        declared
    };
    if outputs.is_empty() {
        return "\nNo outputs.\n".to_string();
    }
    let mut out = String::from("\n| output (`steps.<id>.outputs.*`) | meaning |\n|---|---|\n");
    for (output, meaning) in outputs {
        let _ = writeln!(out, "| `{output}` | {} |", meaning.replace('|', "\\|"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_reference_matches_the_code() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/connectors.md");
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == connectors_markdown(),
            "docs/connectors.md is stale: run `cargo run -q -p patchday -- schema --connectors > docs/connectors.md`"
        );
    }

    #[test]
    fn every_connector_and_input_is_documented() {
        let text = connectors_markdown();
        for spec in CATALOG {
            assert!(
                text.contains(&format!("## `{}`", spec.name)),
                "{} missing",
                spec.name
            );
        }
        assert!(text.contains("| `quorum` | integer |"), "{text}");
        assert!(
            text.contains("| `provider` | one of `libvirt`, `proxmox` | yes |"),
            "{text}"
        );
    }
}
