//! Layered (Sugiyama-style) layout of a step graph, left to right, computed on the server.
//!
//! 1. **Layering**: longest path from the steps that need nothing (a step's column is one
//!    more than its latest need's), so every edge points right.
//! 2. **Virtual nodes**: an edge spanning several columns gets a small virtual node in each
//!    column it crosses; its route runs through that reserved slot, never through a box.
//! 3. **Crossing reduction**: alternate sweeps ordering each column by the barycenter of its
//!    neighbours' positions in the column before (down) or after (up); the order with the
//!    fewest crossings wins.
//! 4. **Coordinates**: each column is placed as close as possible (least squares) to the
//!    barycenters of its neighbours while keeping its order and the minimum spacing (pool
//!    adjacent violators), over a few sweeps.
//! 5. **Routing**: an edge leaves its source's right side, crosses each gap as a curve and
//!    each column it spans as a straight line through its virtual node's slot, and enters
//!    its target's left side.
//!
//! Invariant: boxes in one column are separated by at least [`NODE_GAP`] and columns by at
//! least [`COLUMN_GAP`], so no two boxes overlap.

/// Vertical space between two boxes (or a box and an edge's slot) in one column.
pub const NODE_GAP: f64 = 14.0;
/// Horizontal space between two columns, where edges curve.
pub const COLUMN_GAP: f64 = 56.0;
/// Space around the drawing.
pub const MARGIN: f64 = 8.0;
/// The height of the slot an edge reserves in a column it crosses.
const SLOT_HEIGHT: f64 = 6.0;
/// Ordering sweeps (each one down and one up).
const ORDER_SWEEPS: usize = 6;
/// Coordinate sweeps (each one down and one up).
const PLACE_SWEEPS: usize = 4;

/// The size of a box to place.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Size {
    pub width: f64,
    pub height: f64,
}

/// A placed box: top-left corner and size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placed {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    /// The column (0 for steps that need nothing).
    pub column: usize,
}

impl Placed {
    /// Whether two boxes share any area.
    pub fn overlaps(&self, other: &Placed) -> bool {
        self.x < other.x + other.width
            && other.x < self.x + self.width
            && self.y < other.y + other.height
            && other.y < self.y + self.height
    }
}

/// An edge's route from `from` (the need) to `to`: the points it passes, the first on the
/// source's right side, the last on the target's left side, pairs in between entering and
/// leaving each column it crosses.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub from: usize,
    pub to: usize,
    pub points: Vec<(f64, f64)>,
}

/// The whole drawing.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub nodes: Vec<Placed>,
    pub edges: Vec<Route>,
    pub width: f64,
    pub height: f64,
}

/// A node of the layered graph: a box, or a slot an edge reserves in a column.
#[derive(Debug, Clone)]
struct Cell {
    column: usize,
    size: Size,
    /// Neighbours in the column before / after.
    before: Vec<usize>,
    after: Vec<usize>,
}

/// An edge (need `from`, step `to`) and the cells along it, source first, target last.
struct Chain {
    from: usize,
    to: usize,
    cells: Vec<usize>,
}

/// Lays out boxes of `sizes` where box `i` needs the boxes `needs[i]`.
pub fn layered(needs: &[Vec<usize>], sizes: &[Size]) -> Layout {
    let columns = columns_of(needs);
    let (mut cells, chains) = with_slots(needs, sizes, &columns);
    let mut order = initial_order(&cells);
    reduce_crossings(&cells, &mut order);
    let centers = place_vertically(&mut cells, &order);
    assemble(needs.len(), &cells, &order, &centers, &chains)
}

/// Longest-path layering. Steps caught in a dependency cycle (rejected by validation, but a
/// page must not fail on them) go one column after whatever is known of their needs.
fn columns_of(needs: &[Vec<usize>]) -> Vec<usize> {
    let n = needs.len();
    let mut waiting: Vec<usize> = needs
        .iter()
        .map(|ns| ns.iter().filter(|&&d| d < n).count())
        .collect();
    let mut needed_by = vec![Vec::new(); n];
    for (i, ns) in needs.iter().enumerate() {
        for &d in ns.iter().filter(|&&d| d < n) {
            needed_by[d].push(i);
        }
    }
    let mut column = vec![0usize; n];
    let mut done = vec![false; n];
    let mut ready: std::collections::VecDeque<usize> =
        (0..n).filter(|&i| waiting[i] == 0).collect();
    let mut next_stuck = 0;
    loop {
        while let Some(i) = ready.pop_front() {
            if std::mem::replace(&mut done[i], true) {
                continue;
            }
            for &j in &needed_by[i] {
                column[j] = column[j].max(column[i] + 1);
                waiting[j] = waiting[j].saturating_sub(1);
                if waiting[j] == 0 {
                    ready.push_back(j);
                }
            }
        }
        // A cycle: release its first remaining step.
        while next_stuck < n && done[next_stuck] {
            next_stuck += 1;
        }
        if next_stuck == n {
            return column;
        }
        ready.push_back(next_stuck);
    }
}

/// The layered graph: every box, plus a slot per column an edge crosses. Returns the cells
/// and the chain of cells of each edge.
fn with_slots(needs: &[Vec<usize>], sizes: &[Size], columns: &[usize]) -> (Vec<Cell>, Vec<Chain>) {
    let mut cells: Vec<Cell> = sizes
        .iter()
        .zip(columns)
        .map(|(&size, &column)| Cell {
            column,
            size,
            before: Vec::new(),
            after: Vec::new(),
        })
        .collect();
    let mut chains = Vec::new();
    for (to, ns) in needs.iter().enumerate() {
        for &from in ns.iter().filter(|&&d| d < needs.len() && d != to) {
            let mut chain = vec![from];
            // A back edge (a cycle) is drawn as a short hop, not through slots.
            for column in columns[from] + 1..columns[to] {
                cells.push(Cell {
                    column,
                    size: Size {
                        width: 0.0,
                        height: SLOT_HEIGHT,
                    },
                    before: Vec::new(),
                    after: Vec::new(),
                });
                chain.push(cells.len() - 1);
            }
            chain.push(to);
            for pair in chain.windows(2) {
                cells[pair[0]].after.push(pair[1]);
                cells[pair[1]].before.push(pair[0]);
            }
            chains.push(Chain {
                from,
                to,
                cells: chain,
            });
        }
    }
    (cells, chains)
}

/// Cells per column, boxes in file order, then slots in creation order.
fn initial_order(cells: &[Cell]) -> Vec<Vec<usize>> {
    let count = cells.iter().map(|c| c.column + 1).max().unwrap_or(0);
    let mut order = vec![Vec::new(); count];
    for (i, cell) in cells.iter().enumerate() {
        order[cell.column].push(i);
    }
    order
}

/// Barycenter sweeps; keeps the order with the fewest crossings seen.
fn reduce_crossings(cells: &[Cell], order: &mut [Vec<usize>]) {
    let mut best = order.to_vec();
    let mut best_crossings = crossings(cells, order);
    for _ in 0..ORDER_SWEEPS {
        if best_crossings == 0 {
            break;
        }
        for column in 1..order.len() {
            sort_by_barycenter(cells, order, column, column - 1, |c| &c.before);
        }
        for column in (0..order.len().saturating_sub(1)).rev() {
            sort_by_barycenter(cells, order, column, column + 1, |c| &c.after);
        }
        let now = crossings(cells, order);
        if now < best_crossings {
            best_crossings = now;
            best.clone_from_slice(order);
        }
    }
    order.clone_from_slice(&best);
}

/// Orders `column` by the mean position of each cell's neighbours in `fixed`; cells without
/// any keep their place.
fn sort_by_barycenter(
    cells: &[Cell],
    order: &mut [Vec<usize>],
    column: usize,
    fixed: usize,
    neighbours: impl Fn(&Cell) -> &Vec<usize>,
) {
    let position = positions(cells.len(), &order[fixed]);
    let mut keyed: Vec<(f64, usize)> = order[column]
        .iter()
        .enumerate()
        .map(|(at, &cell)| {
            let around = neighbours(&cells[cell]);
            let key = if around.is_empty() {
                at as f64
            } else {
                around.iter().map(|&o| position[o] as f64).sum::<f64>() / around.len() as f64
            };
            (key, cell)
        })
        .collect();
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
    order[column] = keyed.into_iter().map(|(_, cell)| cell).collect();
}

/// Position of each cell within `column` (cells elsewhere: 0).
fn positions(cells: usize, column: &[usize]) -> Vec<usize> {
    let mut position = vec![0; cells];
    for (at, &cell) in column.iter().enumerate() {
        position[cell] = at;
    }
    position
}

/// Edge crossings between adjacent columns (counted by inversions, O(E log E) per gap).
fn crossings(cells: &[Cell], order: &[Vec<usize>]) -> usize {
    let mut total = 0;
    for pair in order.windows(2) {
        let left = positions(cells.len(), &pair[0]);
        let right = positions(cells.len(), &pair[1]);
        let mut ends: Vec<(usize, usize)> = pair[0]
            .iter()
            .flat_map(|&a| cells[a].after.iter().map(move |&b| (a, b)))
            .map(|(a, b)| (left[a], right[b]))
            .collect();
        ends.sort_unstable();
        let targets: Vec<usize> = ends.into_iter().map(|(_, b)| b).collect();
        total += inversions(&targets);
    }
    total
}

/// Pairs `i < j` with `v[i] > v[j]` (merge sort).
fn inversions(v: &[usize]) -> usize {
    if v.len() < 2 {
        return 0;
    }
    let (left, right) = v.split_at(v.len() / 2);
    let mut count = inversions(left) + inversions(right);
    let (mut l, mut r) = (left.to_vec(), right.to_vec());
    l.sort_unstable();
    r.sort_unstable();
    let mut j = 0;
    for &x in &l {
        while j < r.len() && r[j] < x {
            j += 1;
        }
        count += j;
    }
    count
}

/// Vertical centers: each column as close as possible to its neighbours' barycenters,
/// keeping order and spacing.
fn place_vertically(cells: &mut [Cell], order: &[Vec<usize>]) -> Vec<f64> {
    let mut center = vec![0.0; cells.len()];
    for column in order {
        let stacked = spaced(cells, column, &vec![0.0; column.len()]);
        for (&cell, y) in column.iter().zip(stacked) {
            center[cell] = y;
        }
    }
    for _ in 0..PLACE_SWEEPS {
        for column in order.iter().skip(1) {
            align(cells, column, &mut center, |c| &c.before);
        }
        for column in order.iter().rev().skip(1) {
            align(cells, column, &mut center, |c| &c.after);
        }
    }
    center
}

fn align(
    cells: &[Cell],
    column: &[usize],
    center: &mut [f64],
    neighbours: impl Fn(&Cell) -> &Vec<usize>,
) {
    let wanted: Vec<f64> = column
        .iter()
        .map(|&cell| {
            let around = neighbours(&cells[cell]);
            if around.is_empty() {
                center[cell]
            } else {
                around.iter().map(|&o| center[o]).sum::<f64>() / around.len() as f64
            }
        })
        .collect();
    for (&cell, y) in column.iter().zip(spaced(cells, column, &wanted)) {
        center[cell] = y;
    }
}

/// Centers closest (least squares) to `wanted` with each cell at least its half height plus
/// the gap plus the next one's half height above the next: isotonic regression on the
/// centers minus their cumulative minimum offsets (pool adjacent violators).
fn spaced(cells: &[Cell], column: &[usize], wanted: &[f64]) -> Vec<f64> {
    let mut offset = Vec::with_capacity(column.len());
    let mut sum = 0.0;
    for (k, &cell) in column.iter().enumerate() {
        if k > 0 {
            sum += (cells[column[k - 1]].size.height + cells[cell].size.height) / 2.0 + NODE_GAP;
        }
        offset.push(sum);
    }
    // Blocks of (mean, count) of the shifted targets, non-decreasing.
    let mut blocks: Vec<(f64, usize)> = Vec::new();
    for (w, o) in wanted.iter().zip(&offset) {
        blocks.push((w - o, 1));
        while blocks.len() > 1 && blocks[blocks.len() - 2].0 > blocks[blocks.len() - 1].0 {
            let (m2, c2) = blocks.pop().unwrap_or((0.0, 0));
            let (m1, c1) = blocks.pop().unwrap_or((0.0, 0));
            blocks.push((
                (m1 * c1 as f64 + m2 * c2 as f64) / (c1 + c2) as f64,
                c1 + c2,
            ));
        }
    }
    let shifted = blocks
        .into_iter()
        .flat_map(|(m, c)| std::iter::repeat_n(m, c));
    shifted.zip(offset).map(|(z, o)| z + o).collect()
}

/// Boxes and routes in drawing coordinates (everything shifted inside the margin).
fn assemble(
    boxes: usize,
    cells: &[Cell],
    order: &[Vec<usize>],
    center: &[f64],
    chains: &[Chain],
) -> Layout {
    let widths: Vec<f64> = order
        .iter()
        .map(|column| {
            column
                .iter()
                .map(|&c| cells[c].size.width)
                .fold(0.0, f64::max)
        })
        .collect();
    let mut left = Vec::with_capacity(widths.len());
    let mut x = MARGIN;
    for w in &widths {
        left.push(x);
        x += w + COLUMN_GAP;
    }
    let top = cells
        .iter()
        .zip(center)
        .map(|(c, y)| y - c.size.height / 2.0)
        .fold(f64::INFINITY, f64::min);
    let shift = if top.is_finite() { MARGIN - top } else { 0.0 };
    let bottom = cells
        .iter()
        .zip(center)
        .map(|(c, y)| y + c.size.height / 2.0 + shift)
        .fold(0.0, f64::max);
    let nodes: Vec<Placed> = (0..boxes)
        .map(|i| {
            let cell = &cells[i];
            Placed {
                x: left[cell.column] + (widths[cell.column] - cell.size.width) / 2.0,
                y: center[i] + shift - cell.size.height / 2.0,
                width: cell.size.width,
                height: cell.size.height,
                column: cell.column,
            }
        })
        .collect();
    let edges = chains
        .iter()
        .map(|chain| {
            let source = &nodes[chain.from];
            let target = &nodes[chain.to];
            let mut points = vec![(source.x + source.width, source.y + source.height / 2.0)];
            for &slot in &chain.cells[1..chain.cells.len() - 1] {
                let column = cells[slot].column;
                let y = center[slot] + shift;
                points.push((left[column], y));
                points.push((left[column] + widths[column], y));
            }
            points.push((target.x, target.y + target.height / 2.0));
            Route {
                from: chain.from,
                to: chain.to,
                points,
            }
        })
        .collect();
    Layout {
        nodes,
        edges,
        width: (x - COLUMN_GAP + MARGIN).max(2.0 * MARGIN),
        height: bottom + MARGIN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxes(n: usize) -> Vec<Size> {
        vec![
            Size {
                width: 120.0,
                height: 40.0
            };
            n
        ]
    }

    fn assert_no_overlap(layout: &Layout) {
        for (i, a) in layout.nodes.iter().enumerate() {
            for b in &layout.nodes[i + 1..] {
                assert!(!a.overlaps(b), "{a:?} overlaps {b:?}");
            }
        }
    }

    #[test]
    fn columns_follow_the_longest_path() {
        let needs = vec![vec![], vec![0], vec![0, 1], vec![]];
        assert_eq!(columns_of(&needs), vec![0, 1, 2, 0]);
    }

    #[test]
    fn a_cycle_still_gets_columns() {
        let needs = vec![vec![2], vec![0], vec![1]];
        let columns = columns_of(&needs);
        assert_eq!(columns.len(), 3);
        let layout = layered(&needs, &boxes(3));
        assert_no_overlap(&layout);
    }

    #[test]
    fn long_edges_pass_through_slots_in_the_columns_they_cross() {
        // a -> b -> c and a -> c: the edge a -> c crosses b's column beside b, not through it.
        let needs = vec![vec![], vec![0], vec![0, 1]];
        let layout = layered(&needs, &boxes(3));
        let long = layout
            .edges
            .iter()
            .find(|e| e.from == 0 && e.to == 2)
            .unwrap();
        assert_eq!(long.points.len(), 4);
        let b = layout.nodes[1];
        let (_, y) = long.points[1];
        assert!(
            y < b.y - NODE_GAP / 2.0 || y > b.y + b.height + NODE_GAP / 2.0,
            "{y} in {b:?}"
        );
        assert_no_overlap(&layout);
    }

    #[test]
    fn barycenters_untangle_a_crossed_pair() {
        // Column 1 lists d (needs b) before c (needs a): ordering puts c first.
        let needs = vec![vec![], vec![], vec![1], vec![0]];
        let layout = layered(&needs, &boxes(4));
        assert!(layout.nodes[3].y < layout.nodes[2].y);
    }

    #[test]
    fn inversions_are_counted() {
        assert_eq!(inversions(&[0, 1, 2]), 0);
        assert_eq!(inversions(&[2, 1, 0]), 3);
        assert_eq!(inversions(&[1, 0, 1, 0]), 3);
    }

    #[test]
    fn spacing_keeps_order_and_the_gap() {
        let cells: Vec<Cell> = (0..3)
            .map(|_| Cell {
                column: 0,
                size: Size {
                    width: 1.0,
                    height: 10.0,
                },
                before: vec![],
                after: vec![],
            })
            .collect();
        let y = spaced(&cells, &[0, 1, 2], &[5.0, 5.0, 100.0]);
        assert!(y[1] - y[0] >= 10.0 + NODE_GAP - 1e-9);
        assert!((y[2] - 100.0).abs() < 1e-9);
    }
}
