//! Fuzz target: any bytes through load + validate + plan must give diagnostics, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use patchday::plan::{PlanFor, plan};
use patchday::runbook::load_runbook;
use patchday::validate::{Sources, check};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let loaded = load_runbook("fuzz.yaml", text);
    let mut sources = Sources::default();
    sources.insert("fuzz.yaml".into(), Ok(text.to_string()));
    let (checked, _diagnostics) = check(&loaded, Path::new(""), &sources);
    if let Some(checked) = checked {
        let _ = plan(&checked, PlanFor::default());
    }
});
