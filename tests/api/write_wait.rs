//! Writes that arrive while an import writes. On SQLite the import holds the single writer for
//! its whole transaction: a write that cannot start within the write wait is answered 503 with
//! `Retry-After` and says an import is running (before, it was a 500 after 30 s). On PostgreSQL
//! it goes through.

use std::time::{Duration, Instant};

use reqwest::Method;
use roster::domain::ids::PlanId;
use roster::domain::msisdn::Msisdn;
use roster::store::{
    ExistingContacts, ImportMessage, ImportReport, ImportRow, ImportWrite, StoreOptions,
};
use serde_json::json;

use crate::helpers::{Backend, TestApp, spawn_app_with_options};

async fn app(backend: Backend) -> Option<TestApp> {
    let options = StoreOptions {
        write_wait: Duration::from_secs(1),
    };
    spawn_app_with_options(backend, 0, options).await
}

fn row(n: u64) -> ImportRow {
    ImportRow {
        row: n + 1,
        phone: Msisdn::parse(&format!("+1415555{n:04}"), None).expect("a number"),
        first_name: None,
        last_name: None,
        email: None,
        gender: None,
        time_zone: None,
        fields: Default::default(),
        opted_out: None,
        groups: Vec::new(),
    }
}

async fn writes_wait_for_an_import(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let (rows, received) = tokio::sync::mpsc::channel(4);
    let store = app.store.clone();
    let plan = PlanId::parse(&app.plan_id).expect("plan id");
    let import = tokio::spawn(async move {
        let write = ImportWrite {
            mode: ExistingContacts::Update,
            groups: Vec::new(),
            group_names: Vec::new(),
            job: None,
            by: roster::store::Actor::cli(),
            confirm: false,
        };
        store
            .write_import(&plan, write, received, &mut |_| {})
            .await
    });
    // The import takes the writer with its first rows, and holds it until it finishes.
    rows.send(ImportMessage::Rows((0..10).map(row).collect()))
        .await
        .expect("the import reads");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut answer;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let started = Instant::now();
        answer = app
            .send_json(
                Method::POST,
                "/api/contactgroups",
                &json!({"name": format!("During the import {attempt}")}),
            )
            .await;
        // Until the import has taken the writer, a write may still slip in before it.
        if answer.status() != 201 || backend == Backend::Postgres || Instant::now() > deadline {
            eprintln!("answered {} after {:?}", answer.status(), started.elapsed());
            break;
        }
    }
    match backend {
        Backend::Sqlite => {
            assert_eq!(answer.status(), 503);
            assert_eq!(answer.headers()["retry-after"], "1");
            assert_eq!(answer.headers()["content-type"], "application/problem+json");
            let problem: serde_json::Value = answer.json().await.unwrap();
            let detail = problem["detail"].as_str().unwrap();
            assert!(detail.contains("an import is running"), "{detail}");
            assert!(detail.contains("nothing was written"), "{detail}");
        }
        Backend::Postgres => assert_eq!(answer.status(), 201),
    }
    let report = ImportReport {
        rows: 10,
        ..ImportReport::default()
    };
    rows.send(ImportMessage::Finish(report))
        .await
        .expect("the import finishes");
    let written = import.await.expect("the import task").expect("the import");
    assert_eq!(written.created, 10);
    // The writer is free again.
    let after = app
        .send_json(
            Method::POST,
            "/api/contactgroups",
            &json!({"name": "After"}),
        )
        .await;
    assert_eq!(after.status(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_wait_for_an_import_sqlite() {
    writes_wait_for_an_import(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_wait_for_an_import_postgres() {
    writes_wait_for_an_import(Backend::Postgres).await;
}
