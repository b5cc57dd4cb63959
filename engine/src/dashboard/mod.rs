//! The dashboard's drawings and live parts of the run page (issue #13), server-rendered with
//! maud (compile-time-checked, auto-escaping templates) and returning [`maud::Markup`]:
//!
//! - [`layout`]: the layered layout of a step graph (pure geometry, no markup);
//! - [`graph`]: the step graph as inline SVG, boxes coloured and labelled by state;
//! - [`timeline`]: a run's timeline (Gantt) as inline SVG: planned start against actual,
//!   waiting, awaiting a person, running, retries and rollback, deadlines and "now";
//! - [`actions`]: the run page's action buttons, the trigger form and the actions' confirm
//!   pages (trigger, decide, retry / skip / abort, cancel);
//! - [`overview`]: the overview at `/`: what needs attention, running runs, next cycles;
//! - [`runbook`]: a runbook's page: schedule in words, graph, next cycles, recent runs,
//!   version and validation;
//! - [`audit`]: the audit browser (every event, filtered, keyset-paged, the chain's state);
//! - [`run`]: the run page's live section (graph, timeline, hosts by state, audit trail,
//!   each paged through query parameters), built from store rows and the run's runbook.
//!
//! Nothing here reads a clock: "now" is passed in by the caller (from the injected clock).
//! Colours come from the fixed palette of [`Look`], never from data, and every state is
//! also written out in words.

pub mod actions;
pub mod audit;
pub mod graph;
pub mod layout;
pub mod month;
pub mod overview;
pub mod run;
pub mod runbook;
pub mod timeline;

/// The dashboard's stylesheet: a second `<style>` after the pages' own, allowed by its hash
/// in the Content-Security-Policy (see [`crate::pages::content_security_policy`]).
pub const STYLE: &str = "\
.drawing{overflow-x:auto;background:#fff;border:1px solid #d0d7de;padding:.5rem}\
.drawing svg{display:block}\
ul.legend{list-style:none;padding:0;margin:.4rem 0;display:flex;flex-wrap:wrap;gap:.3rem 1.2rem;\
font-size:.9rem}\
nav.pager{margin:.5rem 0;display:flex;gap:1rem;align-items:center;font-size:.95rem}\
details.hosts{background:#fff;border:1px solid #d0d7de;margin:.4rem 0;padding:.3rem .6rem}\
details.hosts summary{cursor:pointer;font-weight:600}\
table.month{table-layout:fixed}table.month td{height:6.5rem;font-size:.8rem;padding:.25rem .35rem;\
overflow-wrap:anywhere}\
table.month caption{caption-side:top;text-align:left;padding:.3rem 0;color:#57606a}\
td.outside{background:#f6f8fa;color:#57606a}\
td.blackout{background:repeating-linear-gradient(135deg,#eaeef2 0 6px,#fff 6px 12px)}\
td.today{outline:3px solid #0969da;outline-offset:-3px}\
.day .date{font-weight:600}.tag{font-size:.7rem;font-weight:600;padding:0 .3rem;border-radius:1rem;\
background:#ddf4ff;color:#0550ae}.tag.pt{background:#fff8c5;color:#6a4300}\
.day .reason{color:#a40e26;font-weight:600}ul.entries{margin:.2rem 0 0;padding-left:.9rem}\
form.filter{margin:.5rem 0}\
ul.errors{padding-left:1rem;margin:.4rem 0 0}pre.error{white-space:pre-wrap;overflow-wrap:anywhere;\
margin:.2rem 0;font-size:.85rem}.notice.rejected{margin-top:1rem}h3{font-size:1rem;margin:1.2rem 0 .4rem}\
form.trigger{margin:.5rem 0 1rem}.countdown{color:#57606a}\
form.audit{display:flex;flex-wrap:wrap;gap:.4rem .8rem;align-items:center}\
form.audit input{font:inherit;padding:.2rem .35rem;max-width:12rem}\
table.audit td{font-size:.85rem}table.audit td:nth-child(2){white-space:nowrap}\
";

use crate::store::StepState;

/// How a state looks: its word, a mark, and fill / stroke / text colours (text on fill
/// meets WCAG AA contrast).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Look {
    pub word: &'static str,
    pub mark: &'static str,
    pub fill: &'static str,
    pub stroke: &'static str,
    pub text: &'static str,
}

impl Look {
    /// The look of a step state.
    pub fn of(state: StepState) -> Look {
        let (word, mark, fill, stroke, text) = match state {
            StepState::Pending => ("pending", "○", "#f6f8fa", "#8c959f", "#424a53"),
            StepState::Waiting => ("waiting", "◷", "#fff8c5", "#bf8700", "#6a4300"),
            StepState::Running => ("running", "▶", "#ddf4ff", "#0969da", "#0550ae"),
            StepState::AwaitingInput => {
                ("awaiting a person", "✋", "#fbefff", "#8250df", "#6639ba")
            }
            StepState::Succeeded => ("succeeded", "✓", "#dafbe1", "#1a7f37", "#116329"),
            StepState::Failed => ("failed", "✗", "#ffebe9", "#cf222e", "#a40e26"),
            StepState::Skipped => ("skipped", "↷", "#eaeef2", "#6e7781", "#424a53"),
            StepState::Cancelled => ("cancelled", "⊘", "#eaeef2", "#6e7781", "#424a53"),
            StepState::Interrupted => ("interrupted", "⚠", "#fff1e5", "#bc4c00", "#953800"),
        };
        Look {
            word,
            mark,
            fill,
            stroke,
            text,
        }
    }
}

/// Every step state, in the order pages list them.
pub const STATES: [StepState; 9] = [
    StepState::Failed,
    StepState::Interrupted,
    StepState::AwaitingInput,
    StepState::Running,
    StepState::Waiting,
    StepState::Pending,
    StepState::Succeeded,
    StepState::Skipped,
    StepState::Cancelled,
];
