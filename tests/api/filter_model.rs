//! The filter language in SQL against its in-memory meaning: for random contacts and random
//! expressions, the contacts a smart group (and a `q` search) selects are exactly those
//! `FilterExpr::matches` accepts.

use std::collections::BTreeSet;

use proptest::prelude::*;
use roster::domain::contact::{CustomFields, Gender, PersonName, TimeZoneName};
use roster::domain::filter::{ContactAttributes, FilterExpr};
use roster::domain::ids::PlanId;
use roster::domain::msisdn::Msisdn;
use roster::store::{
    ContactDefinition, ContactOrder, ContactQuery, ContactRecord, GroupDefinition, Window,
};
use serde_json::json;

use crate::helpers::{Backend, spawn_app};

const TEXTS: &[&str] = &[
    "", "a", "A", "ab", "b", "DE", "US", "gold", "Ω", "mobile", "UTC",
];

fn text() -> impl Strategy<Value = String> {
    prop::sample::select(TEXTS).prop_map(|t| format!("{t:?}"))
}

fn number() -> impl Strategy<Value = String> {
    prop::sample::select(&[-1.0f64, 0.0, 1.0, 2.5, 30.0][..]).prop_map(|n| n.to_string())
}

fn field_and_value() -> impl Strategy<Value = (String, String)> {
    prop_oneof![
        (
            prop::sample::select(
                &[
                    "first_name",
                    "last_name",
                    "gender",
                    "time_zone",
                    "country",
                    "number_type",
                    "phone"
                ][..]
            ),
            text()
        )
            .prop_map(|(f, v)| (f.to_owned(), v)),
        (
            prop::sample::select(&["fields.s", "fields.n", "fields.b"][..]),
            prop_oneof![
                text(),
                number(),
                prop::sample::select(&["true", "false"][..]).prop_map(str::to_owned)
            ]
        )
            .prop_map(|(f, v)| (f.to_owned(), v)),
    ]
}

fn condition() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            field_and_value(),
            prop::sample::select(&["=", "!=", "<", "<=", ">", ">="][..])
        )
            .prop_map(|((f, v), op)| format!("{f} {op} {v}")),
        (field_and_value(), prop::collection::vec(text(), 1..3))
            .prop_map(|((f, _), vs)| format!("{f} in ({})", vs.join(", "))),
        field_and_value().prop_map(|(f, _)| format!("{f} is null")),
        Just("opted_out".to_owned()),
        Just("opted_out = false".to_owned()),
    ]
}

fn expression() -> impl Strategy<Value = String> {
    condition().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) and ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) or ({b})")),
            inner.prop_map(|a| format!("not ({a})")),
        ]
    })
}

fn maybe_text() -> impl Strategy<Value = Option<String>> {
    prop::option::of(
        prop::sample::select(&["a", "A", "ab", "b", "DE", "gold", "Ω"][..]).prop_map(str::to_owned),
    )
}

fn custom_value() -> impl Strategy<Value = Option<serde_json::Value>> {
    prop::option::of(prop_oneof![
        prop::sample::select(TEXTS).prop_map(|t| json!(t)),
        prop::sample::select(&[-1.0f64, 0.0, 1.0, 2.5, 30.0, 7.0][..]).prop_map(|n| json!(n)),
        any::<bool>().prop_map(|b| json!(b)),
    ])
}

fn maybe_zone() -> impl Strategy<Value = Option<String>> {
    prop::option::of(
        prop::sample::select(&["UTC", "Europe/Paris", "America/New_York"][..])
            .prop_map(str::to_owned),
    )
}

#[derive(Debug, Clone)]
struct SeedContact {
    phone: &'static str,
    first_name: Option<String>,
    last_name: Option<String>,
    gender: Option<String>,
    time_zone: Option<String>,
    opted_out: bool,
    fields: Vec<(&'static str, Option<serde_json::Value>)>,
}

const PHONES: &[&str] = &[
    "+4915112345601",
    "+4930123456",
    "+14155550901",
    "+447400123456",
    "+250788382382",
    "+4915112345602",
    "+14155550902",
    "+33612345678",
    "+4915112345603",
    "+14155550903",
];

fn seed_contacts() -> impl Strategy<Value = Vec<SeedContact>> {
    let one = (
        maybe_text(),
        maybe_text(),
        maybe_text(),
        maybe_zone(),
        any::<bool>(),
        custom_value(),
        custom_value(),
        custom_value(),
    );
    prop::collection::vec(one, PHONES.len()).prop_map(|rows| {
        rows.into_iter()
            .zip(PHONES)
            .map(
                |((first_name, last_name, gender, time_zone, opted_out, s, n, b), phone)| {
                    SeedContact {
                        phone,
                        first_name,
                        last_name,
                        gender,
                        time_zone,
                        opted_out,
                        fields: vec![("s", s), ("n", n), ("b", b)],
                    }
                },
            )
            .collect()
    })
}

fn matches(filter: &FilterExpr, contact: &ContactRecord) -> bool {
    filter.matches(&ContactAttributes {
        phone: &contact.phone,
        first_name: contact.first_name.as_deref(),
        last_name: contact.last_name.as_deref(),
        email: contact.email.as_deref(),
        gender: contact.gender.as_deref(),
        time_zone: contact.time_zone.as_deref(),
        country: contact.country.as_deref(),
        number_type: contact.number_type.as_deref(),
        opted_out: contact.opted_out,
        fields: contact.fields.as_map(),
    })
}

fn run(backend: Backend, cases: u32) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let Some(app) = runtime.block_on(spawn_app(backend)) else {
        return;
    };
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        ..ProptestConfig::default()
    });
    let result = runner.run(
        &(seed_contacts(), prop::collection::vec(expression(), 4)),
        |(seed, expressions)| {
            runtime.block_on(async {
                // Each case gets a plan of its own, so that contacts never collide.
                let (plan_id, _) = app.create_plan(None).await;
                let plan = PlanId::parse(&plan_id).unwrap();
                let mut contacts = Vec::new();
                for person in &seed {
                    let fields: serde_json::Map<String, serde_json::Value> = person
                        .fields
                        .iter()
                        .filter_map(|(name, value)| value.clone().map(|v| ((*name).to_owned(), v)))
                        .collect();
                    let record = app
                        .store
                        .create_contact(
                            &plan,
                            &roster::store::Actor::cli(),
                            ContactDefinition {
                                phone: Msisdn::parse(person.phone, None).unwrap(),
                                first_name: person
                                    .first_name
                                    .as_deref()
                                    .map(|n| PersonName::parse(n).unwrap()),
                                last_name: person
                                    .last_name
                                    .as_deref()
                                    .map(|n| PersonName::parse(n).unwrap()),
                                email: None,
                                gender: person.gender.as_deref().map(|g| Gender::parse(g).unwrap()),
                                time_zone: person
                                    .time_zone
                                    .as_deref()
                                    .map(|z| TimeZoneName::parse(z).unwrap()),
                                fields: CustomFields::parse(&serde_json::Value::Object(fields))
                                    .unwrap(),
                                opted_out: person.opted_out,
                                opted_out_reason: None,
                            },
                        )
                        .await
                        .expect("create contact");
                    contacts.push(record);
                }
                for source in expressions {
                    let filter =
                        FilterExpr::parse(&source).unwrap_or_else(|e| panic!("{source}: {e}"));
                    let expected: BTreeSet<String> = contacts
                        .iter()
                        .filter(|c| matches(&filter, c))
                        .map(|c| c.phone.clone())
                        .collect();
                    let group = app
                        .store
                        .create_group(
                            &plan,
                            &roster::store::Actor::cli(),
                            GroupDefinition {
                                rule: Some(filter.clone()),
                                ..GroupDefinition::default()
                            },
                        )
                        .await
                        .expect("create smart group");
                    prop_assert_eq!(group.size, expected.len() as i64, "size of {}", source);
                    let members: BTreeSet<String> = futures::StreamExt::collect::<Vec<_>>(
                        app.store.member_numbers(plan.clone(), group.id.clone()),
                    )
                    .await
                    .into_iter()
                    .collect::<Result<_, _>>()
                    .expect("members");
                    prop_assert_eq!(&members, &expected, "members of {}", source);
                    let searched = app
                        .store
                        .list_contacts(
                            &plan,
                            &ContactQuery {
                                ids: None,
                                name_prefix: None,
                                name_contains: None,
                                phone_prefix: None,
                                email: None,
                                gender: None,
                                valid: None,
                                number_type: None,
                                sms_capable: None,
                                group: None,
                                opted_out: None,
                                custom: Vec::new(),
                                filter: Some(filter),
                                order: ContactOrder::CreatedAt,
                                descending: false,
                                window: Window::Offset {
                                    offset: 0,
                                    limit: 100,
                                },
                                with_total: false,
                            },
                        )
                        .await
                        .expect("search");
                    let found: BTreeSet<String> =
                        searched.contacts.into_iter().map(|c| c.phone).collect();
                    prop_assert_eq!(&found, &expected, "search by {}", source);
                }
                Ok(())
            })
        },
    );
    if let Err(failure) = result {
        panic!("{backend:?}: SQL and the in-memory filter disagree: {failure}");
    }
}

#[test]
fn sqlite_filters_match_the_in_memory_meaning() {
    run(Backend::Sqlite, 40);
}

#[test]
fn postgres_filters_match_the_in_memory_meaning() {
    run(Backend::Postgres, 40);
}
