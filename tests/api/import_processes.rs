//! Imports through real processes: `roster import` and `roster export` from the command line,
//! and SIGKILL in the middle of an import — of `roster serve` committing one, and of
//! `roster import` itself — which must leave no trace of it, on both backends.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{Backend, database_url, free_port, wait_ready};

const ROSTER: &str = env!("CARGO_BIN_EXE_roster");
const ROWS: usize = 60_000;

fn roster(args: &[&str], database: &str) -> std::process::Output {
    Command::new(ROSTER)
        .args(args)
        .env("ROSTER_DATABASE_URL", database)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run roster")
}

fn create_plan(database: &str) -> (String, String) {
    let created = roster(
        &["plans", "create", "Imports", "--default-region", "US"],
        database,
    );
    assert!(created.status.success(), "{created:?}");
    let plan: Value = serde_json::from_slice(&created.stdout).unwrap();
    (
        plan["service_plan_id"].as_str().unwrap().to_owned(),
        plan["api_token"].as_str().unwrap().to_owned(),
    )
}

/// A CSV of `ROWS` valid numbers with names.
fn big_csv(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("big.csv");
    let mut text = String::from("phone,first_name,city\n");
    for n in 0..ROWS {
        text.push_str(&format!(
            "+1415{:07},Name{n},City{}\n",
            2_000_000 + n,
            n % 7
        ));
    }
    std::fs::write(&path, text).unwrap();
    path
}

async fn contact_count(client: &reqwest::Client, base: &str, token: &str) -> i64 {
    let list: Value = client
        .get(format!("{base}/api/contacts?count=true&limit=1"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["count"].as_i64().unwrap()
}

async fn groups(client: &reqwest::Client, base: &str, token: &str) -> Vec<Value> {
    let list: Value = client
        .get(format!("{base}/api/contactgroups"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["groups"].as_array().cloned().unwrap_or_default()
}

struct Server {
    child: std::process::Child,
    base: String,
}

async fn serve(database: &str) -> Server {
    let port = free_port();
    let child = Command::new(ROSTER)
        .args(["serve", "--sender", "off", "--job-lease-seconds", "2"])
        .env("ROSTER_DATABASE_URL", database)
        .env("ROSTER_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start roster serve");
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&reqwest::Client::new(), &base).await;
    Server { child, base }
}

async fn import_status(client: &reqwest::Client, base: &str, token: &str, id: &str) -> Value {
    client
        .get(format!("{base}/api/imports/{id}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn server_killed_mid_import(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some(database) = database_url(backend, &dir).await else {
        return;
    };
    let (_, token) = create_plan(&database);
    let file = std::fs::read(big_csv(dir.path())).unwrap();
    let client = reqwest::Client::new();
    let mut server = serve(&database).await;
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(file).file_name("big.csv"),
    );
    let preview: Value = client
        .post(format!("{}/api/imports", server.base))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = preview["id"].as_str().expect("import id").to_owned();
    let commit = client
        .post(format!("{}/api/imports/{id}/commit", server.base))
        .bearer_auth(&token)
        .json(&json!({"group_names": ["Crash import"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(commit.status(), 202);
    // Kill it once it has read a third of the file.
    let started = Instant::now();
    let mut seen = json!(null);
    while started.elapsed() < Duration::from_secs(60) {
        seen = import_status(&client, &server.base, &token, &id).await;
        if seen["status"] != "running"
            || seen["progress"]["rows_read"].as_u64() > Some(ROWS as u64 / 3)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.child.kill().expect("SIGKILL");
    server.child.wait().unwrap();
    eprintln!("killed at {}", seen["progress"]);

    let mut server = serve(&database).await;
    let status = import_status(&client, &server.base, &token, &id).await;
    let count = contact_count(&client, &server.base, &token).await;
    if status["status"] == "done" {
        // It finished before the kill: all of it is there.
        assert_eq!(count, ROWS as i64);
    } else {
        assert_eq!(count, 0, "a killed import left contacts behind: {status}");
        assert!(groups(&client, &server.base, &token).await.is_empty());
        // Once its claim lapses it shows as interrupted, and a new commit imports it whole.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = import_status(&client, &server.base, &token, &id).await;
            if status["status"] == "failed" {
                assert!(
                    status["error"].as_str().unwrap().contains("interrupted"),
                    "{status}"
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "never shown interrupted: {status}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let commit = client
            .post(format!("{}/api/imports/{id}/commit", server.base))
            .bearer_auth(&token)
            .json(&json!({"group_names": ["Crash import"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(commit.status(), 202);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let status = import_status(&client, &server.base, &token, &id).await;
            if status["status"] == "done" {
                assert_eq!(status["report"]["created"], ROWS, "{status}");
                break;
            }
            assert_ne!(status["status"], "failed", "{status}");
            assert!(Instant::now() < deadline, "import stuck: {status}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            contact_count(&client, &server.base, &token).await,
            ROWS as i64
        );
    }
    let groups = groups(&client, &server.base, &token).await;
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0]["size"], ROWS);
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

async fn cli_import_killed_then_run_again(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some(database) = database_url(backend, &dir).await else {
        return;
    };
    let (plan, token) = create_plan(&database);
    let file = big_csv(dir.path());
    let file = file.to_str().unwrap();
    let mut child = Command::new(ROSTER)
        .args(["import", file, "--plan", &plan, "--group", "CLI"])
        .env("ROSTER_DATABASE_URL", &database)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let finished = child.try_wait().unwrap().is_some();
    child.kill().ok();
    child.wait().unwrap();

    let mut server = serve(&database).await;
    let client = reqwest::Client::new();
    let count = contact_count(&client, &server.base, &token).await;
    if finished {
        eprintln!("the import finished before the kill");
        assert_eq!(count, ROWS as i64);
    } else {
        assert_eq!(count, 0, "a killed import left contacts behind");
        assert!(groups(&client, &server.base, &token).await.is_empty());
        let again = roster(
            &["import", file, "--plan", &plan, "--group", "CLI"],
            &database,
        );
        assert!(again.status.success(), "{again:?}");
        let report = String::from_utf8_lossy(&again.stdout);
        assert!(
            report.contains(&format!("created:          {ROWS}")),
            "{report}"
        );
        assert_eq!(
            contact_count(&client, &server.base, &token).await,
            ROWS as i64
        );
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

async fn cli_import_and_export(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some(database) = database_url(backend, &dir).await else {
        return;
    };
    let (plan, _) = create_plan(&database);
    let path = dir.path().join("people.csv");
    std::fs::write(
        &path,
        "Tel;Vorname;Stadt;Notiz\n\
         +4915112345678;Jörg;Berlin;x\n\
         0151 23456790;Ina;Köln;y\n\
         nonsense;Bad;;\n",
    )
    .unwrap();
    let errors = dir.path().join("rejected.csv");
    let output = roster(
        &[
            "import",
            path.to_str().unwrap(),
            "--plan",
            &plan,
            "--group",
            "Kunden",
            "--map",
            "Tel=phone",
            "--map",
            "2=first_name",
            "--map",
            "Notiz=ignore",
            "--default-region",
            "DE",
            "--errors",
            errors.to_str().unwrap(),
        ],
        &database,
    );
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(report.contains("created:          2"), "{report}");
    assert!(report.contains("invalid:          1"), "{report}");
    assert!(report.contains("row 4: phone"), "{report}");
    let rejected = std::fs::read_to_string(&errors).unwrap();
    // The rejected row as the file had it, after its number and reason: to correct and import
    // again.
    assert!(
        rejected.starts_with("Rejected row,Rejected because,Tel,Vorname,Stadt,Notiz\n4,"),
        "{rejected}"
    );
    assert!(rejected.ends_with(",nonsense,Bad,,\n"), "{rejected}");

    // An errors file that cannot be written is refused before anything is imported.
    let unwritable = roster(
        &[
            "import",
            path.to_str().unwrap(),
            "--plan",
            &plan,
            "--errors",
            dir.path().join("no/such/dir/e.csv").to_str().unwrap(),
        ],
        &database,
    );
    assert!(!unwritable.status.success());
    assert!(String::from_utf8_lossy(&unwritable.stderr).contains("cannot write"));
    assert!(String::from_utf8_lossy(&unwritable.stdout).is_empty());

    // Nothing importable: exit status 1, and the reason.
    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, "phone\nnot a number\n").unwrap();
    let output = roster(
        &["import", empty.to_str().unwrap(), "--plan", &plan],
        &database,
    );
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("nothing was imported"));
    // A bad mapping is refused before anything is read.
    let output = roster(
        &[
            "import",
            path.to_str().unwrap(),
            "--plan",
            &plan,
            "--map",
            "Fax=phone",
        ],
        &database,
    );
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("Fax"));

    let exported = dir.path().join("out.csv");
    let output = roster(
        &[
            "export",
            "--plan",
            &plan,
            "--format",
            "csv",
            "-o",
            exported.to_str().unwrap(),
        ],
        &database,
    );
    assert!(output.status.success(), "{output:?}");
    let text = std::fs::read_to_string(&exported).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("phone,first_name,last_name,email,gender,time_zone,opted_out,groups,fields.stadt")
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert!(
        rows.contains(&"+4915112345678,Jörg,,,,,false,Kunden,Berlin"),
        "{text}"
    );
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
    server_killed_mid_import,
    cli_import_killed_then_run_again,
    cli_import_and_export
);
