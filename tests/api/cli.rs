//! The real `roster` binary: plans, tokens, migrations, and `serve` with a graceful shutdown.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{Backend, database_url, wait_ready};

const ROSTER: &str = env!("CARGO_BIN_EXE_roster");

fn roster(args: &[&str], database: &str) -> std::process::Output {
    Command::new(ROSTER)
        .args(args)
        .env("ROSTER_DATABASE_URL", database)
        .env_remove("ROSTER_LISTEN")
        .output()
        .expect("run roster")
}

async fn plans_tokens_and_serve(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some(database) = database_url(backend, &dir).await else {
        return;
    };
    let migrated = roster(&["migrate"], &database);
    assert!(migrated.status.success(), "{migrated:?}");

    let created = roster(
        &["plans", "create", "Acme SMS", "--default-region", "us"],
        &database,
    );
    assert!(created.status.success(), "{created:?}");
    let plan: Value = serde_json::from_slice(&created.stdout).expect("JSON on stdout");
    let plan_id = plan["service_plan_id"].as_str().unwrap().to_owned();
    assert_eq!(plan_id.len(), 32);
    assert!(plan["api_token"].as_str().unwrap().starts_with("rst_"));

    let token = roster(
        &[
            "tokens", "create", &plan_id, "--name", "reports", "--scope", "read", "--scope", "send",
        ],
        &database,
    );
    assert!(token.status.success(), "{token:?}");
    let token: Value = serde_json::from_slice(&token.stdout).unwrap();
    assert_eq!(token["service_plan_id"], plan_id.as_str());
    assert_eq!(token["name"], "reports");
    assert_eq!(token["scopes"], serde_json::json!(["read", "send"]));
    assert_eq!(token["id"].as_str().unwrap().len(), 12);
    let second_token = token["api_token"].as_str().unwrap().to_owned();
    let bad_scope = roster(
        &["tokens", "create", &plan_id, "--scope", "everything"],
        &database,
    );
    assert!(!bad_scope.status.success());
    assert!(String::from_utf8_lossy(&bad_scope.stderr).contains("\"everything\" is not a scope"));

    let unknown = roster(
        &["tokens", "create", "0123456789abcdef0123456789abcdef"],
        &database,
    );
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no plan"));
    let bad_region = roster(
        &["plans", "create", "X", "--default-region", "XX"],
        &database,
    );
    assert!(!bad_region.status.success());
    assert!(String::from_utf8_lossy(&bad_region.stderr).contains("region"));

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(ROSTER)
        .arg("serve")
        .env("ROSTER_DATABASE_URL", &database)
        .env("ROSTER_SENDER_LOG", dir.path().join("messages.jsonl"))
        // Revocation is checked below to take effect on the very next request.
        .env("ROSTER_TOKEN_CACHE_SECONDS", "0")
        .env("ROSTER_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start roster serve");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = client.get(format!("{base}/readyz")).send().await;
        if ready.is_ok_and(|response| response.status() == 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "roster serve did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Both tokens work, and the plan's default region applies to national numbers.
    let created = client
        .post(format!("{base}/api/contactgroups"))
        .bearer_auth(plan["api_token"].as_str().unwrap())
        .json(&serde_json::json!({"name": "CLI", "members": ["(415) 555-2671"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let listed: Value = client
        .get(format!("{base}/xms/v1/{plan_id}/groups"))
        .bearer_auth(&second_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["count"], 1);
    let docs = client.get(format!("{base}/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    let document: Value = client
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));

    // The scoped token reads, and is refused a write naming the scope it lacks.
    let read = client
        .get(format!("{base}/api/contactgroups"))
        .bearer_auth(&second_token)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let write = client
        .post(format!("{base}/api/contactgroups"))
        .bearer_auth(&second_token)
        .json(&serde_json::json!({"name": "Nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 403);
    let problem: Value = write.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("scope write"),
        "{problem}"
    );

    // By default a webhook may not point inside the network Roster runs in.
    for url in [
        "http://127.0.0.1:9/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
    ] {
        let refused = client
            .post(format!("{base}/api/webhooks"))
            .bearer_auth(plan["api_token"].as_str().unwrap())
            .json(&serde_json::json!({"url": url, "events": ["batch.sent"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 400, "{url}");
        let problem: Value = refused.json().await.unwrap();
        assert_eq!(problem["errors"][0]["field"], "url", "{problem}");
        assert!(
            problem["errors"][0]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("private")
                || problem.to_string().contains("private"),
            "{problem}"
        );
    }

    // A revoked token is refused at once; the plan's other token still works.
    let revoked = roster(&["tokens", "revoke", &second_token], &database);
    assert!(revoked.status.success(), "{revoked:?}");
    let refused = client
        .get(format!("{base}/xms/v1/{plan_id}/groups"))
        .bearer_auth(&second_token)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let still = client
        .get(format!("{base}/api/contactgroups"))
        .bearer_auth(plan["api_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(still.status(), 200);
    let again = roster(&["tokens", "revoke", &second_token], &database);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("no active token"));

    // The audit log has the command line's changes as its own, and the API's with the address.
    let audit: Value = client
        .get(format!("{base}/api/audit"))
        .bearer_auth(plan["api_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows: Vec<(&str, &str)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            (
                entry["channel"].as_str().unwrap(),
                entry["operation"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("cli", "token.revoke"),
            ("api", "group.create"),
            ("cli", "token.create"),
            ("cli", "token.create"),
            ("cli", "plan.create"),
        ],
        "{audit}"
    );
    assert_eq!(audit["entries"][1]["address"], "127.0.0.1", "{audit}");
    assert_eq!(
        audit["entries"][2]["summary"]["scopes"], "read,send",
        "{audit}"
    );

    // SIGTERM: a graceful, successful exit.
    // SAFETY: kill has no memory-safety preconditions; the pid is our own child's.
    unsafe {
        libc::kill(server.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "roster serve ignored SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

#[tokio::test]
async fn sqlite_plans_tokens_and_serve() {
    plans_tokens_and_serve(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_plans_tokens_and_serve() {
    plans_tokens_and_serve(Backend::Postgres).await;
}

/// Rows written before memberships carried their contact's number, for the upgrade test.
const BEFORE_MEMBER_NUMBERS: [&str; 4] = [
    "INSERT INTO plans (id, name, created_at) VALUES ('p1', 'Old', 0)",
    "INSERT INTO contacts (plan_id, id, phone, opted_out, created_at, modified_at) VALUES \
     ('p1', '01ARZ3NDEKTSV4RRFFQ69G5FAV', '+14155550001', FALSE, 0, 0), \
     ('p1', '7ZZZZZZZZZZZZZZZZZZZZZZZZZ', '+14155550002', TRUE, 0, 0)",
    "INSERT INTO contact_groups (plan_id, id, name, status, member_count, size, created_at, \
     modified_at) VALUES ('p1', 'g1', 'Team', 'ACTIVE', 2, 2, 0, 0), \
     ('p1', 'g2', 'Other', 'ACTIVE', 0, 0, 0, 0)",
    "INSERT INTO group_members (plan_id, group_id, contact_id) VALUES \
     ('p1', 'g1', '01ARZ3NDEKTSV4RRFFQ69G5FAV'), ('p1', 'g1', '7ZZZZZZZZZZZZZZZZZZZZZZZZZ')",
];
/// The members' ids (16 bytes since migration 30) and numbers, as the schema after every
/// migration holds them.
const MEMBER_NUMBERS: &str = "SELECT c.id, c.phone FROM group_members m \
     JOIN contacts c ON c.key = m.contact ORDER BY c.id";
const RENUMBER: &str = "UPDATE contacts SET phone = '+14155550009' WHERE phone = '+14155550002'";

/// Runs the migrations before member numbers (0001–0006) on `$pool` and writes rows with them;
/// after `roster migrate`, `$check` reads the members' numbers, changes one contact's number,
/// and reads them again.
macro_rules! upgrade_steps {
    ($pool:ty, $url:expr, $migrations:expr) => {{
        let pool = <$pool>::connect($url).await.expect("connect");
        sqlx::migrate::Migrator::new($migrations)
            .await
            .expect("read the old migrations")
            .run(&pool)
            .await
            .expect("migrate to 0006");
        for statement in BEFORE_MEMBER_NUMBERS {
            sqlx::query(statement)
                .execute(&pool)
                .await
                .expect(statement);
        }
        pool.close().await;
        let migrated = roster(&["migrate"], $url);
        assert!(migrated.status.success(), "{migrated:?}");
        let pool = <$pool>::connect($url).await.expect("connect");
        let before: Vec<(Vec<u8>, String)> = sqlx::query_as(MEMBER_NUMBERS)
            .fetch_all(&pool)
            .await
            .unwrap();
        sqlx::query(RENUMBER).execute(&pool).await.unwrap();
        let after: Vec<(Vec<u8>, String)> = sqlx::query_as(MEMBER_NUMBERS)
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        (before, after)
    }};
}

/// A database written before memberships carried their contact's number (0006) is upgraded by
/// `roster migrate` through every later migration, including the copy of numbers into
/// memberships (0007) and its removal for integer keys (0011): every membership keeps its
/// contact, and a later change of a contact's number is what the group gives.
async fn memberships_get_their_numbers_on_upgrade(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some(database) = database_url(backend, &dir).await else {
        return;
    };
    let folder = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let old = tempfile::tempdir().unwrap();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(folder);
    for entry in std::fs::read_dir(source).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name().to_string_lossy().as_ref() < "0007" {
            std::fs::copy(entry.path(), old.path().join(entry.file_name())).unwrap();
        }
    }
    let (before, after) = match backend {
        Backend::Sqlite => {
            let url = format!("{database}?mode=rwc");
            upgrade_steps!(sqlx::SqlitePool, &url, old.path())
        }
        Backend::Postgres => upgrade_steps!(sqlx::PgPool, &database, old.path()),
    };
    // Migration 30 decodes the ids in SQL: the bytes must be the ULIDs' own.
    let pair = |id: &str, phone: &str| (crate::contacts::stored_id(id), phone.to_owned());
    let (first, last) = ("01ARZ3NDEKTSV4RRFFQ69G5FAV", "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
    assert_eq!(
        before,
        [pair(first, "+14155550001"), pair(last, "+14155550002")]
    );
    assert_eq!(
        after,
        [pair(first, "+14155550001"), pair(last, "+14155550009")]
    );
}

#[tokio::test]
async fn sqlite_memberships_get_their_numbers_on_upgrade() {
    memberships_get_their_numbers_on_upgrade(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_memberships_get_their_numbers_on_upgrade() {
    memberships_get_their_numbers_on_upgrade(Backend::Postgres).await;
}

#[test]
fn help_shows_examples() {
    let output = Command::new(ROSTER).arg("--help").output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("Examples:") && text.contains("roster plans create"));
    let bad_url = roster(&["migrate"], "mysql://nowhere");
    assert!(!bad_url.status.success());
    assert!(String::from_utf8_lossy(&bad_url.stderr).contains("unsupported database URL"));
}

/// A client that sends its headers too slowly is disconnected; one whose body stalls gets 408;
/// the server goes on serving everyone else.
#[tokio::test]
async fn slow_clients_are_cut_off() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/roster.db", dir.path().display());
    let created = roster(&["plans", "create", "Slow"], &database);
    let plan: Value = serde_json::from_slice(&created.stdout).unwrap();
    let token = plan["api_token"].as_str().unwrap().to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(ROSTER)
        .args([
            "serve",
            "--sender",
            "off",
            "--header-timeout",
            "1",
            "--body-timeout",
            "1",
        ])
        .env("ROSTER_DATABASE_URL", &database)
        .env("ROSTER_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start roster serve");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    wait_ready(&client, &base).await;

    let outcome = tokio::task::spawn_blocking(move || {
        let connect = || {
            let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            stream
        };
        // Headers begun and never finished: the server hangs up.
        let mut slow_headers = connect();
        let started = Instant::now();
        slow_headers
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: roster\r\n")
            .unwrap();
        let mut answer = Vec::new();
        let _ = slow_headers.read_to_end(&mut answer);
        let header_wait = started.elapsed();

        // A body that stops halfway: 408.
        let mut slow_body = connect();
        let request = format!(
            "POST /api/contactgroups HTTP/1.1\r\nHost: roster\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\": "
        );
        slow_body.write_all(request.as_bytes()).unwrap();
        let mut body_answer = [0u8; 512];
        let read = slow_body.read(&mut body_answer).unwrap_or(0);
        (
            header_wait,
            String::from_utf8_lossy(&answer).into_owned(),
            String::from_utf8_lossy(&body_answer[..read]).into_owned(),
        )
    })
    .await
    .unwrap();
    let (header_wait, header_answer, body_answer) = outcome;
    assert!(
        header_wait < Duration::from_secs(5),
        "slow headers kept the connection {header_wait:?}: {header_answer:?}"
    );
    assert!(!header_answer.contains("200 OK"), "{header_answer}");
    assert!(
        body_answer.starts_with("HTTP/1.1 408"),
        "stalled body answered {body_answer:?}"
    );
    let fine = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(fine.status(), 200);

    // SAFETY: kill has no memory-safety preconditions; the pid is our own child's.
    unsafe {
        libc::kill(server.id() as i32, libc::SIGTERM);
    }
    assert!(server.wait().unwrap().success());
}

/// With the token cache on, a revoked token is refused once its entry expires.
#[tokio::test]
async fn revoked_tokens_leave_the_cache_within_its_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/roster.db", dir.path().display());
    let created = roster(&["plans", "create", "Cached"], &database);
    let plan: Value = serde_json::from_slice(&created.stdout).unwrap();
    let token = plan["api_token"].as_str().unwrap().to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(ROSTER)
        .args(["serve", "--sender", "off", "--token-cache-seconds", "1"])
        .env("ROSTER_DATABASE_URL", &database)
        .env("ROSTER_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start roster serve");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let groups = format!("{base}/api/contactgroups");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !client
        .get(&groups)
        .bearer_auth(&token)
        .send()
        .await
        .is_ok_and(|response| response.status() == 200)
    {
        assert!(
            Instant::now() < deadline,
            "roster serve did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let revoked = roster(&["tokens", "revoke", &token], &database);
    assert!(revoked.status.success(), "{revoked:?}");
    let revoked_at = Instant::now();
    loop {
        let status = client
            .get(&groups)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status();
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            revoked_at.elapsed() < Duration::from_millis(2500),
            "a revoked token still worked after the cache's second"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill().unwrap();
    server.wait().unwrap();
}
