//! 64 concurrent clients against two `roster serve` processes sharing one database: random adds
//! and removes on the same four groups. Each client owns its numbers (so its operations on them
//! are ordered) while all clients contend for the same group rows; every acknowledged operation
//! must be in the final state, and every one must have made a version of its group.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};

use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, database_url, free_port, wait_ready};

const ROSTER: &str = env!("CARGO_BIN_EXE_roster");
const CLIENTS: usize = 64;
const OPERATIONS: usize = 20;
const GROUPS: usize = 4;

fn serve(database: &str, port: u16) -> Child {
    Command::new(ROSTER)
        .args(["serve", "--sender", "off"])
        .env("ROSTER_DATABASE_URL", database)
        .env("ROSTER_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start roster serve")
}

async fn sixty_four_clients_two_servers(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some(database) = database_url(backend, &dir).await else {
        return;
    };
    let created = Command::new(ROSTER)
        .args(["plans", "create", "Contended"])
        .env("ROSTER_DATABASE_URL", &database)
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let plan: Value = serde_json::from_slice(&created.stdout).unwrap();
    let token = plan["api_token"].as_str().unwrap().to_owned();
    let ports = [free_port(), free_port()];
    let mut servers: Vec<Child> = ports.iter().map(|port| serve(&database, *port)).collect();
    let bases: Vec<String> = ports
        .iter()
        .map(|port| format!("http://127.0.0.1:{port}"))
        .collect();
    let client = reqwest::Client::new();
    for base in &bases {
        wait_ready(&client, base).await;
    }
    let mut groups = Vec::new();
    for index in 0..GROUPS {
        let group: Value = client
            .post(format!("{}/api/contactgroups", bases[0]))
            .bearer_auth(&token)
            .json(&json!({"name": format!("G{index}")}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        groups.push(group["id"].as_str().unwrap().to_owned());
    }

    let tasks = (0..CLIENTS).map(|number| {
        let (client, token, groups, bases) =
            (client.clone(), token.clone(), groups.clone(), bases.clone());
        tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(number as u64);
            // This client's own three numbers, and what it believes of them per group.
            let mine: Vec<String> = (0..3)
                .map(|k| format!("+1415{:07}", 2_000_000 + number * 3 + k))
                .collect();
            let mut model: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
            let mut acknowledged = vec![0usize; GROUPS];
            for step in 0..OPERATIONS {
                let group = rng.random_range(0..GROUPS);
                let phone = mine[rng.random_range(0..mine.len())].clone();
                let add = rng.random_bool(0.6);
                let body = if add {
                    json!({"add": [phone]})
                } else {
                    json!({"remove": [phone]})
                };
                let base = &bases[(number + step) % bases.len()];
                let response = client
                    .request(
                        Method::PATCH,
                        format!("{base}/api/contactgroups/{}", groups[group]),
                    )
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                assert_eq!(status, 200, "{body}: {}", response.text().await.unwrap());
                acknowledged[group] += 1;
                let members = model.entry(group).or_default();
                if add {
                    members.insert(phone);
                } else {
                    members.remove(&phone);
                }
            }
            (model, acknowledged)
        })
    });
    let outcomes = futures::future::join_all(tasks).await;
    let mut expected: Vec<BTreeSet<String>> = vec![BTreeSet::new(); GROUPS];
    let mut writes = [0usize; GROUPS];
    for outcome in outcomes {
        let (model, acknowledged) = outcome.expect("client task");
        for (group, members) in model {
            expected[group].extend(members);
        }
        for (group, count) in acknowledged.into_iter().enumerate() {
            writes[group] += count;
        }
    }
    for (index, id) in groups.iter().enumerate() {
        let response = client
            .get(format!("{}/api/contactgroups/{id}/members", bases[1]))
            .bearer_auth(&token)
            .header("Accept", "application/x-ndjson")
            .send()
            .await
            .unwrap();
        let text = response.text().await.unwrap();
        let members: BTreeSet<String> = text
            .lines()
            .map(|line| serde_json::from_str::<String>(line).unwrap())
            .collect();
        assert_eq!(members, expected[index], "group {index}");
        let group = client
            .get(format!("{}/api/contactgroups/{id}", bases[0]))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        // Every acknowledged write made a version of its own, on either server.
        assert_eq!(
            group.headers()["etag"],
            format!("\"{}\"", writes[index] + 1).as_str(),
            "group {index}"
        );
        let group: Value = group.json().await.unwrap();
        assert_eq!(group["size"], expected[index].len(), "group {index}");
    }
    for server in &mut servers {
        // SAFETY: kill has no memory-safety preconditions; the pid is our own child's.
        unsafe {
            libc::kill(server.id() as i32, libc::SIGTERM);
        }
        assert!(server.wait().unwrap().success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sixty_four_clients_two_servers() {
    sixty_four_clients_two_servers(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sixty_four_clients_two_servers() {
    sixty_four_clients_two_servers(Backend::Postgres).await;
}
