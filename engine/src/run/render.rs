//! Template rendering at dispatch time: the context a step's `with:` and `if` see (DESIGN §3),
//! built from the run's records, and strict rendering of every string in `with:`.

use chrono::NaiveDate;
use handlebars::Handlebars;
use serde_json::{Map, Value, json};

use crate::store::{RunRow, StepRow};

/// Everything templates may name, except `host`, which each fan-out child adds.
#[derive(Debug, Clone)]
pub struct RunContext {
    pub runbook: String,
    pub cycle: Option<String>,
    pub patch_tuesday: Option<NaiveDate>,
    /// Param values, secrets included (rendering needs them; nothing rendered is stored unredacted).
    pub params: Map<String, Value>,
    pub run_id: String,
    pub run_url: String,
}

impl RunContext {
    /// The template context for one step (or one host of it).
    pub fn for_step<'r>(
        &self,
        rows: impl IntoIterator<Item = &'r StepRow>,
        host: Option<&Value>,
    ) -> Value {
        let mut steps = Map::new();
        for row in rows.into_iter().filter(|r| r.host.is_empty()) {
            steps.insert(
                row.step.clone(),
                json!({ "status": status_text(row), "outputs": row.outputs }),
            );
        }
        let mut context = json!({
            "runbook": self.runbook,
            "cycle": self.cycle.clone().unwrap_or_default(),
            "patch_tuesday": self.patch_tuesday.map(|d| d.to_string()).unwrap_or_default(),
            "params": self.params,
            "steps": steps,
            "run": { "id": self.run_id, "url": self.run_url },
        });
        if let (Some(host), Some(map)) = (host, context.as_object_mut()) {
            map.insert("host".into(), host.clone());
        }
        context
    }

    /// Builds the context from a stored run (its snapshot holds cycle, params and Patch Tuesday).
    pub fn from_run(run: &RunRow, params: Map<String, Value>, run_url: String) -> RunContext {
        let patch_tuesday = run
            .cycle
            .as_deref()
            .and_then(|c| c.parse::<crate::calendar::Cycle>().ok())
            .map(crate::calendar::patch_tuesday);
        RunContext {
            runbook: run.runbook.clone(),
            cycle: run.cycle.clone(),
            patch_tuesday,
            params,
            run_id: run.id.clone(),
            run_url,
        }
    }
}

fn status_text(row: &StepRow) -> Value {
    serde_json::to_value(row.state).unwrap_or(Value::Null)
}

/// Renders every string inside `value` as a template.
pub fn render_value(hb: &Handlebars, value: &Value, context: &Value) -> Result<Value, String> {
    Ok(match value {
        Value::String(text) if crate::template::is_template(text) => Value::String(
            hb.render_template(text, context)
                .map_err(|e| render_error(text, &e))?,
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_value(hb, v, context))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_value(hb, v, context)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

fn render_error(template: &str, err: &handlebars::RenderError) -> String {
    let reason = err.to_string();
    let reason = reason.lines().next().unwrap_or(&reason);
    format!("cannot render `{template}`: {reason}")
}

/// Whether a rendered `if` template counts as true: anything but empty, `false`, `0`, `null`.
pub fn truthy(rendered: &str) -> bool {
    !matches!(rendered.trim(), "" | "false" | "0" | "null" | "no")
}
