//! Sending with real `roster serve` processes: two instances on one database send 500 due
//! batches exactly once between them; an instance killed with SIGKILL mid-batch is resumed by a
//! restart that resends nothing and loses nothing; and one killed while a batch waits for quiet
//! hours leaves it to a restart that hands the held messages over once, when the window ends.
//! All read the log sender's files.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use roster::domain::batch::{Audience, BatchStatus};
use roster::domain::ids::PlanId;
use roster::domain::msisdn::Msisdn;
use roster::domain::quiet::QuietHours;
use roster::domain::sending::{QuietHoursSetting, SendingSettings};
use roster::domain::time::Timestamp;
use roster::store::{self, BatchQuery, GroupDefinition, NewBatch, Store};

use roster::send::log::LogLine;

use crate::batches::logged;
use crate::helpers::{Backend, database_url};

const ROSTER: &str = env!("CARGO_BIN_EXE_roster");

fn serve(database: &str, log: &Path, extra: &[&str]) -> Child {
    Command::new(ROSTER)
        .args(["serve", "--listen", "127.0.0.1:0", "--sender", "log"])
        .arg("--sender-log")
        .arg(log)
        .args(["--poll-ms", "20"])
        .args(extra)
        .env("ROSTER_DATABASE_URL", database)
        .env("RUST_LOG", "roster=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start roster serve")
}

fn terminate(mut child: Child) {
    // SAFETY: kill(2) with the id of a child we spawned and have not reaped.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let status = child.wait().expect("wait for roster serve");
    assert!(status.success(), "roster serve exited with {status}");
}

/// A plan with a group of `size` numbers: `(store, plan, group id)`.
async fn plan_with_group(
    database: &str,
    size: u32,
) -> (Arc<dyn Store>, PlanId, roster::domain::ids::GroupId) {
    let store = store::connect(database).await.expect("connect");
    let plan = store
        .create_plan("Sending", None, &roster::store::Actor::cli())
        .await
        .unwrap();
    let members = (0..size)
        .map(|n| Msisdn::parse(&format!("+1415{:07}", 2_000_000 + n), None).unwrap())
        .collect();
    let group = store
        .create_group(
            &plan.id,
            &roster::store::Actor::cli(),
            GroupDefinition {
                members,
                ..GroupDefinition::default()
            },
        )
        .await
        .unwrap();
    (store, plan.id, group.id)
}

fn batch_to(group: &roster::domain::ids::GroupId, extra: &str) -> NewBatch {
    let mut to = Audience::default();
    to.groups.insert(group.clone());
    to.numbers.insert(extra.to_owned());
    NewBatch {
        to,
        exclude: Audience::default(),
        from: Some("12345".into()),
        body: "exactly once".into(),
        client_reference: None,
        send_at: Timestamp::now(),
        expire_at: None,
        parameters: Default::default(),
        encoding: Default::default(),
        purpose: Default::default(),
    }
}

async fn count_with_status(store: &Arc<dyn Store>, plan: &PlanId, status: BatchStatus) -> i64 {
    let query = BatchQuery {
        status: Some(status),
        limit: 1,
        ..BatchQuery::default()
    };
    store.list_batches(plan, &query).await.unwrap().1
}

async fn two_instances_send_500_due_batches_once(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some(database) = database_url(backend, &dir).await else {
        return;
    };
    let (store, plan, group) = plan_with_group(&database, 3).await;
    for _ in 0..500 {
        store
            .create_batch(
                &plan,
                &roster::store::Actor::cli(),
                batch_to(&group, "+14155550199"),
            )
            .await
            .unwrap();
    }
    let logs = [dir.path().join("a.jsonl"), dir.path().join("b.jsonl")];
    let instances: Vec<Child> = logs
        .iter()
        .map(|log| {
            serve(
                &database,
                log,
                &["--send-workers", "4", "--chunk-size", "2"],
            )
        })
        .collect();
    let started = Instant::now();
    while count_with_status(&store, &plan, BatchStatus::Sent).await < 500 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "batches still unsent after 2 minutes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for instance in instances {
        terminate(instance);
    }
    let per_instance: Vec<_> = logs.iter().map(|log| logged(log)).collect();
    eprintln!(
        "lines per instance: {:?}",
        per_instance.iter().map(|l| l.len()).collect::<Vec<_>>()
    );
    let mut all = std::collections::BTreeMap::new();
    for lines in per_instance {
        for (key, times) in lines {
            *all.entry(key).or_insert(0) += times;
        }
    }
    assert_eq!(all.len(), 500 * 4, "every recipient of every batch");
    let twice: Vec<_> = all.iter().filter(|(_, times)| **times != 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
}

async fn sigkill_mid_batch_then_restart_resends_nothing(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some(database) = database_url(backend, &dir).await else {
        return;
    };
    let (store, plan, group) = plan_with_group(&database, 5000).await;
    let batch = store
        .create_batch(
            &plan,
            &roster::store::Actor::cli(),
            batch_to(&group, "+14155550199"),
        )
        .await
        .unwrap();
    let log = dir.path().join("messages.jsonl");
    let mut first = serve(
        &database,
        &log,
        &["--chunk-size", "10", "--lease-seconds", "2"],
    );
    let started = Instant::now();
    loop {
        let now = store.get_batch(&plan, &batch.id).await.unwrap();
        if now.sent_count >= 500 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{now:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.kill().expect("SIGKILL");
    first.wait().unwrap();
    let killed = store.get_batch(&plan, &batch.id).await.unwrap();
    assert_eq!(
        killed.status,
        BatchStatus::Sending,
        "killed mid-batch: {killed:?}"
    );
    let before = logged(&log);
    eprintln!(
        "killed after {} recorded / {} logged of 5001",
        killed.sent_count,
        before.len()
    );

    let second = serve(&database, &log, &["--chunk-size", "10"]);
    let started = Instant::now();
    loop {
        let now = store.get_batch(&plan, &batch.id).await.unwrap();
        if now.status == BatchStatus::Sent {
            assert_eq!(now.sent_count, 5001);
            assert_eq!(now.recipient_count, Some(5001));
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{now:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    terminate(second);
    let after = logged(&log);
    let expected: BTreeSet<String> = (0..5000)
        .map(|n| format!("+1415{:07}", 2_000_000 + n))
        .chain(["+14155550199".to_owned()])
        .collect();
    let got: BTreeSet<String> = after.keys().map(|(_, to)| to.clone()).collect();
    assert_eq!(got, expected, "nobody lost");
    let twice: Vec<_> = after.iter().filter(|(_, times)| **times != 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
}

async fn sigkill_while_held_for_quiet_hours_then_restart(backend: Backend) {
    use chrono::Timelike;
    let dir = tempfile::tempdir().unwrap();
    let Some(database) = database_url(backend, &dir).await else {
        return;
    };
    // The group's +1415 numbers are in Los Angeles; quiet there from a minute ago until a few
    // seconds from now. The extra New York number is not held.
    let (store, plan, group) = plan_with_group(&database, 300).await;
    let zone: chrono_tz::Tz = "America/Los_Angeles".parse().unwrap();
    let local = |offset: i64| {
        let at = (chrono::Utc::now() + chrono::Duration::seconds(offset)).with_timezone(&zone);
        at.num_seconds_from_midnight()
    };
    let window = QuietHours::new(local(-60), local(10)).unwrap();
    store
        .set_sending_settings(
            &plan,
            &roster::store::Actor::cli(),
            &SendingSettings {
                quiet_hours: Some(QuietHoursSetting {
                    window,
                    fallback_zone: None,
                }),
                ..SendingSettings::default()
            },
        )
        .await
        .unwrap();
    let batch = store
        .create_batch(
            &plan,
            &roster::store::Actor::cli(),
            batch_to(&group, "+12125550199"),
        )
        .await
        .unwrap();
    let log = dir.path().join("messages.jsonl");
    let mut first = serve(&database, &log, &["--chunk-size", "10"]);
    let started = Instant::now();
    let held = loop {
        let now = store.get_batch(&plan, &batch.id).await.unwrap();
        if now.held_count > 0 {
            break now;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{now:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    first.kill().expect("SIGKILL");
    first.wait().unwrap();
    assert_eq!(held.status, BatchStatus::Sending, "{held:?}");
    assert_eq!(held.held_count, 300, "{held:?}");
    assert_eq!(held.sent_count, 1, "{held:?}");
    let release = held.held_until.expect("a release time");

    let second = serve(&database, &log, &["--chunk-size", "10"]);
    let started = Instant::now();
    loop {
        let now = store.get_batch(&plan, &batch.id).await.unwrap();
        if now.status == BatchStatus::Sent {
            assert_eq!(now.sent_count, 301);
            assert_eq!(now.held_count, 0);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{now:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    terminate(second);
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<LogLine> = text
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let mut seen = BTreeSet::new();
    for line in &lines {
        assert!(seen.insert(line.to.clone()), "{} sent twice", line.to);
        if line.to.starts_with("+1415") {
            let at = Timestamp::parse_rfc3339(&line.logged_at).unwrap();
            assert!(at >= release, "{} sent during quiet hours", line.to);
        }
    }
    assert_eq!(seen.len(), 301, "nobody lost");
}

macro_rules! on_both {
    ($($name:ident),*) => {
        $(
            mod $name {
                use crate::helpers::Backend;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(Backend::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(Backend::Postgres).await;
                }
            }
        )*
    };
}

on_both!(
    two_instances_send_500_due_batches_once,
    sigkill_mid_batch_then_restart_resends_nothing,
    sigkill_while_held_for_quiet_hours_then_restart
);
