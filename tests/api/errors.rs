//! One error shape everywhere: every answer the framework makes before or instead of a handler
//! is `application/problem+json` under /api and Sinch's `{"code", "text"}` under /xms/v1, with
//! the right status. Run against the real `roster serve`, since some of these answers (a request
//! target or head too large to parse, a timeout) exist only there.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::helpers::{Backend, database_url, free_port, wait_ready};

const ROSTER: &str = env!("CARGO_BIN_EXE_roster");

/// hyper's limit on a request target, documented as Roster's.
const MAX_URI_BYTES: usize = 65_534;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Surface {
    Native,
    Sinch,
}

/// An answer read off the wire.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    allow: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    async fn from(response: reqwest::Response) -> Self {
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|value| value.to_str().unwrap().to_owned())
        };
        Answer {
            status: response.status().as_u16(),
            content_type: header("content-type").unwrap_or_default(),
            allow: header("allow"),
            body: response.bytes().await.unwrap().to_vec(),
        }
    }

    /// Parses an HTTP/1.1 answer with a `content-length`.
    fn parse(raw: &[u8]) -> Self {
        let text = String::from_utf8_lossy(raw);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no complete answer: {text:?}"));
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap()[9..12].parse().unwrap();
        let mut answer = Answer {
            status,
            content_type: String::new(),
            allow: None,
            body: body.as_bytes().to_vec(),
        };
        for line in lines {
            let (name, value) = line.split_once(": ").unwrap();
            match name.to_ascii_lowercase().as_str() {
                "content-type" => answer.content_type = value.to_owned(),
                "allow" => answer.allow = Some(value.to_owned()),
                _ => {}
            }
        }
        answer
    }

    /// Asserts the status and the surface's error shape; returns the body.
    fn assert_error(&self, surface: Surface, status: u16, what: &str) -> Value {
        let text = String::from_utf8_lossy(&self.body);
        assert_eq!(self.status, status, "{what}: {self:?} {text}");
        let body: Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("{what}: the body is not JSON: {text:?}"));
        match surface {
            Surface::Native => {
                assert_eq!(self.content_type, "application/problem+json", "{what}");
                assert_eq!(body["status"], status, "{what}: {body}");
                assert!(body["title"].is_string(), "{what}: {body}");
                assert!(
                    !body["detail"].as_str().unwrap_or("").is_empty(),
                    "{what}: {body}"
                );
            }
            Surface::Sinch => {
                assert_eq!(self.content_type, "application/json", "{what}");
                let object = body.as_object().unwrap();
                assert_eq!(object.len(), 2, "{what}: only code and text: {body}");
                assert!(
                    !body["code"].as_str().unwrap_or("").is_empty(),
                    "{what}: {body}"
                );
                assert!(
                    !body["text"].as_str().unwrap_or("").is_empty(),
                    "{what}: {body}"
                );
            }
        }
        body
    }
}

struct Served {
    child: std::process::Child,
    base: String,
    port: u16,
    plan: String,
    token: String,
    database: String,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `roster serve` with a body timeout of 1 s and a request timeout of 2 s.
async fn serve(backend: Backend) -> Option<Served> {
    let dir = tempfile::tempdir().unwrap();
    let database = database_url(backend, &dir).await?;
    let created = Command::new(ROSTER)
        .args(["plans", "create", "Errors"])
        .env("ROSTER_DATABASE_URL", &database)
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let plan: Value = serde_json::from_slice(&created.stdout).unwrap();
    let port = free_port();
    let child = Command::new(ROSTER)
        .args([
            "serve",
            "--sender",
            "off",
            "--body-timeout",
            "1",
            "--request-timeout",
            "2",
        ])
        .env("ROSTER_DATABASE_URL", &database)
        .env("ROSTER_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let served = Served {
        child,
        base,
        port,
        plan: plan["service_plan_id"].as_str().unwrap().to_owned(),
        token: plan["api_token"].as_str().unwrap().to_owned(),
        database,
        _dir: dir,
    };
    wait_ready(&reqwest::Client::new(), &served.base).await;
    Some(served)
}

impl Served {
    /// The path of `rest` on a surface: `/api/contactgroups...` or `/xms/v1/{plan}/groups...`.
    fn groups(&self, surface: Surface, rest: &str) -> String {
        match surface {
            Surface::Native => format!("/api/contactgroups{rest}"),
            Surface::Sinch => format!("/xms/v1/{}/groups{rest}", self.plan),
        }
    }

    async fn send(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Answer {
        let mut request = reqwest::Client::new()
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        Answer::from(request.send().await.unwrap()).await
    }

    /// Writes `request` as it is and reads the answer until the server closes.
    async fn raw(&self, request: Vec<u8>) -> Answer {
        let port = self.port;
        tokio::task::spawn_blocking(move || {
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            // The server may answer and close before the whole request is written.
            let _ = stream.write_all(&request);
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer);
            Answer::parse(&answer)
        })
        .await
        .unwrap()
    }

    fn get_line(&self, target: &str, headers: &str) -> Vec<u8> {
        format!(
            "GET {target} HTTP/1.1\r\nHost: roster\r\nAuthorization: Bearer {}\r\n{headers}\
             Connection: close\r\n\r\n",
            self.token
        )
        .into_bytes()
    }
}

async fn framework_rejections_take_the_surface_shape(backend: Backend) {
    let Some(server) = serve(backend).await else {
        return;
    };
    for surface in [Surface::Native, Surface::Sinch] {
        let what = |class: &str| format!("{class} on {surface:?}");

        // An unknown route.
        let path = server.groups(surface, "/x/y/z");
        let answer = server.send(Method::GET, &path, None).await;
        answer.assert_error(surface, 404, &what("unknown route"));

        // A method the route does not have: 405 naming the allowed ones.
        let answer = server
            .send(Method::DELETE, &server.groups(surface, ""), None)
            .await;
        let body = answer.assert_error(surface, 405, &what("method not allowed"));
        let allow = answer.allow.clone().expect("an Allow header");
        assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
        let text = body["detail"].as_str().or(body["text"].as_str()).unwrap();
        assert!(text.contains("GET") && text.contains("POST"), "{body}");
        if surface == Surface::Sinch {
            assert_eq!(body["code"], "method_not_allowed");
        }

        // A path parameter that is not UTF-8 once decoded.
        let answer = server
            .send(Method::GET, &server.groups(surface, "/%FF"), None)
            .await;
        let body = answer.assert_error(surface, 400, &what("undecodable path"));
        if surface == Surface::Sinch {
            assert_eq!(body["code"], "syntax_invalid_parameter_format");
        }

        // A query string that does not deserialize.
        let answer = server
            .send(Method::GET, &server.groups(surface, "?page=1&page=2"), None)
            .await;
        answer.assert_error(surface, 400, &what("bad query"));

        // A body over the limit. The server answers and closes as soon as the limit is passed;
        // a client still writing may see the close first (a reset), so that is tried again.
        let oversized = format!("{{\"name\": \"{}\"}}", "x".repeat(33 * 1024 * 1024)).into_bytes();
        let mut attempts = 0;
        let answer = loop {
            attempts += 1;
            let sent = reqwest::Client::new()
                .post(format!("{}{}", server.base, server.groups(surface, "")))
                .bearer_auth(&server.token)
                .header("content-type", "application/json")
                .body(oversized.clone())
                .send()
                .await;
            match sent {
                Ok(response) => break Answer::from(response).await,
                Err(error) if attempts < 5 => eprintln!("oversized body: {error}"),
                Err(error) => panic!("no answer to an oversized body: {error}"),
            }
        };
        answer.assert_error(surface, 413, &what("body too large"));

        // A request target at hyper's limit is routed (to a 404); one byte more is 414.
        let prefix = server.groups(surface, "/");
        let at_limit = format!("{prefix}{}", "a".repeat(MAX_URI_BYTES - prefix.len()));
        assert_eq!(at_limit.len(), MAX_URI_BYTES);
        let answer = server.raw(server.get_line(&at_limit, "")).await;
        answer.assert_error(surface, 404, &what("target at the limit"));
        let past = format!("{at_limit}a");
        let answer = server.raw(server.get_line(&past, "")).await;
        let body = answer.assert_error(surface, 414, &what("target too long"));
        assert!(body.to_string().contains("65534"), "{body}");
        // A target too long even for hyper's buffer is still 414, not 431.
        let huge = format!("{prefix}{}", "a".repeat(500_000));
        let answer = server.raw(server.get_line(&huge, "")).await;
        answer.assert_error(surface, 414, &what("target far too long"));

        // At most 100 headers (three are sent besides the extra ones).
        let headers = |count: usize| {
            (0..count)
                .map(|i| format!("X-Extra-{i}: 1\r\n"))
                .collect::<String>()
        };
        let answer = server.raw(server.get_line(&prefix, &headers(97))).await;
        assert_ne!(answer.status, 431, "100 headers are allowed");
        let answer = server.raw(server.get_line(&prefix, &headers(98))).await;
        answer.assert_error(surface, 431, &what("too many headers"));

        // A request line hyper cannot parse.
        let answer = server
            .raw(server.get_line(&format!("{prefix}a b"), ""))
            .await;
        answer.assert_error(surface, 400, &what("malformed request line"));
    }

    // A body that stalls: 408 when the body timeout passes.
    let server = &server;
    let stalled = |surface: Surface| {
        let request = format!(
            "POST {} HTTP/1.1\r\nHost: roster\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\": ",
            server.groups(surface, ""),
            server.token
        );
        server.raw(request.into_bytes())
    };
    let (native, sinch) = tokio::join!(stalled(Surface::Native), stalled(Surface::Sinch));
    native.assert_error(Surface::Native, 408, "stalled body, native");
    sinch.assert_error(Surface::Sinch, 408, "stalled body, Sinch");

    // A handler that has not answered within the request timeout: 503. Writes wait for a lock
    // held here.
    let lock = hold_write_lock(backend, &server.database).await;
    let create = |surface: Surface| async move {
        let path = server.groups(surface, "");
        let body = br#"{"name": "Waits"}"#.to_vec();
        server.send(Method::POST, &path, Some(body)).await
    };
    let (native, sinch) = tokio::join!(create(Surface::Native), create(Surface::Sinch));
    native.assert_error(Surface::Native, 503, "timeout, native");
    sinch.assert_error(Surface::Sinch, 503, "timeout, Sinch");
    drop(lock);
}

/// A connection holding the database's write lock (SQLite) or the groups table's (PostgreSQL)
/// until it is dropped.
async fn hold_write_lock(backend: Backend, database: &str) -> Box<dyn std::any::Any> {
    use sqlx::Connection;
    match backend {
        Backend::Sqlite => {
            let mut connection = sqlx::SqliteConnection::connect(database).await.unwrap();
            sqlx::raw_sql("BEGIN EXCLUSIVE")
                .execute(&mut connection)
                .await
                .unwrap();
            Box::new(connection)
        }
        Backend::Postgres => {
            let mut connection = sqlx::PgConnection::connect(database).await.unwrap();
            sqlx::raw_sql("BEGIN; LOCK TABLE contact_groups IN ACCESS EXCLUSIVE MODE")
                .execute(&mut connection)
                .await
                .unwrap();
            Box::new(connection)
        }
    }
}

#[tokio::test]
async fn sqlite_framework_rejections_take_the_surface_shape() {
    framework_rejections_take_the_surface_shape(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_framework_rejections_take_the_surface_shape() {
    framework_rejections_take_the_surface_shape(Backend::Postgres).await;
}

/// A body that parses but lacks a required field, or has a value of the wrong kind, names the
/// field; only a body that does not parse is "not valid JSON".
async fn body_errors_name_the_field(app: crate::helpers::TestApp) {
    use serde_json::json;

    let missing = app
        .send_json(Method::POST, "/api/contacts", &json!({"first_name": "Ann"}))
        .await;
    assert_eq!(missing.status(), 400);
    let problem: Value = missing.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "phone", "{problem}");
    assert_eq!(problem["errors"][0]["detail"], "is required", "{problem}");

    // Nested, on the Sinch surface: Sinch's code for a missing required field.
    let sinch = format!("/xms/v1/{}/groups", app.plan_id);
    let nested = app
        .send_json(
            Method::POST,
            &sinch,
            &json!({"name": "Club", "auto_update": {"to": "+15551231234", "add": {}}}),
        )
        .await;
    assert_eq!(nested.status(), 400);
    let error: Value = nested.json().await.unwrap();
    assert_eq!(error["code"], "syntax_constraint_violation", "{error}");
    let text = error["text"].as_str().unwrap();
    assert!(text.contains("auto_update.add.first_word"), "{error}");
    assert!(text.contains("is required"), "{error}");

    // A value of the wrong kind for an enumerated field.
    let format = app
        .send_json(Method::POST, "/api/exports", &json!({"format": 12345}))
        .await;
    assert_eq!(format.status(), 400);
    let problem: Value = format.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "format", "{problem}");
    let unknown = app
        .send_json(Method::POST, "/api/exports", &json!({"format": "pdf"}))
        .await;
    let problem: Value = unknown.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "format", "{problem}");

    // Broken JSON is still broken JSON.
    let broken = app
        .request(Method::POST, "/api/exports")
        .header("content-type", "application/json")
        .body(r#"{"format": }"#)
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), 400);
    let problem: Value = broken.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("not valid JSON"),
        "{problem}"
    );
}

/// A refused consent word is named by its list and position, with the real limit.
async fn consent_words_are_named_where_they_are(app: crate::helpers::TestApp) {
    use serde_json::json;

    let at_limit = "W".repeat(20);
    let accepted = app
        .send_json(
            Method::PUT,
            "/api/keywords",
            &json!({"opt_out": ["STOP", at_limit], "opt_in": ["START"]}),
        )
        .await;
    assert_eq!(accepted.status(), 200);

    let too_long = format!("{at_limit}W");
    let refused = app
        .send_json(
            Method::PUT,
            "/api/keywords",
            &json!({"opt_out": ["STOP"], "opt_in": ["START", too_long]}),
        )
        .await;
    assert_eq!(refused.status(), 400);
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "opt_in[1]", "{problem}");
    let detail = problem["errors"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("at most 20 characters"), "{problem}");

    let both = app
        .send_json(
            Method::PUT,
            "/api/keywords",
            &json!({"opt_out": ["STOP"], "opt_in": ["GO", "stop"]}),
        )
        .await;
    let problem: Value = both.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "opt_in[1]", "{problem}");

    let none = app
        .send_json(
            Method::PUT,
            "/api/keywords",
            &json!({"opt_out": [], "opt_in": ["GO"]}),
        )
        .await;
    let problem: Value = none.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "opt_out", "{problem}");
}

crate::on_both_backends!(
    body_errors_name_the_field,
    consent_words_are_named_where_they_are
);
