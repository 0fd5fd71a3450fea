//! Crash safety: `roster serve` killed with SIGKILL in the middle of replacing a 100,000-member
//! group leaves the group as it was before or as it was asked to be — never half of each.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use serde_json::{Value, json};

use crate::helpers::{Backend, database_url, free_port, wait_ready};

const ROSTER: &str = env!("CARGO_BIN_EXE_roster");
const SIZE: usize = 100_000;

struct Server {
    child: Child,
    base: String,
}

async fn start(database: &str) -> Server {
    let port = free_port();
    let child = Command::new(ROSTER)
        .args(["serve", "--sender", "off"])
        .env("ROSTER_DATABASE_URL", database)
        .env("ROSTER_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start roster serve");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    wait_ready(&client, &base).await;
    Server { child, base }
}

/// `SIZE` numbers of one series (0, 1 or 2), disjoint between series.
fn series(which: usize) -> Vec<String> {
    (0..SIZE)
        .map(|n| format!("+1415{:07}", 2_000_000 + which * SIZE + n))
        .collect()
}

async fn members(client: &reqwest::Client, base: &str, token: &str, id: &str) -> BTreeSet<String> {
    let text = client
        .get(format!("{base}/api/contactgroups/{id}/members"))
        .bearer_auth(token)
        .header("Accept", "application/x-ndjson")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .map(|line| serde_json::from_str::<String>(line).unwrap())
        .collect()
}

async fn replace_killed_midway(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some(database) = database_url(backend, &dir).await else {
        return;
    };
    let created = Command::new(ROSTER)
        .args(["plans", "create", "Crash"])
        .env("ROSTER_DATABASE_URL", &database)
        .output()
        .unwrap();
    let plan: Value = serde_json::from_slice(&created.stdout).unwrap();
    let token = plan["api_token"].as_str().unwrap().to_owned();
    let client = reqwest::Client::new();
    let mut server = start(&database).await;
    let group: Value = client
        .post(format!("{}/api/contactgroups", server.base))
        .bearer_auth(&token)
        .json(&json!({"name": "Big", "members": series(0)}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = group["id"].as_str().unwrap().to_owned();
    let path = format!("{}/api/contactgroups/{id}", server.base);

    // How long a replace takes here, to kill the next one halfway.
    let started = Instant::now();
    let replaced = client
        .put(&path)
        .bearer_auth(&token)
        .json(&json!({"name": "Big", "members": series(1)}))
        .send()
        .await
        .unwrap();
    assert_eq!(replaced.status(), 200);
    let duration = started.elapsed();

    let request = client
        .put(&path)
        .bearer_auth(&token)
        .json(&json!({"name": "Big", "members": series(2)}))
        .send();
    let killer = async {
        tokio::time::sleep(duration / 2).await;
        server.child.kill().expect("SIGKILL");
        server.child.wait().unwrap();
    };
    let (outcome, ()) = tokio::join!(request, killer);
    eprintln!(
        "replace took {duration:?}; killed after half of it: {}",
        match &outcome {
            Ok(response) => format!("answered {}", response.status()),
            Err(_) => "no answer".to_owned(),
        }
    );

    let server = start(&database).await;
    let after = members(&client, &server.base, &token, &id).await;
    let before: BTreeSet<String> = series(1).into_iter().collect();
    let asked: BTreeSet<String> = series(2).into_iter().collect();
    assert!(
        after == before || after == asked,
        "half-replaced group: {} members, {} of the old and {} of the new",
        after.len(),
        after.intersection(&before).count(),
        after.intersection(&asked).count()
    );
    if outcome.is_ok_and(|response| response.status() == 200) {
        assert_eq!(after, asked, "an acknowledged replace was lost");
    }
    let group: Value = client
        .get(format!("{}/api/contactgroups/{id}", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(group["size"], after.len());
    let mut child = server.child;
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_replace_killed_midway() {
    replace_killed_midway(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_replace_killed_midway() {
    replace_killed_midway(Backend::Postgres).await;
}
