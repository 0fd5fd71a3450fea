//! A webhook receiver for tests: an HTTP server on 127.0.0.1 that records every request and
//! answers the attempts of the first event it sees from a script (everything else 204), and a verifier of signatures written from the Standard
//! Webhooks specification rather than from Roster's code.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

/// How the receiver answers one request.
#[derive(Debug, Clone, Copy)]
pub enum Reply {
    Status(u16),
    /// Answers 204 after this long (past the deliverer's timeout, an attempt that timed out).
    Hang(Duration),
}

#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
    pub at: Instant,
    /// What the receiver answered; 0 for a hang (the deliverer gives up first).
    pub status: u16,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct Log {
    received: Vec<Received>,
    script: VecDeque<Reply>,
    /// The first event seen: the script answers its attempts.
    scripted: Option<String>,
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    log: Arc<Mutex<Log>>,
}

impl Receiver {
    /// A receiver on a free port that answers `script` first, then 204.
    pub async fn start(script: Vec<Reply>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, script)
    }

    /// A receiver on `listener`.
    pub fn serve(listener: tokio::net::TcpListener, script: Vec<Reply>) -> Self {
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Log {
            received: Vec::new(),
            script: script.into(),
            scripted: None,
        }));
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(log.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, log }
    }

    pub fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().received.clone()
    }

    /// The first accepted (2xx) request of each event, in the order they arrived.
    pub fn accepted(&self) -> Vec<Received> {
        let mut seen = std::collections::HashSet::new();
        self.received()
            .into_iter()
            .filter(|request| (200..300).contains(&request.status))
            .filter(|request| seen.insert(request.id.clone()))
            .collect()
    }

    /// Waits until `count` events were accepted (at most `limit`).
    pub async fn wait_for(&self, count: usize, limit: Duration) -> Vec<Received> {
        let deadline = Instant::now() + limit;
        loop {
            let accepted = self.accepted();
            if accepted.len() >= count {
                return accepted;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} events accepted: {:#?}",
                accepted.len(),
                self.received()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn receive(
    State(log): State<Arc<Mutex<Log>>>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let id = headers
        .get("webhook-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    // Timed under the lock that picks the scripted event, so that the first request by time
    // is the one the script answered first (two arriving together may take the lock in
    // either order).
    let (at, reply) = {
        let mut log = log.lock().unwrap();
        let at = Instant::now();
        let scripted = log.scripted.get_or_insert_with(|| id.clone()).clone();
        let reply = if scripted == id {
            log.script.pop_front()
        } else {
            None
        };
        (at, reply)
    };
    let (status, hang) = match reply {
        Some(Reply::Status(status)) => (status, None),
        Some(Reply::Hang(delay)) => (0, Some(delay)),
        None => (204, None),
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    log.lock().unwrap().received.push(Received {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body,
        at,
        status,
    });
    // Logged before it hangs: the deliverer may drop the connection before the answer.
    if let Some(delay) = hang {
        tokio::time::sleep(delay).await;
        return StatusCode::NO_CONTENT;
    }
    StatusCode::from_u16(status).unwrap()
}

/// Whether `request` carries a valid signature under `secret` (`whsec_` + base64 key): the
/// HMAC-SHA256 of `{id}.{timestamp}.{body}`, base64, after `v1,` (one of several, space
/// separated), with a timestamp within five minutes.
pub fn verify(secret: &str, request: &Received) -> bool {
    let key = BASE64
        .decode(secret.strip_prefix("whsec_").expect("a whsec_ secret"))
        .expect("base64");
    let mut mac = <Hmac<Sha256>>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.{}", request.id, request.timestamp, request.body).as_bytes());
    let expected = format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let fresh = request
        .timestamp
        .parse::<i64>()
        .is_ok_and(|at| (now - at).abs() < 300);
    fresh && request.signature.split(' ').any(|one| one == expected)
}
