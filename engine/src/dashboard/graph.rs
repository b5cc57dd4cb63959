//! The run's step graph as inline SVG: boxes placed by [`super::layout`], each coloured by
//! its state and labelled with the state in words (never colour alone), fanned-out steps
//! with their hosts counted per state, and edges drawn as curves through the column gaps.
//!
//! Every text goes through maud's escaping; colours and classes come from the fixed palette
//! in [`super::Look`], never from data.

use maud::{Markup, html};

use super::Look;
use super::layout::{self, Layout, Route, Size};
use crate::store::StepState;

/// Height of a box: three lines (id, state, host counts).
const BOX_HEIGHT: f64 = 54.0;
/// Width of one character of the labels, roughly (13px system font).
const CHAR_WIDTH: f64 = 7.8;
/// Padding left and right inside a box.
const BOX_PADDING: f64 = 10.0;
/// Step ids longer than this are cut (the whole id is in the box's tooltip).
const MAX_LABEL: usize = 30;

/// One step as the graph shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphNode {
    pub id: String,
    pub state: StepState,
    /// Hosts of a fanned-out step per state, in [`StepState`] order; empty for other steps.
    pub hosts: Vec<(StepState, usize)>,
}

impl GraphNode {
    /// The host counts as one line: `7 succeeded · 2 failed`.
    fn counts(&self) -> Option<String> {
        if self.hosts.is_empty() {
            return None;
        }
        let total: usize = self.hosts.iter().map(|(_, n)| n).sum();
        let parts: Vec<String> = self
            .hosts
            .iter()
            .map(|(state, n)| format!("{n} {}", Look::of(*state).word))
            .collect();
        Some(format!("{total} hosts: {}", parts.join(" · ")))
    }

    fn label(&self) -> String {
        if self.id.chars().count() <= MAX_LABEL {
            return self.id.clone();
        }
        let cut: String = self.id.chars().take(MAX_LABEL - 1).collect();
        format!("{cut}…")
    }

    fn size(&self) -> Size {
        // The state line starts with its mark and a space; the counts are set smaller.
        let longest = [
            self.label().chars().count(),
            Look::of(self.state).word.chars().count() + 2,
            self.counts().map_or(0, |c| c.chars().count() * 17 / 20),
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        Size {
            width: (longest as f64 * CHAR_WIDTH + 2.0 * BOX_PADDING).max(90.0),
            height: BOX_HEIGHT,
        }
    }
}

/// Lays the graph out (box `i` needs the boxes `needs[i]`).
pub fn layout_of(nodes: &[GraphNode], needs: &[Vec<usize>]) -> Layout {
    let sizes: Vec<Size> = nodes.iter().map(GraphNode::size).collect();
    layout::layered(needs, &sizes)
}

/// A runbook's step graph before any run: every step pending, fanned-out steps without
/// counts (`patchday plan --format svg`).
pub fn plan_svg(checked: &crate::validate::CheckedRunbook) -> Markup {
    let dag = &checked.dag;
    let nodes: Vec<GraphNode> = (0..dag.len())
        .map(|i| GraphNode {
            id: dag.id(i).to_string(),
            state: StepState::Pending,
            hosts: Vec::new(),
        })
        .collect();
    graph_svg(&nodes, &super::run::needs_of(dag))
}

/// The graph as an `<svg>` element.
pub fn graph_svg(nodes: &[GraphNode], needs: &[Vec<usize>]) -> Markup {
    let layout = layout_of(nodes, needs);
    html! {
        svg.dag xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="dag-title"
            width=(px(layout.width)) height=(px(layout.height))
            viewBox=(format!("0 0 {} {}", px(layout.width), px(layout.height)))
            font-family="system-ui, sans-serif" font-size="13" {
            title #dag-title { "The run's steps as a graph: " (nodes.len()) " steps, each with its state" }
            defs {
                marker #dag-arrow viewBox="0 0 8 8" refX="8" refY="4" markerWidth="8"
                    markerHeight="8" orient="auto" {
                    path d="M0,0 L8,4 L0,8 z" fill="#6e7781" {}
                }
            }
            g.edges fill="none" stroke="#6e7781" stroke-width="1.3" {
                @for route in &layout.edges {
                    path d=(edge_path(route)) marker-end="url(#dag-arrow)" {}
                }
            }
            g.nodes {
                @for (node, placed) in nodes.iter().zip(&layout.nodes) {
                    (node_box(node, placed))
                }
            }
        }
    }
}

fn node_box(node: &GraphNode, placed: &layout::Placed) -> Markup {
    let look = Look::of(node.state);
    let text_x = px(placed.x + BOX_PADDING);
    let line = |n: f64| px(placed.y + 17.0 * n);
    html! {
        g.step data-step=(node.id) data-state=(look.word) {
            title { (node.id) ": " (look.word) @if let Some(c) = node.counts() { " (" (c) ")" } }
            rect.box x=(px(placed.x)) y=(px(placed.y)) width=(px(placed.width))
                height=(px(placed.height)) rx="6" fill=(look.fill) stroke=(look.stroke)
                stroke-width="1.5" {}
            text x=(text_x) y=(line(1.0)) font-weight="600" fill="#1f2328" { (node.label()) }
            text x=(text_x) y=(line(2.0)) fill=(look.text) { (look.mark) " " (look.word) }
            @if let Some(counts) = node.counts() {
                text x=(text_x) y=(line(2.9)) font-size="11" fill="#424a53" { (counts) }
            }
        }
    }
}

/// An SVG path through a route's points: curves across gaps, straight through columns.
fn edge_path(route: &Route) -> String {
    let mut d = String::new();
    for (k, &(x, y)) in route.points.iter().enumerate() {
        if k == 0 {
            d.push_str(&format!("M{},{}", px(x), px(y)));
        } else if k % 2 == 1 {
            // Odd points end a gap: a curve leaving and arriving horizontally.
            let (x0, y0) = route.points[k - 1];
            let mid = px((x0 + x) / 2.0);
            d.push_str(&format!(
                " C{mid},{} {mid},{} {},{}",
                px(y0),
                px(y),
                px(x),
                px(y)
            ));
        } else {
            d.push_str(&format!(" L{},{}", px(x), px(y)));
        }
    }
    d
}

/// A coordinate as SVG text, one decimal.
pub(super) fn px(v: f64) -> String {
    format!("{v:.1}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, state: StepState) -> GraphNode {
        GraphNode {
            id: id.into(),
            state,
            hosts: vec![],
        }
    }

    #[test]
    fn ids_are_escaped_and_states_are_written_out() {
        let nodes = vec![
            node("<script>alert(1)</script>", StepState::Failed),
            GraphNode {
                hosts: vec![(StepState::Succeeded, 7), (StepState::Failed, 2)],
                ..node("patch&\"reboot\"", StepState::Running)
            },
        ];
        let svg = graph_svg(&nodes, &[vec![], vec![0]]).into_string();
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;"), "{svg}");
        assert!(svg.contains("patch&amp;&quot;reboot&quot;"), "{svg}");
        assert!(svg.contains("failed"), "{svg}");
        assert!(svg.contains("9 hosts: 7 succeeded · 2 failed"), "{svg}");
        assert_eq!(svg.matches("<rect class=\"box\"").count(), 2);
        assert_eq!(svg.matches("marker-end").count(), 1);
    }

    #[test]
    fn an_edge_crossing_a_column_curves_in_gaps_and_runs_straight_through_it() {
        let route = Route {
            from: 0,
            to: 1,
            points: vec![(0.0, 0.0), (10.0, 5.0), (20.0, 5.0), (30.0, 0.0)],
        };
        assert_eq!(
            edge_path(&route),
            "M0.0,0.0 C5.0,0.0 5.0,5.0 10.0,5.0 L20.0,5.0 C25.0,5.0 25.0,0.0 30.0,0.0"
        );
    }

    #[test]
    fn long_ids_are_cut_in_the_box_but_whole_in_the_tooltip() {
        let id = "a".repeat(60);
        let svg = graph_svg(&[node(&id, StepState::Pending)], &[vec![]]).into_string();
        assert!(svg.contains(&format!("<title>{id}: pending</title>")));
        assert!(svg.contains(&format!("{}…", "a".repeat(MAX_LABEL - 1))));
    }

    /// The boxes' rectangles as the SVG states them (`<rect class="box" x= y= width= height=`).
    fn boxes_in(svg: &str) -> Vec<layout::Placed> {
        let attr = |tag: &str, name: &str| -> f64 {
            let start = tag.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
            let end = start + tag[start..].find('"').unwrap();
            tag[start..end].parse().unwrap()
        };
        svg.split("<rect class=\"box\"")
            .skip(1)
            .map(|rest| {
                let tag = &rest[..rest.find('>').unwrap()];
                layout::Placed {
                    x: attr(tag, "x"),
                    y: attr(tag, "y"),
                    width: attr(tag, "width"),
                    height: attr(tag, "height"),
                    column: 0,
                }
            })
            .collect()
    }

    /// Draws the graph and checks, from the SVG alone, that no two boxes overlap and every
    /// box lies inside the drawing.
    fn assert_drawn_without_overlap(what: &str, nodes: &[GraphNode], needs: &[Vec<usize>]) {
        let svg = graph_svg(nodes, needs).into_string();
        let boxes = boxes_in(&svg);
        assert_eq!(boxes.len(), nodes.len(), "{what}");
        let layout = layout_of(nodes, needs);
        for (i, a) in boxes.iter().enumerate() {
            assert!(a.x >= 0.0 && a.y >= 0.0, "{what}: {a:?} outside");
            assert!(a.x + a.width <= layout.width + 0.1, "{what}: {a:?} outside");
            assert!(
                a.y + a.height <= layout.height + 0.1,
                "{what}: {a:?} outside"
            );
            for b in &boxes[i + 1..] {
                assert!(!a.overlaps(b), "{what}: {a:?} overlaps {b:?}");
            }
        }
    }

    fn generated(n: usize) -> Vec<GraphNode> {
        (0..n)
            .map(|i| node(&format!("step-{i}"), state_for(i)))
            .collect()
    }

    const STATES_CYCLE: [StepState; 4] = [
        StepState::Succeeded,
        StepState::Running,
        StepState::AwaitingInput,
        StepState::Pending,
    ];

    #[test]
    fn every_example_runbook_is_drawn_without_overlapping_boxes() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks");
        let mut files = vec![];
        for dir in [root.clone(), root.join("demo")] {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "yaml") {
                    files.push(path);
                }
            }
        }
        assert!(files.len() >= 8, "{files:?}");
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap();
            let loaded = crate::runbook::load::load_runbook(&path.display().to_string(), &text);
            let runbook = loaded.runbook.unwrap();
            let dag = crate::dag::Dag::new(runbook.steps.iter().map(|(id, step)| {
                (
                    id.value.as_str(),
                    step.needs.iter().map(|n| n.value.as_str()).collect(),
                )
            }));
            let nodes: Vec<GraphNode> = (0..dag.len())
                .map(|i| GraphNode {
                    hosts: vec![(StepState::Succeeded, 12), (StepState::Failed, 3)],
                    ..node(dag.id(i), state_for(i))
                })
                .collect();
            let needs = super::super::run::needs_of(&dag);
            assert!(!nodes.is_empty());
            assert_drawn_without_overlap(&path.display().to_string(), &nodes, &needs);
        }
    }

    fn state_for(i: usize) -> StepState {
        STATES_CYCLE[i % STATES_CYCLE.len()]
    }

    #[test]
    fn generated_graphs_of_200_steps_wide_deep_and_tangled_have_no_overlapping_boxes() {
        // Wide: one start, 198 steps side by side, one join.
        let mut wide = vec![vec![]];
        wide.extend((1..199).map(|_| vec![0]));
        wide.push((1..199).collect());
        // Deep: a chain of 200, each also needing the step three back (long edges).
        let deep: Vec<Vec<usize>> = (0..200)
            .map(|i: usize| {
                [i.checked_sub(1), i.checked_sub(3)]
                    .into_iter()
                    .flatten()
                    .collect()
            })
            .collect();
        // Tangled: each step needs up to three of the ten before it (a fixed pseudo-random mix).
        let mut seed = 7u64;
        let tangled: Vec<Vec<usize>> = (0..200usize)
            .map(|i| {
                let mut needs: Vec<usize> = (0..3)
                    .filter_map(|_| {
                        seed = seed
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        let back = (seed >> 33) as usize % 10 + 1;
                        i.checked_sub(back)
                    })
                    .collect();
                needs.sort_unstable();
                needs.dedup();
                needs
            })
            .collect();
        for (what, needs) in [("wide", wide), ("deep", deep), ("tangled", tangled)] {
            assert_eq!(needs.len(), 200);
            assert_drawn_without_overlap(what, &generated(200), &needs);
        }
    }
}
