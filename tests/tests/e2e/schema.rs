//! `patchday schema`: prints the same schema that is committed in `schemas/`.

use patchday_tests::{repo_root, run};

#[test]
fn schema_prints_the_committed_runbook_schema() {
    let out = run(&["schema"]);
    assert_eq!(out.status.code(), Some(0));
    let committed =
        std::fs::read_to_string(repo_root().join("schemas/runbook.schema.json")).unwrap();
    assert!(
        String::from_utf8(out.stdout).unwrap() == committed,
        "`patchday schema` differs from schemas/runbook.schema.json"
    );
}

#[test]
fn schema_inventory_prints_the_committed_inventory_schema() {
    let out = run(&["schema", "--inventory"]);
    let committed =
        std::fs::read_to_string(repo_root().join("schemas/inventory.schema.json")).unwrap();
    assert!(
        String::from_utf8(out.stdout).unwrap() == committed,
        "`patchday schema --inventory` differs from schemas/inventory.schema.json"
    );
}
