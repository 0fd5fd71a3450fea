//! Contact groups: names, descriptions, status, and the child-group graph rules.

use std::collections::{BTreeMap, BTreeSet};

use super::ids::GroupId;
use super::text::{NulError, refuse_nul};

/// A group's name: trimmed, not empty, at most `max_chars` characters (20 on the Sinch surface,
/// as Sinch enforces; [`GroupName::NATIVE_MAX_CHARS`] on the native API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupNameError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters (got {got})")]
    TooLong { max: usize, got: usize },
    #[error("must not contain control characters")]
    ControlCharacters,
}

impl GroupName {
    pub const NATIVE_MAX_CHARS: usize = 200;
    pub const SINCH_MAX_CHARS: usize = 20;

    pub fn parse(input: &str, max_chars: usize) -> Result<Self, GroupNameError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(GroupNameError::Empty);
        }
        let got = trimmed.chars().count();
        if got > max_chars {
            return Err(GroupNameError::TooLong {
                max: max_chars,
                got,
            });
        }
        if trimmed.chars().any(char::is_control) {
            return Err(GroupNameError::ControlCharacters);
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Free text describing a group, at most [`Description::MAX_CHARS`] characters; line breaks
/// and other control characters are kept, U+0000 is not (see [`super::text`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DescriptionError {
    #[error("must be at most {max} characters (got {got})", max = Description::MAX_CHARS)]
    TooLong { got: usize },
    #[error(transparent)]
    Nul(#[from] NulError),
}

impl Description {
    pub const MAX_CHARS: usize = 2000;

    pub fn parse(input: &str) -> Result<Self, DescriptionError> {
        let got = input.chars().count();
        if got > Self::MAX_CHARS {
            return Err(DescriptionError::TooLong { got });
        }
        refuse_nul(input)?;
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Deleted groups are kept (soft delete) until purged; they resolve to no one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupStatus {
    Active,
    Deleted,
}

impl GroupStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupStatus::Active => "ACTIVE",
            GroupStatus::Deleted => "DELETED",
        }
    }

    pub fn parse(input: &str) -> Option<Self> {
        match input.to_ascii_uppercase().as_str() {
            "ACTIVE" => Some(GroupStatus::Active),
            "DELETED" => Some(GroupStatus::Deleted),
            _ => None,
        }
    }
}

/// How deep child groups may nest below a group. Resolution is recursive, so an unbounded chain
/// would make every send of the top group pay for it.
pub const MAX_NESTING_DEPTH: usize = 10;

/// Why a set of child groups cannot be given to a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildGroupsError {
    /// The path `group → … → group` that the new children would close.
    Cycle(Vec<GroupId>),
    /// A chain of groups below `group` longer than [`MAX_NESTING_DEPTH`].
    TooDeep(Vec<GroupId>),
}

/// Checks that making `children` the child groups of `group` keeps the graph acyclic and within
/// [`MAX_NESTING_DEPTH`]. `edges` maps every group of the plan to its current children; the entry
/// for `group` itself is ignored, since `children` replaces it.
pub fn check_child_groups(
    group: &GroupId,
    children: &BTreeSet<GroupId>,
    edges: &BTreeMap<GroupId, Vec<GroupId>>,
) -> Result<(), ChildGroupsError> {
    let children_of = |at: &GroupId| -> Vec<GroupId> {
        if at == group {
            children.iter().cloned().collect()
        } else {
            edges.get(at).cloned().unwrap_or_default()
        }
    };
    let mut visited = BTreeSet::new();
    for child in children {
        let mut path = vec![group.clone(), child.clone()];
        if find_path_back(group, &children_of, &mut visited, &mut path) {
            return Err(ChildGroupsError::Cycle(path));
        }
    }
    let mut parents: BTreeMap<GroupId, Vec<GroupId>> = BTreeMap::new();
    for (parent, kids) in edges.iter().filter(|(parent, _)| *parent != group) {
        for kid in kids {
            parents.entry(kid.clone()).or_default().push(parent.clone());
        }
    }
    let parents_of = |at: &GroupId| parents.get(at).cloned().unwrap_or_default();
    let above = longest_chain(group, &parents_of, &mut BTreeMap::new());
    let below = longest_chain(group, &children_of, &mut BTreeMap::new());
    // A chain of n groups is n - 1 levels deep; `group` is in both chains.
    if above.len() + below.len() - 2 > MAX_NESTING_DEPTH {
        let mut chain: Vec<GroupId> = above.into_iter().rev().collect();
        chain.extend(below.into_iter().skip(1));
        return Err(ChildGroupsError::TooDeep(chain));
    }
    Ok(())
}

/// Depth-first search from the last group of `path` back to `root`; on success `path` ends at
/// `root`. `visited` spares re-walking shared descendants (the graph is a DAG but not a tree).
fn find_path_back(
    root: &GroupId,
    children_of: &impl Fn(&GroupId) -> Vec<GroupId>,
    visited: &mut BTreeSet<GroupId>,
    path: &mut Vec<GroupId>,
) -> bool {
    let Some(at) = path.last().cloned() else {
        return false;
    };
    if &at == root {
        return true;
    }
    if !visited.insert(at.clone()) {
        return false;
    }
    for next in children_of(&at) {
        path.push(next);
        if find_path_back(root, children_of, visited, path) {
            return true;
        }
        path.pop();
    }
    false
}

/// The longest chain of groups starting at `at` and following `next_of`, memoised per group so
/// diamonds cost nothing.
fn longest_chain(
    at: &GroupId,
    next_of: &impl Fn(&GroupId) -> Vec<GroupId>,
    memo: &mut BTreeMap<GroupId, Option<Vec<GroupId>>>,
) -> Vec<GroupId> {
    match memo.get(at) {
        Some(Some(done)) => return done.clone(),
        // Already on the current path: only a cycle elsewhere in stored data could do this.
        Some(None) => return vec![at.clone()],
        None => {}
    }
    memo.insert(at.clone(), None);
    let mut best = Vec::new();
    for next in next_of(at) {
        let chain = longest_chain(&next, next_of, memo);
        if chain.len() > best.len() {
            best = chain;
        }
    }
    let mut chain = Vec::with_capacity(best.len() + 1);
    chain.push(at.clone());
    chain.extend(best);
    memo.insert(at.clone(), Some(chain.clone()));
    chain
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ids(n: usize) -> Vec<GroupId> {
        (0..n).map(|_| GroupId::generate()).collect()
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(
            GroupName::parse("  Friends ", 20).map(|n| n.0),
            Ok("Friends".into())
        );
        assert_eq!(GroupName::parse(" ", 20), Err(GroupNameError::Empty));
        assert!(GroupName::parse(&"x".repeat(20), 20).is_ok());
        assert_eq!(
            GroupName::parse(&"x".repeat(21), 20),
            Err(GroupNameError::TooLong { max: 20, got: 21 })
        );
        // Characters, not bytes, are counted.
        assert!(GroupName::parse(&"é".repeat(20), 20).is_ok());
        assert_eq!(
            GroupName::parse("a\0b", 20),
            Err(GroupNameError::ControlCharacters)
        );
    }

    #[test]
    fn descriptions_keep_line_breaks_but_not_nul() {
        assert!(Description::parse("two\nlines\ttabbed").is_ok());
        assert_eq!(
            Description::parse("a\0b"),
            Err(DescriptionError::Nul(NulError))
        );
        assert_eq!(
            Description::parse(&"x".repeat(Description::MAX_CHARS + 1)),
            Err(DescriptionError::TooLong {
                got: Description::MAX_CHARS + 1
            })
        );
    }

    #[test]
    fn a_group_cannot_be_its_own_child() {
        let g = ids(1);
        let children = BTreeSet::from([g[0].clone()]);
        assert_eq!(
            check_child_groups(&g[0], &children, &BTreeMap::new()),
            Err(ChildGroupsError::Cycle(vec![g[0].clone(), g[0].clone()]))
        );
    }

    #[test]
    fn a_longer_cycle_is_named_in_order() {
        let g = ids(3);
        // g1 → g2 → g0 exists; making g1 a child of g0 closes g0 → g1 → g2 → g0.
        let edges = BTreeMap::from([
            (g[1].clone(), vec![g[2].clone()]),
            (g[2].clone(), vec![g[0].clone()]),
        ]);
        let children = BTreeSet::from([g[1].clone()]);
        assert_eq!(
            check_child_groups(&g[0], &children, &edges),
            Err(ChildGroupsError::Cycle(vec![
                g[0].clone(),
                g[1].clone(),
                g[2].clone(),
                g[0].clone()
            ]))
        );
    }

    #[test]
    fn nesting_depth_is_bounded() {
        let g = ids(MAX_NESTING_DEPTH + 2);
        let mut edges = BTreeMap::new();
        for pair in g[1..].windows(2) {
            edges.insert(pair[0].clone(), vec![pair[1].clone()]);
        }
        let children = BTreeSet::from([g[1].clone()]);
        // g0 → g1 → … → g11 is 11 levels deep.
        assert!(matches!(
            check_child_groups(&g[0], &children, &edges),
            Err(ChildGroupsError::TooDeep(_))
        ));
        // Without the last link it is exactly at the limit.
        edges.remove(&g[MAX_NESTING_DEPTH]);
        assert_eq!(check_child_groups(&g[0], &children, &edges), Ok(()));
        // A parent above g0 counts too.
        let parent = GroupId::generate();
        edges.insert(parent, vec![g[0].clone()]);
        assert!(check_child_groups(&g[0], &children, &edges).is_err());
    }

    proptest! {
        /// Accepting every set of children that `check_child_groups` allows never creates a
        /// cycle, and every rejection as a cycle names a real path back to the group.
        #[test]
        fn accepted_graphs_stay_acyclic(
            steps in prop::collection::vec((0usize..8, prop::collection::btree_set(0usize..8, 0..4)), 1..40)
        ) {
            let g = ids(8);
            let mut edges: BTreeMap<GroupId, Vec<GroupId>> = BTreeMap::new();
            for (parent, kids) in steps {
                let children: BTreeSet<GroupId> = kids.iter().map(|k| g[*k].clone()).collect();
                match check_child_groups(&g[parent], &children, &edges) {
                    Ok(()) => {
                        edges.insert(g[parent].clone(), children.into_iter().collect());
                        prop_assert!(!has_cycle(&edges));
                    }
                    Err(ChildGroupsError::Cycle(path)) => {
                        prop_assert_eq!(path.first(), Some(&g[parent]));
                        prop_assert_eq!(path.last(), Some(&g[parent]));
                        prop_assert!(children.contains(&path[1]));
                        for pair in path[1..].windows(2) {
                            prop_assert!(edges.get(&pair[0]).is_some_and(|c| c.contains(&pair[1])));
                        }
                    }
                    Err(ChildGroupsError::TooDeep(_)) => {}
                }
            }
        }
    }

    fn has_cycle(edges: &BTreeMap<GroupId, Vec<GroupId>>) -> bool {
        fn visit(
            at: &GroupId,
            edges: &BTreeMap<GroupId, Vec<GroupId>>,
            on_path: &mut BTreeSet<GroupId>,
        ) -> bool {
            if !on_path.insert(at.clone()) {
                return true;
            }
            let found = edges
                .get(at)
                .into_iter()
                .flatten()
                .any(|next| visit(next, edges, on_path));
            on_path.remove(at);
            found
        }
        edges
            .keys()
            .any(|start| visit(start, edges, &mut BTreeSet::new()))
    }
}
