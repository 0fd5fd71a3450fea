//! Webhooks with real `roster serve` processes: an instance killed with SIGKILL after the changes
//! and before their deliveries loses none of them — a restart delivers every event, in order per
//! object, each under its one id; and two deliverers sharing one PostgreSQL outbox deliver every
//! event without delivering any twice.

use std::collections::{BTreeMap, HashMap};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Backend, database_url, free_port, spawn_app};
use crate::webhook_receiver::{Receiver, verify};
use crate::webhooks::{make_webhook, quick_config, start_deliverer};

const ROSTER: &str = env!("CARGO_BIN_EXE_roster");

/// `roster serve` on a free port, delivering webhooks with a one-second timeout; another port
/// is tried when the one chosen was taken meanwhile (tests run side by side).
async fn start(database: &str) -> (Child, String) {
    for _ in 0..3 {
        let port = free_port();
        let mut child = Command::new(ROSTER)
            .args(["serve", "--sender", "off"])
            .env("ROSTER_DATABASE_URL", database)
            .env("ROSTER_LISTEN", format!("127.0.0.1:{port}"))
            .env("ROSTER_WEBHOOK_ALLOW_PRIVATE", "true")
            .env("ROSTER_WEBHOOK_TIMEOUT", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start roster serve");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            let ready = client.get(format!("{base}/readyz")).send().await;
            if ready.is_ok_and(|response| response.status() == 200) {
                return (child, base);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("roster serve did not start");
}

async fn send(
    client: &reqwest::Client,
    token: &str,
    method: reqwest::Method,
    url: &str,
    body: Value,
) -> Value {
    let response = client
        .request(method, url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    response.json().await.unwrap_or(Value::Null)
}

async fn killed_before_delivery(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some(database) = database_url(backend, &dir).await else {
        return;
    };
    let created = Command::new(ROSTER)
        .args(["plans", "create", "Hooks"])
        .env("ROSTER_DATABASE_URL", &database)
        .output()
        .unwrap();
    let plan: Value = serde_json::from_slice(&created.stdout).unwrap();
    let token = plan["api_token"].as_str().unwrap().to_owned();
    // Nothing listens at the receiver's address until after the crash: every attempt before it
    // fails.
    let receiver_port = free_port();
    let receiver_url = format!("http://127.0.0.1:{receiver_port}/hook");
    let client = reqwest::Client::new();
    let (mut server, base) = start(&database).await;
    let webhook = send(
        &client,
        &token,
        reqwest::Method::POST,
        &format!("{base}/api/webhooks"),
        json!({"url": receiver_url, "events": ["contact.created", "contact.updated", "group.changed"]}),
    )
    .await;
    let secret = webhook["secret"].as_str().unwrap().to_owned();
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut contacts = Vec::new();
    for n in 0..5 {
        let contact = send(
            &client,
            &token,
            reqwest::Method::POST,
            &format!("{base}/api/contacts"),
            json!({"phone": format!("+1415555013{n}")}),
        )
        .await;
        let id = contact["id"].as_str().unwrap().to_owned();
        for name in ["First", "Second"] {
            send(
                &client,
                &token,
                reqwest::Method::PATCH,
                &format!("{base}/api/contacts/{id}"),
                json!({"first_name": format!("{name} {n}")}),
            )
            .await;
        }
        expected.insert(
            id.clone(),
            vec!["created".into(), "first_name".into(), "first_name".into()],
        );
        contacts.push(id);
    }
    let group = send(
        &client,
        &token,
        reqwest::Method::POST,
        &format!("{base}/api/contactgroups"),
        json!({"name": "Hooked"}),
    )
    .await;
    let group_id = group["id"].as_str().unwrap().to_owned();
    send(
        &client,
        &token,
        reqwest::Method::POST,
        &format!("{base}/api/contactgroups/members"),
        json!({"contact_ids": contacts, "group_ids": [group_id]}),
    )
    .await;
    expected.insert(
        group_id.clone(),
        vec!["created".into(), "members_added".into()],
    );
    // Let a few attempts fail, then kill the instance mid-work.
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill().unwrap();
    server.wait().unwrap();

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", receiver_port))
        .await
        .unwrap();
    let receiver = Receiver::serve(listener, Vec::new());
    let (mut server, _) = start(&database).await;
    let accepted = receiver.wait_for(17, Duration::from_secs(90)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.accepted().len(), 17);

    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for request in &accepted {
        assert!(verify(&secret, request), "{request:?}");
        let event = request.json();
        let data = &event["data"];
        let (object, what) = match data["contact_id"].as_str() {
            Some(contact) => (
                contact.to_owned(),
                match data["fields"][0].as_str() {
                    Some(field) => field.to_owned(),
                    None => "created".to_owned(),
                },
            ),
            None => (
                data["group_id"].as_str().unwrap().to_owned(),
                data["change"].as_str().unwrap().to_owned(),
            ),
        };
        seen.entry(object).or_default().push(what);
    }
    assert_eq!(seen, expected);
    // A repeat is the same event under the same id: the ids of distinct bodies never repeat.
    let mut bodies: HashMap<String, String> = HashMap::new();
    for request in receiver.received() {
        let body = bodies
            .entry(request.id.clone())
            .or_insert(request.body.clone());
        assert_eq!(*body, request.body, "one id, two events");
    }
    server.kill().unwrap();
    server.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_killed_before_delivery() {
    killed_before_delivery(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_before_delivery() {
    killed_before_delivery(Backend::Postgres).await;
}

/// Two deliverers, each with its own connections, share one PostgreSQL outbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_deliverers_share_the_outbox() {
    let Some(app) = spawn_app(Backend::Postgres).await else {
        return;
    };
    let receiver = Receiver::start(Vec::new()).await;
    make_webhook(&app, &receiver.url, &["contact.created"]).await;
    const EVENTS: usize = 300;
    for n in 0..EVENTS {
        let response = app
            .send_json(
                reqwest::Method::POST,
                "/api/contacts",
                &json!({"phone": format!("+1415556{n:04}")}),
            )
            .await;
        assert_eq!(response.status(), 201);
    }
    let other = roster::store::connect(&app.database_url).await.unwrap();
    let small = |config: roster::webhooks::DeliveryConfig| roster::webhooks::DeliveryConfig {
        claim: 10,
        concurrency: 4,
        ..config
    };
    let _one = start_deliverer(app.store.clone(), small(quick_config()));
    let _two = start_deliverer(other, small(quick_config()));
    receiver.wait_for(EVENTS, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let received = receiver.received();
    assert_eq!(received.len(), EVENTS, "an event was delivered twice");
}
