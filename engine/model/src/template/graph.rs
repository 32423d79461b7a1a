//! The step dependency graph: structural checks (duplicates, unknown or self
//! dependencies, cycles) and queries (levels, roots, children).

use std::collections::{HashMap, HashSet};

use super::{StepTemplate, Template, TemplateError};

/// Step indices by name, and each step's children (steps that depend on it) by index.
struct Graph<'a> {
    index: HashMap<&'a str, usize>,
    children: Vec<Vec<usize>>,
}

impl<'a> Graph<'a> {
    /// Builds the graph; unknown dependencies are left out (they are checked separately).
    fn new(steps: &'a [StepTemplate]) -> Self {
        let mut index = HashMap::with_capacity(steps.len());
        for (i, step) in steps.iter().enumerate() {
            index.entry(step.name.as_str()).or_insert(i);
        }
        let mut children = vec![Vec::new(); steps.len()];
        for (i, step) in steps.iter().enumerate() {
            for dep in &step.depends_on {
                if let Some(&parent) = index.get(dep.as_str()) {
                    children[parent].push(i);
                }
            }
        }
        Graph { index, children }
    }
}

/// Checks step names are unique, every dependency exists, is listed once and is not
/// the step itself, and that there is no cycle.
pub(crate) fn check(steps: &[StepTemplate]) -> Result<(), TemplateError> {
    let mut seen = HashSet::with_capacity(steps.len());
    for step in steps {
        if !seen.insert(step.name.as_str()) {
            return Err(TemplateError::DuplicateStep {
                name: step.name.clone(),
            });
        }
    }
    for step in steps {
        let mut deps = HashSet::with_capacity(step.depends_on.len());
        for dep in &step.depends_on {
            if dep == &step.name {
                return Err(TemplateError::SelfDependency {
                    step: step.name.clone(),
                });
            }
            if !seen.contains(dep.as_str()) {
                return Err(TemplateError::UnknownDependency {
                    step: step.name.clone(),
                    dependency: dep.clone(),
                });
            }
            if !deps.insert(dep.as_str()) {
                return Err(TemplateError::DuplicateDependency {
                    step: step.name.clone(),
                    dependency: dep.clone(),
                });
            }
        }
    }
    match find_cycle(steps) {
        Some(path) => Err(TemplateError::Cycle { path }),
        None => Ok(()),
    }
}

/// Finds a cycle by iterative depth-first search along parent → child edges, visiting
/// steps in declaration order. The path is rotated to start at its earliest-declared
/// step and ends with that step again.
fn find_cycle(steps: &[StepTemplate]) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnStack,
        Done,
    }
    let graph = Graph::new(steps);
    let mut mark = vec![Mark::New; steps.len()];
    for start in 0..steps.len() {
        if mark[start] != Mark::New {
            continue;
        }
        // (node, index of the next child to visit)
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        mark[start] = Mark::OnStack;
        while let Some(top) = stack.last_mut() {
            let (node, next) = *top;
            if let Some(&child) = graph.children[node].get(next) {
                top.1 += 1;
                match mark[child] {
                    Mark::New => {
                        mark[child] = Mark::OnStack;
                        stack.push((child, 0));
                    }
                    Mark::OnStack => {
                        let from = stack.iter().position(|&(n, _)| n == child)?;
                        let mut cycle: Vec<usize> = stack[from..].iter().map(|&(n, _)| n).collect();
                        let first = cycle
                            .iter()
                            .enumerate()
                            .min_by_key(|&(_, &n)| n)
                            .map_or(0, |(pos, _)| pos);
                        cycle.rotate_left(first);
                        cycle.push(cycle[0]);
                        return Some(cycle.iter().map(|&n| steps[n].name.clone()).collect());
                    }
                    Mark::Done => {}
                }
            } else {
                mark[node] = Mark::Done;
                stack.pop();
            }
        }
    }
    None
}

impl Template {
    /// Each step's dependency level: roots are 0, any other step is 1 + the highest
    /// level of its parents. Ordered by level, then declaration order.
    ///
    /// Meant for a validated template; steps on a cycle (and their descendants) are left out.
    pub fn levels(&self) -> Vec<(String, usize)> {
        let graph = Graph::new(&self.steps);
        let mut waiting: Vec<usize> = self
            .steps
            .iter()
            .map(|s| {
                s.depends_on
                    .iter()
                    .filter(|d| graph.index.contains_key(d.as_str()))
                    .count()
            })
            .collect();
        let mut level = vec![0usize; self.steps.len()];
        let mut ready: Vec<usize> = (0..self.steps.len()).filter(|&i| waiting[i] == 0).collect();
        let mut done = Vec::with_capacity(self.steps.len());
        while let Some(node) = ready.pop() {
            done.push(node);
            for &child in &graph.children[node] {
                level[child] = level[child].max(level[node] + 1);
                waiting[child] -= 1;
                if waiting[child] == 0 {
                    ready.push(child);
                }
            }
        }
        done.sort_by_key(|&i| (level[i], i));
        done.into_iter()
            .map(|i| (self.steps[i].name.clone(), level[i]))
            .collect()
    }

    /// Names of the steps with no dependencies, in declaration order.
    pub fn roots(&self) -> Vec<&str> {
        self.steps
            .iter()
            .filter(|s| s.depends_on.is_empty())
            .map(|s| s.name.as_str())
            .collect()
    }

    /// Names of the steps that depend directly on `name`, in declaration order.
    pub fn children_of(&self, name: &str) -> Vec<&str> {
        self.steps
            .iter()
            .filter(|s| s.depends_on.iter().any(|d| d == name))
            .map(|s| s.name.as_str())
            .collect()
    }

    /// Names of the steps that are leaves (nothing depends on them), in declaration order.
    pub fn leaves(&self) -> Vec<&str> {
        self.steps
            .iter()
            .filter(|s| !self.steps.iter().any(|o| o.depends_on.contains(&s.name)))
            .map(|s| s.name.as_str())
            .collect()
    }

    /// The step called `name`.
    pub fn step(&self, name: &str) -> Option<&StepTemplate> {
        self.steps.iter().find(|s| s.name == name)
    }
}

#[cfg(test)]
mod tests {
    use crate::template::Template;

    /// A template whose steps are `name:dep1,dep2` specs.
    fn yaml(specs: &[&str]) -> String {
        let mut out = String::from("namespace: t\nname: g\nversion: 1.0.0\nsteps:\n");
        for spec in specs {
            let (name, deps) = spec.split_once(':').unwrap_or((spec, ""));
            let deps: Vec<&str> = deps.split(',').filter(|d| !d.is_empty()).collect();
            out.push_str(&format!(
                "  - name: {name}\n    handler: {{ name: h }}\n    depends_on: [{}]\n",
                deps.join(", ")
            ));
        }
        out
    }

    fn err(specs: &[&str]) -> String {
        Template::from_yaml_str(&yaml(specs), "<inline>")
            .expect_err("should be rejected")
            .to_string()
    }

    fn ok(specs: &[&str]) -> Template {
        Template::from_yaml_str(&yaml(specs), "<inline>").expect("should be accepted")
    }

    #[test]
    fn unknown_dependency_names_step_and_dep() {
        let msg = err(&["a", "b:a,ghost"]);
        assert_eq!(msg, "<inline>: step `b` depends on unknown step `ghost`");
    }

    #[test]
    fn duplicate_step() {
        let msg = err(&["a", "b:a", "a"]);
        assert!(msg.contains("duplicate step name `a`"), "{msg}");
    }

    #[test]
    fn duplicate_dependency() {
        let msg = err(&["a", "b:a,a"]);
        assert!(
            msg.contains("step `b` lists dependency `a` more than once"),
            "{msg}"
        );
    }

    #[test]
    fn self_dependency() {
        let msg = err(&["a", "b:b"]);
        assert!(msg.contains("step `b` depends on itself"), "{msg}");
    }

    #[test]
    fn cycle_prints_its_path() {
        // a runs after c, b after a, c after b: a -> b -> c -> a.
        let msg = err(&["a:c", "b:a", "c:b"]);
        assert!(msg.contains("dependency cycle: a -> b -> c -> a"), "{msg}");
        // The cycle is found behind an acyclic prefix and printed from its first step.
        let msg = err(&["root", "x:root,z", "y:x", "z:y", "tail:z"]);
        assert!(msg.contains("dependency cycle: x -> y -> z -> x"), "{msg}");
    }

    #[test]
    fn diamond_levels() {
        let t = ok(&["start", "left:start", "right:start", "join:left,right"]);
        let levels = t.levels();
        let expect = [("start", 0), ("left", 1), ("right", 1), ("join", 2)];
        let got: Vec<(&str, usize)> = levels.iter().map(|(n, l)| (n.as_str(), *l)).collect();
        assert_eq!(got, expect);
        assert_eq!(t.roots(), ["start"]);
        assert_eq!(t.children_of("start"), ["left", "right"]);
        assert_eq!(t.leaves(), ["join"]);
    }

    #[test]
    fn level_is_longest_path_and_order_is_stable() {
        // d depends on a root directly and on a depth-2 step: level 3.
        let t = ok(&["d:a,c", "a", "b:a", "c:b", "e"]);
        let got: Vec<(String, usize)> = t.levels();
        let names: Vec<(&str, usize)> = got.iter().map(|(n, l)| (n.as_str(), *l)).collect();
        assert_eq!(names, [("a", 0), ("e", 0), ("b", 1), ("c", 2), ("d", 3)]);
    }
}
