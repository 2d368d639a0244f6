//! Plugin dependency resolution: a load order in which every plugin comes
//! after the plugins it depends on, or an error naming exactly what is wrong
//! (a missing dependency, a version that does not satisfy the requirement,
//! a cycle with its members).

use std::collections::{BTreeMap, BTreeSet};

use semver::{Version, VersionReq};

/// What the resolver needs to know about one plugin.
#[derive(Clone, Debug)]
pub struct Node {
    /// Plugin id.
    pub id: String,
    /// Its version.
    pub version: Version,
    /// `(dependency id, version requirement)`.
    pub requires: Vec<(String, VersionReq)>,
}

/// Why some plugins cannot be ordered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DependencyError {
    /// `plugin` needs `dependency`, which is not installed.
    #[error("plugin {plugin} requires {dependency} {requirement}, which is not installed")]
    Missing {
        /// The dependent.
        plugin: String,
        /// The absent dependency.
        dependency: String,
        /// The requirement.
        requirement: String,
    },
    /// The installed version does not satisfy the requirement.
    #[error("plugin {plugin} requires {dependency} {requirement}, but {dependency} {found} is installed")]
    Version {
        /// The dependent.
        plugin: String,
        /// The dependency.
        dependency: String,
        /// The requirement.
        requirement: String,
        /// The installed version.
        found: String,
    },
    /// The plugins depend on each other in a loop.
    #[error("dependency cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
}

/// Checks every requirement, then orders the plugins dependencies-first
/// (ties broken by id, so the order is stable from run to run).
pub fn load_order(nodes: &[Node]) -> Result<Vec<String>, DependencyError> {
    let by_id: BTreeMap<&str, &Node> = nodes.iter().map(|node| (node.id.as_str(), node)).collect();
    for node in nodes {
        for (dependency, requirement) in &node.requires {
            match by_id.get(dependency.as_str()) {
                None => {
                    return Err(DependencyError::Missing {
                        plugin: node.id.clone(),
                        dependency: dependency.clone(),
                        requirement: requirement.to_string(),
                    })
                }
                Some(found) if !requirement.matches(&found.version) => {
                    return Err(DependencyError::Version {
                        plugin: node.id.clone(),
                        dependency: dependency.clone(),
                        requirement: requirement.to_string(),
                        found: found.version.to_string(),
                    })
                }
                Some(_) => {}
            }
        }
    }
    // Depth-first post-order; the path on the stack names a cycle exactly.
    let mut order = Vec::with_capacity(nodes.len());
    let mut done = BTreeSet::new();
    for id in by_id.keys() {
        let mut path = Vec::new();
        visit(id, &by_id, &mut done, &mut path, &mut order)?;
    }
    Ok(order)
}

fn visit<'a>(
    id: &'a str,
    by_id: &BTreeMap<&'a str, &'a Node>,
    done: &mut BTreeSet<&'a str>,
    path: &mut Vec<&'a str>,
    order: &mut Vec<String>,
) -> Result<(), DependencyError> {
    if done.contains(id) {
        return Ok(());
    }
    if let Some(start) = path.iter().position(|on_path| *on_path == id) {
        let mut cycle: Vec<String> = path[start..].iter().map(|id| id.to_string()).collect();
        cycle.push(id.to_string());
        return Err(DependencyError::Cycle(cycle));
    }
    path.push(id);
    let mut requires: Vec<&str> = by_id[id]
        .requires
        .iter()
        .map(|(dep, _)| dep.as_str())
        .collect();
    requires.sort_unstable();
    for dependency in requires {
        visit(dependency, by_id, done, path, order)?;
    }
    path.pop();
    done.insert(id);
    order.push(id.to_string());
    Ok(())
}

/// The plugins that depend on `id`, directly or not, among `nodes`.
pub fn dependents_of(id: &str, nodes: &[Node]) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut frontier = vec![id.to_string()];
    while let Some(current) = frontier.pop() {
        for node in nodes {
            if node.requires.iter().any(|(dep, _)| *dep == current) && found.insert(node.id.clone())
            {
                frontier.push(node.id.clone());
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, version: &str, requires: &[(&str, &str)]) -> Node {
        Node {
            id: id.into(),
            version: Version::parse(version).expect("version"),
            requires: requires
                .iter()
                .map(|(dep, req)| (dep.to_string(), VersionReq::parse(req).expect("req")))
                .collect(),
        }
    }

    #[test]
    fn dependencies_come_first() {
        let nodes = [
            node("crm", "1.0.0", &[("core_erp", "^1.2")]),
            node("leads", "0.3.0", &[("crm", "1"), ("core_erp", ">=1")]),
            node("core_erp", "1.4.0", &[]),
            node("hello", "0.1.0", &[]),
        ];
        assert_eq!(
            load_order(&nodes),
            Ok(vec![
                "core_erp".into(),
                "crm".into(),
                "hello".into(),
                "leads".into()
            ])
        );
        assert_eq!(
            dependents_of("core_erp", &nodes),
            ["crm".to_string(), "leads".to_string()]
                .into_iter()
                .collect()
        );
    }

    #[test]
    fn missing_and_mismatched_dependencies_are_named() {
        let missing = [node("crm", "1.0.0", &[("core_erp", "^1")])];
        assert_eq!(
            load_order(&missing).expect_err("missing").to_string(),
            "plugin crm requires core_erp ^1, which is not installed"
        );
        let old = [
            node("crm", "1.0.0", &[("core_erp", "^2")]),
            node("core_erp", "1.4.0", &[]),
        ];
        assert_eq!(
            load_order(&old).expect_err("version").to_string(),
            "plugin crm requires core_erp ^2, but core_erp 1.4.0 is installed"
        );
    }

    #[test]
    fn cycles_are_named_with_their_members() {
        let nodes = [
            node("a", "1.0.0", &[("b", "*")]),
            node("b", "1.0.0", &[("c", "*")]),
            node("c", "1.0.0", &[("a", "*")]),
            node("d", "1.0.0", &[]),
        ];
        assert_eq!(
            load_order(&nodes).expect_err("cycle").to_string(),
            "dependency cycle: a -> b -> c -> a"
        );
        let own = [node("selfish", "1.0.0", &[("selfish", "*")])];
        assert_eq!(
            load_order(&own),
            Err(DependencyError::Cycle(vec![
                "selfish".into(),
                "selfish".into()
            ]))
        );
    }
}
