//! The group update algebra, written once for every surface and both storage backends.
//!
//! An update's effect on a group's direct members is
//! `(current ∪ add ∪ members(add_from_group)) − (remove ∪ members(remove_from_group))`:
//! duplicate adds and unknown removes are ignored, and additions happen before removals, so a
//! number in both lists ends up absent (Sinch's documented semantics). The storage backends carry
//! an update out in the order [`MembershipChange::steps`] gives, and [`MembershipChange::apply`]
//! is the reference model they are tested against.

use std::collections::BTreeSet;

use super::ids::GroupId;

/// A change to a group's direct members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipChange<T: Ord> {
    add: BTreeSet<T>,
    remove: BTreeSet<T>,
    add_from_group: Option<GroupId>,
    remove_from_group: Option<GroupId>,
}

/// One step of carrying out a [`MembershipChange`], in the order given by
/// [`MembershipChange::steps`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipStep<'a, T> {
    Insert(Vec<&'a T>),
    InsertMembersOf(&'a GroupId),
    Delete(Vec<&'a T>),
    DeleteMembersOf(&'a GroupId),
}

impl<T: Ord> MembershipChange<T> {
    pub fn new(
        add: impl IntoIterator<Item = T>,
        remove: impl IntoIterator<Item = T>,
        add_from_group: Option<GroupId>,
        remove_from_group: Option<GroupId>,
    ) -> Self {
        Self {
            add: add.into_iter().collect(),
            remove: remove.into_iter().collect(),
            add_from_group,
            remove_from_group,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.add.is_empty()
            && self.remove.is_empty()
            && self.add_from_group.is_none()
            && self.remove_from_group.is_none()
    }

    pub fn add(&self) -> &BTreeSet<T> {
        &self.add
    }

    pub fn remove(&self) -> &BTreeSet<T> {
        &self.remove
    }

    pub fn add_from_group(&self) -> Option<&GroupId> {
        self.add_from_group.as_ref()
    }

    pub fn remove_from_group(&self) -> Option<&GroupId> {
        self.remove_from_group.as_ref()
    }

    /// The update as ordered steps: every insertion before any deletion. Numbers both added and
    /// removed are left out of the insertion, since the deletion would undo it anyway.
    pub fn steps(&self) -> Vec<MembershipStep<'_, T>> {
        let mut steps = Vec::with_capacity(4);
        let inserted: Vec<&T> = self.add.difference(&self.remove).collect();
        if !inserted.is_empty() {
            steps.push(MembershipStep::Insert(inserted));
        }
        if let Some(group) = &self.add_from_group {
            steps.push(MembershipStep::InsertMembersOf(group));
        }
        if !self.remove.is_empty() {
            steps.push(MembershipStep::Delete(self.remove.iter().collect()));
        }
        if let Some(group) = &self.remove_from_group {
            steps.push(MembershipStep::DeleteMembersOf(group));
        }
        steps
    }
}

impl<T: Ord + Clone> MembershipChange<T> {
    /// The reference model: the members after the change, given the members before and the
    /// effective members of any group the change names.
    pub fn apply(
        &self,
        current: &BTreeSet<T>,
        members_of: impl Fn(&GroupId) -> BTreeSet<T>,
    ) -> BTreeSet<T> {
        let mut members = current.clone();
        for step in self.steps() {
            match step {
                MembershipStep::Insert(numbers) => members.extend(numbers.into_iter().cloned()),
                MembershipStep::InsertMembersOf(group) => members.extend(members_of(group)),
                MembershipStep::Delete(numbers) => {
                    for number in numbers {
                        members.remove(number);
                    }
                }
                MembershipStep::DeleteMembersOf(group) => {
                    for number in members_of(group) {
                        members.remove(&number);
                    }
                }
            }
        }
        members
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(items: &[u8]) -> BTreeSet<u8> {
        items.iter().copied().collect()
    }

    #[test]
    fn a_number_both_added_and_removed_ends_absent() {
        let change = MembershipChange::new([1, 2], [2], None, None);
        assert_eq!(change.apply(&set(&[]), |_| BTreeSet::new()), set(&[1]));
    }

    #[test]
    fn group_steps_follow_number_steps_of_the_same_kind() {
        let from = GroupId::generate();
        let other = GroupId::generate();
        let change = MembershipChange::new([1u8], [2u8], Some(from.clone()), Some(other.clone()));
        assert_eq!(
            change.steps(),
            vec![
                MembershipStep::Insert(vec![&1]),
                MembershipStep::InsertMembersOf(&from),
                MembershipStep::Delete(vec![&2]),
                MembershipStep::DeleteMembersOf(&other),
            ]
        );
    }

    fn arb_numbers() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(0u8..32, 0..24)
    }

    proptest! {
        /// Against a plain `BTreeSet` model: adds first, then removes.
        #[test]
        fn matches_the_set_model(
            current in arb_numbers(), add in arb_numbers(), remove in arb_numbers(),
            source in arb_numbers(), excluded in arb_numbers(),
            use_source: bool, use_excluded: bool,
        ) {
            let source_id = GroupId::generate();
            let excluded_id = GroupId::generate();
            let members_of = |g: &GroupId| {
                if *g == source_id { set(&source) } else { set(&excluded) }
            };
            let change = MembershipChange::new(
                add.clone(), remove.clone(),
                use_source.then(|| source_id.clone()),
                use_excluded.then(|| excluded_id.clone()),
            );
            let mut model = set(&current);
            model.extend(add.iter().copied());
            if use_source { model.extend(source.iter().copied()); }
            for n in &remove { model.remove(n); }
            if use_excluded { for n in &excluded { model.remove(n); } }
            prop_assert_eq!(change.apply(&set(&current), members_of), model);
        }

        /// Applying the same change twice gives the same members as applying it once.
        #[test]
        fn is_idempotent(current in arb_numbers(), add in arb_numbers(), remove in arb_numbers()) {
            let change = MembershipChange::new(add, remove, None, None);
            let once = change.apply(&set(&current), |_| BTreeSet::new());
            let twice = change.apply(&once, |_| BTreeSet::new());
            prop_assert_eq!(once, twice);
        }

        /// Whatever is removed is absent afterwards; whatever is added and not removed is present.
        #[test]
        fn removals_win_over_additions(current in arb_numbers(), add in arb_numbers(), remove in arb_numbers()) {
            let change = MembershipChange::new(add.clone(), remove.clone(), None, None);
            let after = change.apply(&set(&current), |_| BTreeSet::new());
            for n in &remove { prop_assert!(!after.contains(n)); }
            for n in add.iter().filter(|n| !remove.contains(n)) { prop_assert!(after.contains(n)); }
        }

        /// Duplicates in the input never become duplicates in the steps.
        #[test]
        fn steps_have_no_duplicates(add in arb_numbers(), remove in arb_numbers()) {
            let change = MembershipChange::new(add, remove, None, None);
            for step in change.steps() {
                if let MembershipStep::Insert(items) | MembershipStep::Delete(items) = step {
                    let unique: BTreeSet<_> = items.iter().collect();
                    prop_assert_eq!(unique.len(), items.len());
                }
            }
        }
    }
}
