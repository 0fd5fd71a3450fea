//! The storage backends against the group algebra's reference model: random sequences of
//! updates, replaces and copies between groups must leave exactly the members the model says.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use roster::domain::algebra::MembershipChange;
use roster::domain::ids::GroupId;
use roster::domain::msisdn::{Msisdn, ParsedNumber};
use roster::store::{GroupDefinition, GroupUpdate};

use crate::helpers::{Backend, spawn_app};

/// A small pool of numbers, so that operations collide often.
fn number(index: u8) -> ParsedNumber {
    Msisdn::parse(&format!("+1415555{:04}", 3000 + u32::from(index)), None).expect("valid")
}

#[derive(Debug, Clone)]
enum Operation {
    Update {
        group: usize,
        add: Vec<u8>,
        remove: Vec<u8>,
        add_from: Option<usize>,
        remove_from: Option<usize>,
    },
    Replace {
        group: usize,
        members: Vec<u8>,
    },
}

fn operation() -> impl Strategy<Value = Operation> {
    let numbers = || prop::collection::vec(0u8..12, 0..6);
    prop_oneof![
        4 => (0usize..3, numbers(), numbers(), prop::option::weighted(0.2, 0usize..3), prop::option::weighted(0.2, 0usize..3))
            .prop_map(|(group, add, remove, add_from, remove_from)| Operation::Update { group, add, remove, add_from, remove_from }),
        1 => (0usize..3, numbers()).prop_map(|(group, members)| Operation::Replace { group, members }),
    ]
}

fn run(backend: Backend, cases: u32) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let Some(app) = runtime.block_on(spawn_app(backend)) else {
        return;
    };
    let plan = roster::domain::ids::PlanId::parse(&app.plan_id).expect("plan id");
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        ..ProptestConfig::default()
    });
    let result = runner.run(&prop::collection::vec(operation(), 1..12), |operations| {
        runtime.block_on(async {
            let mut ids = Vec::new();
            for _ in 0..3 {
                let group = app
                    .store
                    .create_group(
                        &plan,
                        &roster::store::Actor::cli(),
                        GroupDefinition::default(),
                    )
                    .await
                    .expect("create");
                ids.push(group.id);
            }
            let mut model: BTreeMap<GroupId, BTreeSet<ParsedNumber>> =
                ids.iter().map(|id| (id.clone(), BTreeSet::new())).collect();
            for operation in operations {
                match operation {
                    Operation::Update {
                        group,
                        add,
                        remove,
                        add_from,
                        remove_from,
                    } => {
                        // A group copied into or out of itself is refused by the API.
                        let add_from = add_from.filter(|g| *g != group);
                        let remove_from = remove_from.filter(|g| *g != group);
                        let change = MembershipChange::new(
                            add.into_iter().map(number),
                            remove.into_iter().map(number),
                            add_from.map(|g| ids[g].clone()),
                            remove_from.map(|g| ids[g].clone()),
                        );
                        let expected = change.apply(&model[&ids[group]], |g| model[g].clone());
                        let record = app
                            .store
                            .update_group(
                                &plan,
                                &roster::store::Actor::cli(),
                                &ids[group],
                                None,
                                GroupUpdate {
                                    name: None,
                                    description: None,
                                    auto_update: None,
                                    child_groups: None,
                                    rule: None,
                                    status: None,
                                    members: change,
                                },
                            )
                            .await
                            .expect("update");
                        prop_assert_eq!(record.size, expected.len() as i64);
                        model.insert(ids[group].clone(), expected);
                    }
                    Operation::Replace { group, members } => {
                        let members: BTreeSet<ParsedNumber> =
                            members.into_iter().map(number).collect();
                        let record = app
                            .store
                            .replace_group(
                                &plan,
                                &roster::store::Actor::cli(),
                                &ids[group],
                                None,
                                GroupDefinition {
                                    members: members.clone(),
                                    ..GroupDefinition::default()
                                },
                            )
                            .await
                            .expect("replace");
                        prop_assert_eq!(record.size, members.len() as i64);
                        model.insert(ids[group].clone(), members);
                    }
                }
            }
            for id in &ids {
                let stored: Vec<String> = futures::StreamExt::collect::<Vec<_>>(
                    app.store.member_numbers(plan.clone(), id.clone()),
                )
                .await
                .into_iter()
                .collect::<Result<_, _>>()
                .expect("members");
                let stored: BTreeSet<String> = stored.into_iter().collect();
                let expected: BTreeSet<String> =
                    model[id].iter().map(|n| n.msisdn.to_string()).collect();
                prop_assert_eq!(stored, expected);
            }
            Ok(())
        })
    });
    if let Err(failure) = result {
        panic!("{backend:?} store differs from the model: {failure}");
    }
}

#[test]
fn sqlite_store_matches_the_model() {
    run(Backend::Sqlite, 48);
}

#[test]
fn postgres_store_matches_the_model() {
    run(Backend::Postgres, 24);
}
