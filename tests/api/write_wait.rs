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

/// More imports than PostgreSQL's pool has connections, queued behind one that runs: they wait
/// past the write wait for their turn, hold no connection meanwhile (the API's writes go on),
/// and all finish once the first has. Before, on SQLite each failed as busy after the write
/// wait; on PostgreSQL each held a connection while it waited for the plan's lock, and with 16
/// of them queued the pool was gone.
async fn imports_queue_behind_a_running_import(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let (first_rows, running) = start_import(&app, 0);
    first_rows
        .send(ImportMessage::Rows((0..10).map(row).collect()))
        .await
        .expect("the import reads");
    until_an_import_has_its_turn(&app, backend).await;
    let mut queued = Vec::new();
    for n in 1..=20u64 {
        let (rows, import) = start_import(&app, n);
        read_whole(&rows, n * 10).await;
        queued.push(import);
    }
    // Past the write wait (1 s) twice over.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let done = queued.iter().filter(|import| import.is_finished()).count();
    assert_eq!(done, 0, "imports ended while the first still ran");
    let during = app
        .send_json(
            Method::POST,
            "/api/contactgroups",
            &json!({"name": "While imports queue"}),
        )
        .await;
    let expected = match backend {
        // The running import holds SQLite's writer.
        Backend::Sqlite => 503,
        Backend::Postgres => 201,
    };
    assert_eq!(during.status(), expected);
    first_rows
        .send(ImportMessage::Finish(ImportReport {
            rows: 10,
            ..ImportReport::default()
        }))
        .await
        .expect("the first import finishes");
    let first = running
        .await
        .expect("the import task")
        .expect("the first import");
    assert_eq!(first.created, 10);
    for (n, import) in queued.into_iter().enumerate() {
        let written = import
            .await
            .expect("the import task")
            .unwrap_or_else(|error| panic!("queued import {n}: {error}"));
        assert_eq!(written.created, 10, "queued import {n}");
    }
    let listed: serde_json::Value = app
        .get("/api/contacts?count=true&limit=1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["count"], 210, "{listed}");
}

type ImportTask = tokio::task::JoinHandle<Result<ImportReport, roster::store::StoreError>>;

/// An import written straight to the store, fed through the sender returned.
fn start_import(app: &TestApp, n: u64) -> (tokio::sync::mpsc::Sender<ImportMessage>, ImportTask) {
    let (rows, received) = tokio::sync::mpsc::channel(4);
    let store = app.store.clone();
    let plan = PlanId::parse(&app.plan_id).expect("plan id");
    let import = tokio::spawn(async move {
        let write = ImportWrite {
            mode: ExistingContacts::Update,
            groups: Vec::new(),
            group_names: vec![
                roster::domain::group::GroupName::parse(&format!("Import {n}"), 100)
                    .expect("a group name"),
            ],
            job: None,
            by: roster::store::Actor::cli(),
            confirm: false,
        };
        store
            .write_import(&plan, write, received, &mut |_| {})
            .await
    });
    (rows, import)
}

/// Feeds an import of `start_import` its whole file: ten rows from the number `first` on.
async fn read_whole(rows: &tokio::sync::mpsc::Sender<ImportMessage>, first: u64) {
    rows.send(ImportMessage::Rows((first..first + 10).map(row).collect()))
        .await
        .expect("the import reads");
    rows.send(ImportMessage::Finish(ImportReport {
        rows: 10,
        ..ImportReport::default()
    }))
    .await
    .expect("the import finishes reading");
}

/// Returns once an import has taken its turn: on SQLite, once it holds the writer (a write
/// then waits in vain); on PostgreSQL, once the plan's import lock is granted.
async fn until_an_import_has_its_turn(app: &TestApp, backend: Backend) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let turn = match backend {
            Backend::Sqlite => {
                let answer = app
                    .send_json(
                        Method::POST,
                        "/api/contactgroups",
                        &json!({"name": "Probe", "description": format!("{:?}", Instant::now())}),
                    )
                    .await;
                answer.status() == 503
            }
            Backend::Postgres => {
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&app.database_url)
                    .await
                    .expect("a connection");
                // The two-integer form's first integer is `classid`: "Rost".
                let granted: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
                     AND classid = 1383035764 AND objsubid = 2 AND granted",
                )
                .fetch_one(&mut conn)
                .await
                .expect("pg_locks");
                granted == 1
            }
        };
        if turn {
            return;
        }
        assert!(Instant::now() < deadline, "the import never took its turn");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_queue_behind_a_running_import_sqlite() {
    imports_queue_behind_a_running_import(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_queue_behind_a_running_import_postgres() {
    imports_queue_behind_a_running_import(Backend::Postgres).await;
}

/// On SQLite an import waits for the file's write lock held by another process (`roster import`
/// beside a server that is importing, or the reverse) as it waits for an import of its own
/// process: past the write wait, up to the import queue's. Before, it failed as busy after the
/// write wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_waits_for_another_process_holding_sqlite() {
    let Some(app) = app(Backend::Sqlite).await else {
        return;
    };
    // The other process: a connection of its own, holding the file's write lock.
    let mut other = <sqlx::SqliteConnection as sqlx::Connection>::connect(&app.database_url)
        .await
        .expect("a connection");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .expect("the write lock");
    let (rows, import) = start_import(&app, 0);
    read_whole(&rows, 0).await;
    // Past the write wait (1 s) twice over.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        !import.is_finished(),
        "the import ended while another process held the file"
    );
    sqlx::query("COMMIT")
        .execute(&mut other)
        .await
        .expect("the other process's write ends");
    let written = import.await.expect("the import task").expect("the import");
    assert_eq!(written.created, 10);
}
