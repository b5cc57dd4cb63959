//! `patchday schema`: print the runbook JSON Schema, or write both schemas into a folder.

use std::path::PathBuf;
use std::process::ExitCode;

use super::Globals;
use crate::schema::{
    INVENTORY_SCHEMA_FILE, RUNBOOK_SCHEMA_FILE, inventory_schema, runbook_schema, to_file_text,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the inventory schema instead of the runbook schema.
    #[arg(long)]
    inventory: bool,
    /// Print the connector reference (Markdown) instead: docs/connectors.md.
    #[arg(long, conflicts_with = "inventory")]
    connectors: bool,
    /// Write runbook.schema.json and inventory.schema.json into this folder.
    #[arg(long, value_name = "DIR")]
    write: Option<PathBuf>,
}

pub fn run(args: Args, _globals: &Globals) -> anyhow::Result<ExitCode> {
    if let Some(dir) = args.write {
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join(RUNBOOK_SCHEMA_FILE),
            to_file_text(&runbook_schema()),
        )?;
        std::fs::write(
            dir.join(INVENTORY_SCHEMA_FILE),
            to_file_text(&inventory_schema()),
        )?;
        outln!(
            "wrote {} and {} in {}",
            RUNBOOK_SCHEMA_FILE,
            INVENTORY_SCHEMA_FILE,
            dir.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if args.connectors {
        out!("{}", crate::docs::connectors_markdown());
        return Ok(ExitCode::SUCCESS);
    }
    let schema = if args.inventory {
        inventory_schema()
    } else {
        runbook_schema()
    };
    out!("{}", to_file_text(&schema));
    Ok(ExitCode::SUCCESS)
}
