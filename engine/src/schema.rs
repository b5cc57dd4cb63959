//! JSON Schemas for runbooks and inventories, generated from the Rust types (schemars).
//!
//! The runbook schema types each step's `with:` by its `uses:` (an `if`/`then` per built-in
//! connector), so editors complete and check connector inputs too. The committed copies in
//! `schemas/` are guarded by a test; regenerate them with `patchday schema --write schemas/`.

use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

use patchday_connectors::CATALOG;

use crate::inventory::Inventory;
use crate::runbook::Runbook;

/// File names of the committed schemas.
pub const RUNBOOK_SCHEMA_FILE: &str = "runbook.schema.json";
pub const INVENTORY_SCHEMA_FILE: &str = "inventory.schema.json";

/// The runbook JSON Schema (draft 2020-12).
pub fn runbook_schema() -> Value {
    let mut generator = SchemaSettings::draft2020_12().into_generator();
    let inputs: Vec<(&str, Value)> = CATALOG
        .iter()
        .map(|c| (c.name, (c.schema)(&mut generator).to_value()))
        .collect();
    let mut schema = generator.root_schema_for::<Runbook>().to_value();
    let conditions: Vec<Value> = inputs
        .iter()
        .map(|(name, inputs)| {
            json!({
                "if": { "properties": { "uses": { "const": name } }, "required": ["uses"] },
                "then": { "properties": { "with": inputs } }
            })
        })
        .collect();
    for def in ["Step", "Undo"] {
        if let Some(step) = schema
            .pointer_mut(&format!("/$defs/{def}"))
            .and_then(Value::as_object_mut)
        {
            step.insert("allOf".into(), Value::Array(conditions.clone()));
        }
    }
    schema
}

/// The inventory JSON Schema (draft 2020-12).
pub fn inventory_schema() -> Value {
    SchemaSettings::draft2020_12()
        .into_generator()
        .root_schema_for::<Inventory>()
        .to_value()
}

/// A schema as it is committed: pretty JSON with a final newline.
pub fn to_file_text(schema: &Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn committed(name: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../schemas")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn committed_schemas_match_the_code() {
        let hint = "the committed schema differs from the code: run `cargo run -q -p patchday -- schema --write schemas/`";
        assert!(
            committed(RUNBOOK_SCHEMA_FILE) == to_file_text(&runbook_schema()),
            "{hint}"
        );
        assert!(
            committed(INVENTORY_SCHEMA_FILE) == to_file_text(&inventory_schema()),
            "{hint}"
        );
    }

    #[test]
    fn step_inputs_are_typed_by_connector() {
        let schema = runbook_schema();
        let all_of = schema
            .pointer("/$defs/Step/allOf")
            .and_then(Value::as_array)
            .unwrap();
        assert_eq!(all_of.len(), CATALOG.len());
        assert_eq!(
            all_of[0].pointer("/if/properties/uses/const"),
            Some(&json!("email"))
        );
    }
}
