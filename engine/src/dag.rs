//! The step graph (petgraph): dependency cycles, topological waves, upstream sets and the
//! critical path.

use std::collections::BTreeSet;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

/// Steps as a graph: an edge `a -> b` means `b` needs `a`. Node `i` is the i-th step in file order.
#[derive(Debug, Clone)]
pub struct Dag {
    graph: DiGraph<String, ()>,
    /// The needs of each step, in file order (computed once: the engine asks often).
    needs: Vec<Vec<usize>>,
    /// Steps in dependency order, file order breaking ties; `None` with a cycle.
    order: Option<Vec<usize>>,
}

impl Dag {
    /// Builds the graph from `(step, needs)` pairs in file order; needs naming unknown steps
    /// are ignored (validation reports them).
    pub fn new<'a>(steps: impl IntoIterator<Item = (&'a str, Vec<&'a str>)>) -> Dag {
        let steps: Vec<_> = steps.into_iter().collect();
        let mut graph = DiGraph::with_capacity(steps.len(), steps.len());
        let mut index = std::collections::HashMap::with_capacity(steps.len());
        for (id, _) in &steps {
            index.insert(*id, graph.add_node(id.to_string()));
        }
        for (id, needs) in &steps {
            for need in needs {
                if let Some(&from) = index.get(need) {
                    graph.update_edge(from, index[id], ());
                }
            }
        }
        let mut dag = Dag {
            graph,
            needs: Vec::new(),
            order: None,
        };
        dag.needs = (0..dag.len()).map(|i| dag.compute_needs(i)).collect();
        dag.order = dag.compute_topological();
        dag
    }

    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    /// The id of step `i` (file order).
    pub fn id(&self, i: usize) -> &str {
        &self.graph[NodeIndex::new(i)]
    }

    /// The steps `i` needs directly, in file order.
    pub fn needs(&self, i: usize) -> &[usize] {
        &self.needs[i]
    }

    fn compute_needs(&self, i: usize) -> Vec<usize> {
        let mut out: Vec<usize> = self
            .graph
            .neighbors_directed(NodeIndex::new(i), petgraph::Direction::Incoming)
            .map(|n| n.index())
            .collect();
        out.sort_unstable();
        out
    }

    /// Every dependency cycle, each as the ids along it with the first repeated at the end
    /// (`a -> b -> c -> a`), in file order of their first step.
    pub fn cycles(&self) -> Vec<Vec<String>> {
        let mut out: Vec<Vec<String>> = tarjan_scc(&self.graph)
            .into_iter()
            .filter(|scc| scc.len() > 1 || self.graph.contains_edge(scc[0], scc[0]))
            .map(|scc| self.walk_cycle(&scc))
            .collect();
        out.sort_by_key(|c| {
            self.graph
                .node_indices()
                .position(|n| self.graph[n] == c[0])
        });
        out
    }

    /// A cycle through the first step (file order) of a strongly connected component.
    fn walk_cycle(&self, scc: &[NodeIndex]) -> Vec<String> {
        let members: BTreeSet<NodeIndex> = scc.iter().copied().collect();
        let start = *members.iter().next().unwrap_or(&scc[0]);
        // Breadth-first search inside the component for the shortest way back to `start`.
        let mut prev = std::collections::HashMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        while let Some(n) = queue.pop_front() {
            for next in self.graph.neighbors(n) {
                if next == start {
                    return self.path_back(start, n, &prev);
                }
                if members.contains(&next) && !prev.contains_key(&next) {
                    prev.insert(next, n);
                    queue.push_back(next);
                }
            }
        }
        vec![self.graph[start].clone(), self.graph[start].clone()]
    }

    fn path_back(
        &self,
        start: NodeIndex,
        last: NodeIndex,
        prev: &std::collections::HashMap<NodeIndex, NodeIndex>,
    ) -> Vec<String> {
        let mut path = vec![last];
        while let Some(p) = prev.get(path.last().unwrap_or(&start)) {
            path.push(*p);
        }
        if path.last() != Some(&start) {
            path.push(start);
        }
        path.reverse();
        path.push(start);
        path.into_iter().map(|n| self.graph[n].clone()).collect()
    }

    /// Waves: wave 1 holds the steps that need nothing, wave n+1 those whose latest need is
    /// in wave n. `None` when the graph has a cycle.
    pub fn waves(&self) -> Option<Vec<usize>> {
        let order = petgraph::algo::toposort(&self.graph, None).ok()?;
        let mut wave = vec![1usize; self.len()];
        for n in order {
            for next in self.graph.neighbors(n) {
                wave[next.index()] = wave[next.index()].max(wave[n.index()] + 1);
            }
        }
        Some(wave)
    }

    /// Every step `i` depends on, directly or through others.
    pub fn upstream(&self, i: usize) -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![NodeIndex::new(i)];
        while let Some(n) = stack.pop() {
            for up in self
                .graph
                .neighbors_directed(n, petgraph::Direction::Incoming)
            {
                if seen.insert(up.index()) {
                    stack.push(up);
                }
            }
        }
        seen
    }

    /// Whether step `to` depends on step `from`, directly or through others.
    pub fn reaches(&self, from: usize, to: usize) -> bool {
        petgraph::algo::has_path_connecting(
            &self.graph,
            NodeIndex::new(from),
            NodeIndex::new(to),
            None,
        )
    }

    /// The longest chain of dependencies (by number of steps), first step first; ties go to
    /// the chain that ends latest in file order. Empty when the graph has a cycle.
    pub fn critical_path(&self) -> Vec<usize> {
        let Ok(order) = petgraph::algo::toposort(&self.graph, None) else {
            return Vec::new();
        };
        let mut length = vec![1usize; self.len()];
        let mut best_prev: Vec<Option<usize>> = vec![None; self.len()];
        for n in order {
            for next in self.graph.neighbors(n) {
                if length[n.index()] + 1 > length[next.index()] {
                    length[next.index()] = length[n.index()] + 1;
                    best_prev[next.index()] = Some(n.index());
                }
            }
        }
        let Some(end) = (0..self.len()).max_by_key(|&i| (length[i], i)) else {
            return Vec::new();
        };
        let mut chain = vec![end];
        while let Some(p) = best_prev[*chain.last().unwrap_or(&end)] {
            chain.push(p);
        }
        chain.reverse();
        chain
    }

    /// Step indices in an order where every step comes after its needs (file order breaks ties).
    pub fn topological(&self) -> Option<&[usize]> {
        self.order.as_deref()
    }

    fn compute_topological(&self) -> Option<Vec<usize>> {
        let waves = self.waves()?;
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.sort_by_key(|&i| (waves[i], i));
        Some(order)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dag(edges: &[(&'static str, &[&'static str])]) -> Dag {
        Dag::new(edges.iter().map(|(id, needs)| (*id, needs.to_vec())))
    }

    #[test]
    fn waves_follow_the_longest_need() {
        let d = dag(&[("a", &[]), ("b", &["a"]), ("c", &["a", "b"]), ("d", &[])]);
        assert_eq!(d.waves().unwrap(), vec![1, 2, 3, 1]);
        assert_eq!(d.critical_path(), vec![0, 1, 2]);
        assert_eq!(d.upstream(2), BTreeSet::from([0, 1]));
    }

    #[test]
    fn cycles_are_named_whole() {
        let d = dag(&[("a", &["c"]), ("b", &["a"]), ("c", &["b"]), ("d", &["d"])]);
        let cycles = d.cycles();
        assert_eq!(cycles, vec![vec!["a", "b", "c", "a"], vec!["d", "d"]]);
        assert!(d.waves().is_none());
    }
}
