//! `patchday new runbook|inventory` (issue 15, authoring): starters that validate as written,
//! with the schema line, never overwriting a file; `validate` tells inventories from runbooks.

use std::path::Path;

use patchday_tests::{patchday, scratch, stderr, stdout};

fn new(dir: &Path, args: &[&str]) -> std::process::Output {
    patchday()
        .current_dir(dir)
        .arg("new")
        .args(args)
        .output()
        .expect("patchday runs")
}

fn validate(dir: &Path, paths: &[&str]) -> std::process::Output {
    patchday()
        .current_dir(dir)
        .arg("validate")
        .args(paths)
        .output()
        .expect("patchday runs")
}

#[test]
fn a_starter_runbook_validates_plans_and_simulates() {
    let dir = scratch("new-runbook");
    let out = new(&dir, &["runbook", "monthly-linux", "--dir", "runbooks"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = std::fs::read_to_string(dir.join("runbooks/monthly-linux.yaml")).unwrap();
    assert!(
        text.starts_with("# yaml-language-server: $schema=../schemas/runbook.schema.json\n"),
        "{text}"
    );
    assert!(text.contains("\nname: monthly-linux\n"), "{text}");
    let out = validate(&dir, &["runbooks/monthly-linux.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).is_empty(), "no warnings: {}", stderr(&out));
    let out = patchday()
        .current_dir(&dir)
        .args([
            "simulate",
            "runbooks/monthly-linux.yaml",
            "--cycle",
            "2027-02",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("tell-sysadmins"), "{}", stdout(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_starter_inventory_validates_and_a_runbook_fans_out_over_its_groups() {
    let dir = scratch("new-inventory");
    let out = new(&dir, &["inventory", "hosts", "--dir", "inventory"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = new(
        &dir,
        &[
            "runbook",
            "waves",
            "--dir",
            "runbooks",
            "--inventory",
            "inventory/hosts.yaml",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = std::fs::read_to_string(dir.join("runbooks/waves.yaml")).unwrap();
    assert!(
        text.contains("inventory: ../inventory/hosts.yaml"),
        "{text}"
    );
    // A folder of runbooks and a folder with the inventory, checked together.
    let out = validate(&dir, &["runbooks", "inventory"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(
        said.contains("1 runbook(s) valid (waves); 1 inventory file(s) valid"),
        "{said}"
    );
    // One wave per group, in the inventory's order.
    let out = patchday()
        .current_dir(&dir)
        .args(["plan", "runbooks/waves.yaml", "--format", "json"])
        .output()
        .unwrap();
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "notify-committee",
            "cab-approval",
            "patch-wave1",
            "patch-wave2",
            "tell-sysadmins"
        ]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_existing_file_is_never_overwritten_and_bad_names_are_refused() {
    let dir = scratch("new-refusals");
    assert_eq!(new(&dir, &["runbook", "one"]).status.code(), Some(0));
    std::fs::write(dir.join("one.yaml"), "edited by hand\n").unwrap();
    let out = new(&dir, &["runbook", "one"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("exists already"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(dir.join("one.yaml")).unwrap(),
        "edited by hand\n"
    );
    let out = new(&dir, &["runbook", "Monthly Linux"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("a-z, 0-9 and -"), "{}", stderr(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_inventory_among_runbooks_is_checked_as_an_inventory() {
    let dir = scratch("validate-inventory");
    std::fs::write(
        dir.join("hosts.yaml"),
        "hosts:\n  a: { adress: 10.0.0.1 }\ngroups:\n  wave1: [a, b]\n",
    )
    .unwrap();
    let out = validate(&dir, &["."]);
    assert_eq!(out.status.code(), Some(1));
    let said = stderr(&out);
    assert!(
        said.contains("hosts.yaml:2:8: error: unknown field `adress`; did you mean `address`?"),
        "{said}"
    );
    assert!(
        said.contains("hosts.yaml:4:14: error: unknown host `b`"),
        "{said}"
    );
    // Not the runbook errors it used to get.
    assert!(!said.contains("missing field `name`"), "{said}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_readme_shows_what_the_starters_write() {
    let dir = scratch("new-readme");
    assert_eq!(
        new(&dir, &["runbook", "monthly-linux", "--dir", "runbooks"])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        new(&dir, &["inventory", "hosts", "--dir", "inventory"])
            .status
            .code(),
        Some(0)
    );
    let readme = std::fs::read_to_string(patchday_tests::repo_root().join("README.md")).unwrap();
    for file in ["runbooks/monthly-linux.yaml", "inventory/hosts.yaml"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        assert!(
            readme.contains(&format!("```yaml\n{text}```")),
            "README.md's authoring guide no longer shows what `patchday new` writes for {file}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
