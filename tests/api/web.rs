//! The web page: sessions and CSRF over plain HTTP (both backends), and the operator's path
//! through a real `roster serve` in headless Chromium — sign in, import a CSV through the
//! wizard, see the group and a rejected row, rename the group, sign out.

use std::process::{Command, Stdio};

use fantoccini::{Client, Locator};
use reqwest::redirect::Policy;
use serde_json::Value;

use crate::browser::{Browser, path, screenshots, text_of, wait_for};
use crate::helpers::{Backend, TestApp, database_url, free_port, wait_ready};

const ROSTER: &str = env!("CARGO_BIN_EXE_roster");

/// A client that keeps cookies and does not follow redirects, like a browser seen one
/// request at a time.
fn cookie_client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// The value of the hidden `csrf` field in a page.
fn csrf_in(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    let length = html[at..].find('"').expect("the end of the csrf field");
    html[at..at + length].to_owned()
}

/// Signs in through the form; returns the session's CSRF token (from the groups page).
pub async fn sign_in(client: &reqwest::Client, base: &str, token: &str) -> reqwest::Response {
    let page = client.get(format!("{base}/signin")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csrf = csrf_in(&page.text().await.unwrap());
    client
        .post(format!("{base}/signin"))
        .form(&[("csrf", csrf.as_str()), ("token", token)])
        .send()
        .await
        .unwrap()
}

async fn sessions_and_csrf(app: TestApp) {
    let base = &app.address;
    let client = cookie_client();

    // Without a session every page sends the browser to sign in.
    for page in ["/", "/groups", "/contacts", "/imports", "/exports"] {
        let response = client.get(format!("{base}{page}")).send().await.unwrap();
        assert_eq!(response.status(), 303, "{page}");
        assert_eq!(response.headers()["location"], "/signin", "{page}");
    }

    // A wrong token is refused at the field.
    let refused = sign_in(&client, base, "rst_not_a_token").await;
    assert_eq!(refused.status(), 401);
    let html = refused.text().await.unwrap();
    assert!(html.contains("not valid"), "{html}");
    assert!(html.contains("aria-invalid=\"true\""), "{html}");

    // The sign-in form itself needs its CSRF cookie.
    let forged = reqwest::Client::new()
        .post(format!("{base}/signin"))
        .form(&[
            ("csrf", "0".repeat(64).as_str()),
            ("token", app.token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);

    let signed_in = sign_in(&client, base, &app.token).await;
    assert_eq!(signed_in.status(), 303);
    let cookie = signed_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .find(|value| value.starts_with("roster_session="))
        .expect("a session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");

    let groups = client.get(format!("{base}/groups")).send().await.unwrap();
    assert_eq!(groups.status(), 200);
    let policy = groups.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    let csrf = csrf_in(&groups.text().await.unwrap());

    // A form without the session's CSRF token changes nothing.
    let forged = client
        .post(format!("{base}/groups"))
        .form(&[("csrf", "nope"), ("name", "Forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    // Nor does one sent from another site, even with the token.
    let cross_site = client
        .post(format!("{base}/groups"))
        .header("origin", "http://evil.example")
        .form(&[("csrf", csrf.as_str()), ("name", "Cross")])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    let list: Value = app.get("/api/contactgroups").await.json().await.unwrap();
    assert_eq!(list["count"], 0, "{list}");

    // With it, the group is created and the browser sent to its page.
    let created = client
        .post(format!("{base}/groups"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("name", "Web"),
            ("description", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 303);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/groups/"), "{location}");

    // The API's field errors are shown at the field, with the API's status.
    let group_page = format!("{base}{location}");
    let bad_add = client
        .post(&group_page)
        .form(&[
            ("csrf", csrf.as_str()),
            ("action", "add"),
            ("numbers", "+14155550100\nabc"),
        ])
        .send()
        .await
        .unwrap();
    // The valid number is added; the bad one is listed by its line, from 1, with the API's
    // reason, and kept in the box for correcting.
    assert_eq!(bad_add.status(), 200);
    let html = bad_add.text().await.unwrap();
    assert!(html.contains("id=\"add-refused\""), "{html}");
    assert!(html.contains("Line 2: <code>abc</code>"), "{html}");
    assert!(html.contains("Added 1 number."), "{html}");
    assert!(html.contains(">abc</textarea>"), "{html}");

    // An opt-out ticked on the page is in the consent history as the page's doing.
    let contact: Value = app
        .send_json(
            reqwest::Method::POST,
            "/api/contacts",
            &serde_json::json!({"phone": "+14155550177"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let contact_id = contact["id"].as_str().unwrap();
    let saved = client
        .post(format!("{base}/contacts/{contact_id}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("phone", "+14155550177"),
            ("first_name", "Page"),
            ("opted_out", "on"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(saved.status(), 303);
    let history: Value = app
        .get(&format!("/api/contacts/{contact_id}/consent"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(history["events"][0]["event"], "opt_out", "{history}");
    assert_eq!(history["events"][0]["source"], "page", "{history}");
    let edited: Value = app
        .get(&format!("/api/contacts/{contact_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(edited["first_name"], "Page");

    // The audit log has the page's changes as the page's, with the session's token, and the
    // sign-in itself.
    let audit: Value = app.get("/api/audit").await.json().await.unwrap();
    let by_page: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["channel"] == "page")
        .collect();
    let operations: Vec<&str> = by_page
        .iter()
        .map(|entry| entry["operation"].as_str().unwrap())
        .collect();
    assert_eq!(
        operations,
        [
            "contact.update",
            "group.update",
            "group.create",
            "session.create"
        ],
        "{audit}"
    );
    assert_eq!(by_page[0]["objects"], serde_json::json!([contact_id]));
    assert_eq!(
        by_page[0]["summary"]["fields"],
        serde_json::json!(["first_name", "opted_out"])
    );
    for entry in &by_page {
        assert_eq!(entry["address"], "127.0.0.1", "{entry}");
        assert_eq!(entry["token_id"].as_str().unwrap().len(), 12, "{entry}");
    }

    // The contact's page names its groups (and links them).
    let vip = app
        .create_group(serde_json::json!({"name": "VIP list", "members": ["+14155550177"]}))
        .await;
    let page = client
        .get(format!("{base}/contacts/{contact_id}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let link = format!(
        "<a href=\"/groups/{}\">VIP list</a>",
        vip["id"].as_str().unwrap()
    );
    assert!(page.contains(&link), "{page}");

    // An export requested on the page runs and downloads through it.
    let requested = client
        .post(format!("{base}/exports"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("format", "csv"),
            ("group", ""),
            ("q", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(requested.status(), 303);
    let export_page = requested.headers()["location"].to_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let status: Value = client
            .get(format!("{base}{export_page}/status"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["status"] == "done" {
            break;
        }
        assert_ne!(status["status"], "failed", "{status}");
        assert!(
            std::time::Instant::now() < deadline,
            "export did not finish"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let shown = client
        .get(format!("{base}{export_page}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(shown.contains("id=\"export-done\""), "{shown}");
    let file = client
        .get(format!("{base}{export_page}/download"))
        .send()
        .await
        .unwrap();
    assert_eq!(file.status(), 200);
    let csv = file.text().await.unwrap();
    assert!(csv.starts_with("phone,"), "{csv}");
    assert!(csv.contains("+14155550177"), "{csv}");

    // Another plan's group is not found through the page either.
    let (_, other_token) = app.create_plan(Some("US")).await;
    let other = cookie_client();
    assert_eq!(sign_in(&other, base, &other_token).await.status(), 303);
    let foreign = other.get(&group_page).send().await.unwrap();
    assert_eq!(foreign.status(), 404);

    // Signing out ends the session on the server, not only in the browser.
    let session_cookie = cookie.split(';').next().unwrap().to_owned();
    let signed_out = client
        .post(format!("{base}/signout"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_out.status(), 303);
    let replayed = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
        .get(format!("{base}/groups"))
        .header("cookie", session_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), 303);

    // Behind a TLS proxy the cookie is Secure.
    let secure = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
        .get(format!("{base}/signin"))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let cookie = secure.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
}

async fn a_revoked_token_ends_its_sessions(app: TestApp) {
    let base = &app.address;
    let client = cookie_client();
    assert_eq!(sign_in(&client, base, &app.token).await.status(), 303);
    assert_eq!(
        client
            .get(format!("{base}/groups"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.store
        .revoke_token(
            &roster::api::auth::hash_token(&app.token),
            &roster::store::Actor::cli(),
        )
        .await
        .unwrap();
    let after = client.get(format!("{base}/groups")).send().await.unwrap();
    assert_eq!(after.status(), 303);
}

/// The sign-in form's token is signed with a secret of the database: a pair of cookie and field
/// made up by someone else is refused, and a form rendered by one instance is accepted by another
/// on the same database.
async fn sign_in_forms_are_signed_by_the_server(app: TestApp) {
    let base = &app.address;
    let made_up = "0".repeat(64);
    let injected = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
        .post(format!("{base}/signin"))
        .header("cookie", format!("roster_sign_in={made_up}"))
        .form(&[("csrf", made_up.as_str()), ("token", app.token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(injected.status(), 403);

    // The token of one form does not sign another: its signature covers its nonce and expiry.
    let client = cookie_client();
    let page = client.get(format!("{base}/signin")).send().await.unwrap();
    let csrf = csrf_in(&page.text().await.unwrap());
    let (payload, signature) = csrf.rsplit_once('.').unwrap();
    let (nonce, expires) = payload.split_once('.').unwrap();
    let later: i64 = expires.parse::<i64>().unwrap() + 86_400;
    let stretched = format!("{nonce}.{later}.{signature}");
    let refused = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
        .post(format!("{base}/signin"))
        .header("cookie", format!("roster_sign_in={stretched}"))
        .form(&[("csrf", stretched.as_str()), ("token", app.token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);

    // A second instance over the same database accepts the first one's form.
    let store = roster::store::connect(&app.database_url).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other = format!("http://{}", listener.local_addr().unwrap());
    let second = roster::app(roster::api::AppState::new(store, 0));
    tokio::spawn(async move { axum::serve(listener, second).await });
    let signed_in = client
        .post(format!("{other}/signin"))
        .header("cookie", format!("roster_sign_in={csrf}"))
        .form(&[("csrf", csrf.as_str()), ("token", app.token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
}

/// Writes from an opaque origin (`Origin: null`) are refused, even with the session's token.
async fn writes_from_an_opaque_origin_are_refused(app: TestApp) {
    let base = &app.address;
    let client = cookie_client();
    assert_eq!(sign_in(&client, base, &app.token).await.status(), 303);
    let groups = client.get(format!("{base}/groups")).send().await.unwrap();
    let csrf = csrf_in(&groups.text().await.unwrap());
    let opaque = client
        .post(format!("{base}/groups"))
        .header("origin", "null")
        .form(&[("csrf", csrf.as_str()), ("name", "Opaque")])
        .send()
        .await
        .unwrap();
    assert_eq!(opaque.status(), 403);
    let list: Value = app.get("/api/contactgroups").await.json().await.unwrap();
    assert_eq!(list["count"], 0, "{list}");
    let same_site = client
        .post(format!("{base}/groups"))
        .header("origin", base.as_str())
        .form(&[("csrf", csrf.as_str()), ("name", "Same")])
        .send()
        .await
        .unwrap();
    assert_eq!(same_site.status(), 303);
}

/// Every page whose path names something takes it as an id of its kind before any use:
/// anything else is the page's own 404, never a 500 or another API route.
async fn paths_name_ids_or_nothing(app: TestApp) {
    let base = &app.address;
    let client = cookie_client();
    assert_eq!(sign_in(&client, base, &app.token).await.status(), 303);
    let groups = client.get(format!("{base}/groups")).send().await.unwrap();
    let csrf = csrf_in(&groups.text().await.unwrap());
    let group = app.create_group(serde_json::json!({"name": "Real"})).await;
    let group = group["id"].as_str().unwrap();

    let not_ids = [
        "a%20b".to_owned(),
        "a%3Cb".to_owned(),
        "%FF".to_owned(),
        // An encoded slash would lead the page's call to /api/contactgroups/{id}/members.
        format!("{group}%2Fmembers"),
        "..%2F..%2Fapi%2Fcontactgroups".to_owned(),
    ];
    for id in &not_ids {
        for page in [
            format!("/groups/{id}"),
            format!("/contacts/{id}"),
            format!("/imports/{id}"),
            format!("/imports/{id}/status"),
            format!("/imports/{id}/errors.csv"),
            format!("/exports/{id}"),
            format!("/exports/{id}/status"),
            format!("/exports/{id}/download"),
            format!("/imports/templates/{id}"),
        ] {
            let response = client.get(format!("{base}{page}")).send().await.unwrap();
            assert_eq!(response.status(), 404, "GET {page}");
            let content_type = response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_owned();
            assert!(
                content_type.starts_with("text/html"),
                "GET {page}: {content_type}"
            );
            let html = response.text().await.unwrap();
            assert!(html.contains("There is no such page"), "GET {page}: {html}");
        }
        for page in [
            format!("/groups/{id}"),
            format!("/contacts/{id}"),
            format!("/imports/{id}"),
        ] {
            let response = client
                .post(format!("{base}{page}"))
                .form(&[("csrf", csrf.as_str()), ("action", "rename"), ("name", "X")])
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 404, "POST {page}");
        }
    }
    // The real ones still work.
    for page in [
        format!("/groups/{group}"),
        "/imports/templates/contacts.csv".to_owned(),
    ] {
        let response = client.get(format!("{base}{page}")).send().await.unwrap();
        assert_eq!(response.status(), 200, "GET {page}");
    }
}

/// The Send form without JavaScript: Check shows the dry run's summary, and a refused send keeps
/// everything typed, with the API's reason at the field; a send time in a zone that does not
/// exist is refused by the page itself.
async fn the_send_form_keeps_what_was_typed(app: TestApp) {
    let base = &app.address;
    let client = cookie_client();
    assert_eq!(sign_in(&client, base, &app.token).await.status(), 303);
    let page = client.get(format!("{base}/send")).send().await.unwrap();
    let csrf = csrf_in(&page.text().await.unwrap());
    let group = app
        .create_group(
            serde_json::json!({"name": "Walkers", "members": ["+14155550101", "+14155550102"]}),
        )
        .await;
    let group = group["id"].as_str().unwrap();
    let post = |fields: Vec<(&'static str, String)>| {
        let mut form = vec![("csrf", csrf.clone())];
        form.extend(fields);
        client.post(format!("{base}/send")).form(&form).send()
    };

    let checked = post(vec![
        ("group", group.to_owned()),
        ("numbers", "+14155550103".to_owned()),
        ("body", "Walk at ${fields.time}".to_owned()),
        ("action", "preview".to_owned()),
    ])
    .await
    .unwrap();
    assert_eq!(checked.status(), 200);
    let html = checked.text().await.unwrap();
    assert!(
        html.contains("id=\"summary-recipients\">0</strong>"),
        "{html}"
    );
    assert!(
        html.contains("3 without a value for a placeholder"),
        "{html}"
    );

    let refused = post(vec![
        ("group", group.to_owned()),
        ("numbers", "+14155550103".to_owned()),
        ("from", "x".repeat(40)),
        ("body", "Walk at nine".to_owned()),
        ("action", "send".to_owned()),
    ])
    .await
    .unwrap();
    assert_eq!(refused.status(), 400);
    let html = refused.text().await.unwrap();
    assert!(html.contains("id=\"from-error\""), "{html}");
    assert!(html.contains(">Walk at nine</textarea>"), "{html}");
    assert!(html.contains("+14155550103</textarea>"), "{html}");
    assert!(
        html.contains(&format!("value=\"{group}\" checked")),
        "{html}"
    );
    let batches: Value = app.get("/api/batches").await.json().await.unwrap();
    assert_eq!(batches["count"], 0, "{batches}");

    let nowhere = post(vec![
        ("numbers", "+14155550103".to_owned()),
        ("body", "Walk at nine".to_owned()),
        ("when", "later".to_owned()),
        ("send_at", "2027-03-28T01:30".to_owned()),
        ("time_zone", "Europe/London".to_owned()),
        ("action", "send".to_owned()),
    ])
    .await
    .unwrap();
    assert_eq!(nowhere.status(), 400);
    let html = nowhere.text().await.unwrap();
    assert!(html.contains("the clocks go forward"), "{html}");
}

/// An export downloaded from the page is named after its group and day, not its id.
async fn exports_are_named_after_their_group(app: TestApp) {
    let base = &app.address;
    let client = cookie_client();
    assert_eq!(sign_in(&client, base, &app.token).await.status(), 303);
    let group = app
        .create_group(serde_json::json!({"name": "Spring Fair (UK)", "members": ["+14155550101"]}))
        .await;
    let export: Value = app
        .send_json(
            reqwest::Method::POST,
            "/api/exports",
            &serde_json::json!({"format": "csv", "group_id": group["id"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = export["id"].as_str().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let export: Value = app
            .get(&format!("/api/exports/{id}"))
            .await
            .json()
            .await
            .unwrap();
        if export["status"] == "done" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{export}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let download = client
        .get(format!("{base}/exports/{id}/download"))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    let day = chrono::Utc::now().format("%Y-%m-%d");
    assert_eq!(
        download.headers()["content-disposition"],
        format!("attachment; filename=\"contacts-spring-fair-uk-{day}.csv\"").as_str()
    );
    assert!(download.text().await.unwrap().contains("+14155550101"));
}

crate::on_both_backends!(
    exports_are_named_after_their_group,
    the_send_form_keeps_what_was_typed,
    sessions_and_csrf,
    a_revoked_token_ends_its_sessions,
    sign_in_forms_are_signed_by_the_server,
    writes_from_an_opaque_origin_are_refused,
    paths_name_ids_or_nothing,
    a_session_does_no_more_than_its_token,
);

/// Signed in with a token that may only read, the page reads and is refused a change, saying
/// which scope it lacks.
async fn a_session_does_no_more_than_its_token(app: TestApp) {
    let base = &app.address;
    let made: Value = app
        .send_json(
            reqwest::Method::POST,
            "/api/tokens",
            &serde_json::json!({"name": "viewer", "scopes": ["read"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let client = cookie_client();
    let signed_in = sign_in(&client, base, made["token"].as_str().unwrap()).await;
    assert_eq!(signed_in.status(), 303);
    let groups = client.get(format!("{base}/groups")).send().await.unwrap();
    assert_eq!(groups.status(), 200);
    let csrf = csrf_in(&groups.text().await.unwrap());
    let refused = client
        .post(format!("{base}/groups"))
        .form(&[("csrf", csrf.as_str()), ("name", "Nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let html = refused.text().await.unwrap();
    assert!(html.contains("does not have the scope write"), "{html}");
    let list: Value = app.get("/api/contactgroups").await.json().await.unwrap();
    assert_eq!(list["groups"], serde_json::json!([]));
}

struct Server {
    child: std::process::Child,
    base: String,
    token: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server whose sender writes the messages to a file in its directory (`sending`), or sends
/// nothing.
async fn serve_with(backend: Backend, sending: bool) -> Option<Server> {
    let dir = tempfile::tempdir().unwrap();
    let database = database_url(backend, &dir).await?;
    let created = Command::new(ROSTER)
        .args(["plans", "create", "Shop", "--default-region", "US"])
        .env("ROSTER_DATABASE_URL", &database)
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let plan: Value = serde_json::from_slice(&created.stdout).unwrap();
    let port = free_port();
    let log = dir.path().join("messages.jsonl");
    let sender = if sending {
        vec!["--sender-log", log.to_str().unwrap(), "--poll-ms", "50"]
    } else {
        vec!["--sender", "off"]
    };
    let child = Command::new(ROSTER)
        .arg("serve")
        .args(sender)
        .env("ROSTER_DATABASE_URL", &database)
        .env("ROSTER_LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&reqwest::Client::new(), &base).await;
    Some(Server {
        child,
        base,
        token: plan["api_token"].as_str().unwrap().to_owned(),
        _dir: dir,
    })
}

/// A browser and a server to drive it against, or `None` (after a loud message) where either
/// cannot run here.
async fn browser_and_server(backend: Backend, sending: bool) -> Option<(Browser, Server)> {
    let browser = Browser::start().await?;
    let server = serve_with(backend, sending).await?;
    Some((browser, server))
}

/// Signs the browser in through the page's form.
async fn sign_in_browser(client: &Client, base: &str, token: &str) {
    client.goto(&format!("{base}/signin")).await.unwrap();
    fill(client, "#token", token).await;
    click(client, "form[action='/signin'] button[type=submit]").await;
    wait_for(client, "a[aria-current=page][href='/groups']").await;
}

async fn fill(client: &Client, css: &str, value: &str) {
    let field = wait_for(client, css).await;
    field.clear().await.unwrap();
    field.send_keys(value).await.unwrap();
}

/// Waits for the page's note (after an action's redirect) to say `words`.
async fn note(client: &Client, words: &str) {
    client
        .wait()
        .at_most(std::time::Duration::from_secs(20))
        .for_element(Locator::XPath(&format!(
            "//p[contains(@class, 'success') and normalize-space()='{words}']"
        )))
        .await
        .unwrap_or_else(|error| panic!("no note {words:?}: {error}"));
}

async fn click(client: &Client, css: &str) {
    wait_for(client, css).await.click().await.unwrap();
}

/// Sign in, upload a CSV, map its columns, commit, watch it finish, see the group's size and a
/// rejected row; rename the group; sign out.
async fn operator_imports_a_spreadsheet(backend: Backend) {
    let Some((browser, server)) = browser_and_server(backend, false).await else {
        return;
    };
    let csv_dir = tempfile::tempdir().unwrap();
    let csv = csv_dir.path().join("customers.csv");
    // Semicolons, a national number (region US from the plan), a bad number on row 4.
    std::fs::write(
        &csv,
        "First Name;Mobile;City\nAda;+14155550101;Leeds\nBob;(415) 555-0102;York\nCy;not a number;Hull\nDee;+14155550104;Bath\nEve;+1 415 555 0101;Leeds\n",
    )
    .unwrap();
    let base = server.base.clone();
    let token = server.token.clone();
    let smart: Value = reqwest::Client::new()
        .post(format!("{base}/api/contactgroups"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "Leeds people", "rule": "fields.City = \"Leeds\""}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let smart = smart["id"].as_str().unwrap().to_owned();
    let name = format!("operator_imports_a_spreadsheet_{backend:?}");
    browser
        .run(&name, |client| async move {
            client.goto(&base).await.unwrap();
            assert_eq!(path(&client).await, "/signin");
            screenshots(&client, "signin").await;
            fill(&client, "#token", &token).await;
            click(&client, "form[action='/signin'] button[type=submit]").await;
            wait_for(&client, "a[aria-current=page][href='/groups']").await;
            assert_eq!(path(&client).await, "/groups");

            click(&client, "a[href='/imports']").await;
            let file = wait_for(&client, "#file").await;
            screenshots(&client, "import_upload").await;
            file.send_keys(csv.to_str().unwrap()).await.unwrap();
            click(&client, "#upload-form button[type=submit]").await;

            // The preview: the phone column is recognised from its name. A smart group takes
            // no members, so it is not offered as the import's group.
            wait_for(&client, "#mapping-form").await;
            let offered = client
                .find_all(Locator::Css(&format!("#group option[value='{smart}']")))
                .await
                .unwrap();
            assert!(
                offered.is_empty(),
                "a smart group is offered as an import target"
            );
            assert_eq!(text_of(&client, "#total-rows").await, "5");
            let phone = wait_for(&client, "select[data-column='Mobile']").await;
            assert_eq!(phone.prop("value").await.unwrap().as_deref(), Some("phone"));
            let first = wait_for(&client, "select[data-column='First Name']").await;
            assert_eq!(
                first.prop("value").await.unwrap().as_deref(),
                Some("first_name")
            );
            // The column's custom field is offered once, not once per spelling.
            let city = wait_for(&client, "select[data-column='City']").await;
            let offered = city.text().await.unwrap();
            assert_eq!(offered.matches("Custom field").count(), 1, "{offered}");
            city.select_by_value("fields.city").await.unwrap();
            fill(&client, "#new_group", "Customers").await;
            click(&client, "#import-button").await;

            // The job runs and its report replaces the progress bar. Its counts agree with the
            // list of rows left out: an invalid row and a number repeated.
            let outcome = text_of(&client, "p.warning#import-done").await;
            assert_eq!(
                outcome,
                "Imported, but 2 of 5 rows were left out: 1 invalid, 1 repeating an earlier row's number. They are listed below."
            );
            assert_eq!(text_of(&client, "[data-count=created]").await, "3");
            assert_eq!(text_of(&client, "[data-count=invalid]").await, "1");
            assert_eq!(text_of(&client, "[data-count=duplicates]").await, "1");
            let rejected = client
                .find_all(Locator::Css("#rejected-table tbody tr"))
                .await
                .unwrap();
            assert_eq!(rejected.len(), 2);
            let rejected = text_of(&client, "#rejected-table tbody").await;
            assert!(rejected.contains('4') && rejected.contains('6'), "{rejected}");
            let download = text_of(&client, "a[href$='/errors.csv']").await;
            assert!(download.starts_with("Download all 2 rows"), "{download}");
            screenshots(&client, "import_report").await;

            // The new group, with the three good numbers.
            click(&client, "#main a[href^='/groups/']").await;
            assert_eq!(text_of(&client, "#group-size").await, "3");
            let members = text_of(&client, "#members-table").await;
            assert!(members.contains("+14155550102"), "{members}");
            assert!(!members.contains("not a number"), "{members}");

            // Rename it.
            fill(&client, "#name", "Best customers").await;
            click(&client, "form:has(input[value=rename]) button[type=submit]").await;
            client
                .wait()
                .for_element(Locator::XPath("//h1[text()='Best customers']"))
                .await
                .unwrap();
            client.goto(&format!("{base}/groups")).await.unwrap();
            let list = text_of(&client, "main table").await;
            assert!(list.contains("Best customers"), "{list}");

            // A refused upload comes back to the upload page, its reason shown, and the address
            // bar never shows the form's CSRF token.
            let empty = csv_dir.path().join("empty.csv");
            std::fs::write(&empty, "").unwrap();
            client.goto(&format!("{base}/imports")).await.unwrap();
            let file = wait_for(&client, "#file").await;
            file.send_keys(empty.to_str().unwrap()).await.unwrap();
            click(&client, "#upload-form button[type=submit]").await;
            let problem = text_of(&client, "div.problem").await;
            assert!(!problem.is_empty());
            let address = client.current_url().await.unwrap();
            assert_eq!(address.path(), "/imports");
            assert!(!address.as_str().contains("csrf"), "{address}");

            // A file whose every row is rejected (UK national numbers read in the plan's US
            // region) is a failure in red, not a green "Imported".
            // Before that, the preview warns, naming where the numbers would be valid; checked
            // in another country, the warning goes.
            std::fs::write(&csv, "Name,Mobile\nAda,07911 123456\nBob,07400 123456\n").unwrap();
            client.goto(&format!("{base}/imports")).await.unwrap();
            let file = wait_for(&client, "#file").await;
            file.send_keys(csv.to_str().unwrap()).await.unwrap();
            click(&client, "#upload-form button[type=submit]").await;
            wait_for(&client, "#mapping-form").await;
            let warning = text_of(&client, "#region-warning").await;
            assert!(
                warning.starts_with(
                    "2 of 2 sampled numbers are not valid in United States of America."
                ),
                "{warning}"
            );
            assert!(warning.contains("(GB)"), "{warning}");
            screenshots(&client, "import_region_warning").await;
            click(&client, "#import-button").await;
            let outcome = text_of(&client, "div.problem#import-done").await;
            assert!(
                outcome.starts_with("Nothing was imported: every row was left out."),
                "{outcome}"
            );
            assert_eq!(text_of(&client, "[data-count=invalid]").await, "2");
            // Imported again from the report, without uploading the file, in another country.
            let failed = path(&client).await;
            click(&client, "#import-again").await;
            wait_for(&client, "#mapping-form").await;
            assert_ne!(path(&client).await, failed);
            wait_for(&client, "#default_region")
                .await
                .select_by_value("GB")
                .await
                .unwrap();
            click(&client, "button[name=check]").await;
            client
                .wait()
                .for_element(Locator::XPath(
                    "//select[@id='default_region']/option[@value='GB' and @selected]",
                ))
                .await
                .unwrap();
            let warnings = client
                .find_all(Locator::Css("#region-warning"))
                .await
                .unwrap();
            assert!(
                warnings.is_empty(),
                "the warning stays in the right country"
            );
            click(&client, "#import-button").await;
            wait_for(&client, "p.success#import-done").await;
            assert_eq!(text_of(&client, "[data-count=created]").await, "2");

            // The past imports, newest first, each with its outcome in words.
            client.goto(&format!("{base}/imports")).await.unwrap();
            let past = text_of(&client, "#imports-table tbody").await;
            let outcomes: Vec<&str> = past
                .lines()
                .filter_map(|line| {
                    ["Imported, 2 rows left out", "Nothing imported", "Imported"]
                        .into_iter()
                        .find(|outcome| line.contains(outcome))
                })
                .collect();
            assert_eq!(
                outcomes,
                ["Imported", "Nothing imported", "Imported, 2 rows left out"],
                "{past}"
            );
            screenshots(&client, "imports_list").await;

            // Sign out: the pages are closed again.
            click(&client, ".sign-out button").await;
            wait_for(&client, "#token").await;
            client.goto(&format!("{base}/groups")).await.unwrap();
            assert_eq!(path(&client).await, "/signin");
        })
        .await;
}

/// A refused form shows the API's problem next to the field in the browser; the page is usable
/// at a phone's width.
async fn refusals_are_shown_at_the_field(backend: Backend) {
    let Some((browser, server)) = browser_and_server(backend, false).await else {
        return;
    };
    let base = server.base.clone();
    let token = server.token.clone();
    let name = format!("refusals_are_shown_at_the_field_{backend:?}");
    browser
        .run(&name, |client| async move {
            client.set_window_size(390, 844).await.unwrap();
            client.goto(&format!("{base}/signin")).await.unwrap();
            // The sign-in page's one field has the focus: typing goes there.
            wait_for(&client, "#token").await;
            let focused = client
                .execute(
                    "return document.activeElement && document.activeElement.id;",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(focused, Value::String("token".into()));
            fill(&client, "#token", &token).await;
            click(&client, "form[action='/signin'] button[type=submit]").await;
            fill(&client, "#name", &"x".repeat(300)).await;
            click(
                &client,
                "form[method=post][action='/groups'] button[type=submit]",
            )
            .await;
            let error = text_of(&client, "#name-error").await;
            assert!(!error.is_empty());
            // At a phone's width the header keeps to two short rows.
            let header = client
                .execute(
                    "return document.querySelector('header.top').getBoundingClientRect().height;",
                    vec![],
                )
                .await
                .unwrap();
            assert!(
                header.as_f64().unwrap() < 100.0,
                "the header is {header} px high"
            );
            let described = wait_for(&client, "#name").await;
            assert_eq!(
                described.attr("aria-describedby").await.unwrap().as_deref(),
                Some("name-error")
            );
            // Nothing wider than the screen but the tables, which scroll in their own box.
            let overflow = client
                .execute(
                    "return document.documentElement.scrollWidth <= window.innerWidth + 1;",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(overflow, serde_json::Value::Bool(true));

            // A page past the end of a list says so and leads back.
            client
                .goto(&format!("{base}/groups?page=999"))
                .await
                .unwrap();
            let pager = text_of(&client, "nav.pager").await;
            assert!(
                pager.starts_with("There is no page 1000: the list has 1 page."),
                "{pager}"
            );
            click(&client, "nav.pager a[rel=prev]").await;
            assert_eq!(text_of(&client, "nav.pager").await, "Page 1 of 1");
            // An address that is no page is the page's own 404, with ways back.
            client.goto(&format!("{base}/no/such/page")).await.unwrap();
            assert_eq!(text_of(&client, "h1").await, "Not Found");
            wait_for(&client, "main a[href='/contacts']").await;
            screenshots(&client, "not_found").await;
            let api = reqwest::get(format!("{base}/no/such/page")).await.unwrap();
            assert_eq!(api.status(), 404);
            assert_eq!(api.headers()["content-type"], "application/problem+json");

            // The tab has an icon of the page's own.
            let icon = reqwest::get(format!("{base}/favicon.ico")).await.unwrap();
            assert_eq!(icon.status(), 200);
            assert_eq!(icon.headers()["content-type"], "image/svg+xml");

            // A filter that does not parse is explained at the search field.
            client
                .goto(&format!("{base}/contacts?q=first_name%20%3D%3D"))
                .await
                .unwrap();
            let error = text_of(&client, "#q-error").await;
            assert!(!error.is_empty());
        })
        .await;
}

/// Sign in, open a group and send it a personalized message from the Send page: the live
/// summary counts the recipients and the one left out, shows the parts and a rendered sample;
/// the batch's page follows the sending and lists each recipient's state. Then schedule a second
/// message for tomorrow and cancel it from its page; both are in the list of batches.
async fn operator_sends_to_a_group(backend: Backend) {
    let Some((browser, server)) = browser_and_server(backend, true).await else {
        return;
    };
    let base = server.base.clone();
    let token = server.token.clone();
    let api = reqwest::Client::new();
    for (phone, name) in [
        ("+14155550101", Some("Ada")),
        ("+14155550102", Some("Bob")),
        ("+14155550103", None),
    ] {
        let created = api
            .post(format!("{base}/api/contacts"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"phone": phone, "first_name": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201, "{:?}", created.text().await);
    }
    let group: Value = api
        .post(format!("{base}/api/contactgroups"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "Regulars",
            "members": ["+14155550101", "+14155550102", "+14155550103"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let group_id = group["id"].as_str().unwrap().to_owned();
    let name = format!("operator_sends_to_a_group_{backend:?}");
    let shots = format!("send_{backend:?}").to_lowercase();
    browser
        .run(&name, |client| async move {
            sign_in_browser(&client, &base, &token).await;

            // Contacts are found by name or by the start of their number as a person types it.
            let contacts = format!("{base}/contacts");
            let find = |typed: &'static str| {
                let (client, contacts) = (client.clone(), contacts.clone());
                async move {
                    client.goto(&contacts).await.unwrap();
                    fill(&client, "#search", typed).await;
                    click(&client, "form.search button[type=submit]").await;
                    // The same page comes back: wait for the address to carry the search.
                    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
                    while !client
                        .current_url()
                        .await
                        .unwrap()
                        .as_str()
                        .contains("search=")
                    {
                        assert!(
                            std::time::Instant::now() < deadline,
                            "the search was not sent"
                        );
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                    text_of(&client, "#contacts-table tbody").await
                }
            };
            let found = find("ada").await;
            assert!(
                found.contains("+14155550101") && !found.contains("+14155550102"),
                "{found}"
            );
            let found = find("(415) 555-0102").await;
            assert!(
                found.contains("+14155550102") && !found.contains("+14155550101"),
                "{found}"
            );
            let found = find("415 555").await;
            assert_eq!(found.matches("+1415555010").count(), 3, "{found}");
            let found = find("+1 415 555 0103").await;
            assert!(
                found.contains("+14155550103") && !found.contains("+14155550101"),
                "{found}"
            );
            screenshots(&client, &format!("{shots}-contacts")).await;

            // From the group's page to the Send page, with the group chosen.
            client
                .goto(&format!("{base}/groups/{group_id}"))
                .await
                .unwrap();
            click(&client, &format!("a[href='/send?group={group_id}']")).await;
            let chosen = wait_for(&client, &format!("#to-{group_id}")).await;
            assert_eq!(
                chosen.prop("checked").await.unwrap().as_deref(),
                Some("true")
            );
            let label = text_of(&client, &format!("label[for='to-{group_id}']")).await;
            assert_eq!(label, "Regulars (3)");
            screenshots(&client, &format!("{shots}-empty")).await;

            // The summary follows the typing: Bob and Ada get it, the contact without a first
            // name is left out.
            fill(
                &client,
                "#body",
                "Hi ${first_name}, our doors open at 9 — see you!",
            )
            .await;
            client
                .wait()
                .at_most(std::time::Duration::from_secs(20))
                .for_element(Locator::XPath(
                    "//strong[@id='summary-recipients' and text()='2']",
                ))
                .await
                .unwrap();
            let summary = text_of(&client, "#send-summary").await;
            assert!(
                summary.contains("1 without a value for a placeholder"),
                "{summary}"
            );
            assert!(summary.contains("Hi Ada, our doors open at 9"), "{summary}");
            assert_eq!(text_of(&client, "#summary-parts").await, "1");
            // The dash is not GSM-7: Unicode, unless swapped.
            assert!(
                text_of(&client, "#summary-encoding")
                    .await
                    .starts_with("Unicode")
            );
            wait_for(&client, "#encoding")
                .await
                .select_by_value("smart")
                .await
                .unwrap();
            client
                .wait()
                .at_most(std::time::Duration::from_secs(20))
                .for_element(Locator::XPath(
                    "//dd[@id='summary-encoding' and starts-with(text(), 'GSM-7')]",
                ))
                .await
                .unwrap();
            screenshots(&client, &format!("{shots}-summary")).await;

            // Send: the batch's page follows it to the end and lists its recipients.
            click(&client, "button[name=action][value=send]").await;
            client
                .wait()
                .at_most(std::time::Duration::from_secs(30))
                .for_element(Locator::XPath(
                    "//span[@id='batch-status' and text()='Sent']",
                ))
                .await
                .unwrap();
            assert!(path(&client).await.starts_with("/batches/"));
            assert_eq!(text_of(&client, "[data-state=sent] strong").await, "2");
            assert_eq!(text_of(&client, "[data-state=skipped] strong").await, "1");
            let recipients = text_of(&client, "#recipients-table tbody").await;
            assert!(recipients.contains("+14155550101 Sent"), "{recipients}");
            assert!(
                recipients
                    .contains("+14155550103 Left out no value for a placeholder (first_name)"),
                "{recipients}"
            );
            wait_for(&client, "a[href$='/recipients.csv']").await;
            screenshots(&client, &format!("{shots}-batch")).await;

            // Tomorrow, then canceled.
            click(&client, "a[href='/send']").await;
            click(&client, &format!("#to-{group_id}")).await;
            fill(&client, "#body", "Sale tomorrow").await;
            click(&client, "#when-later").await;
            // The browser's own date control takes typing in its locale's order: set its value.
            let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1))
                .format("%Y-%m-%dT09:30")
                .to_string();
            client
                .execute(
                    "document.getElementById('send_at').value = arguments[0];",
                    vec![Value::String(tomorrow)],
                )
                .await
                .unwrap();
            fill(&client, "#time_zone", "Europe/London").await;
            click(&client, "button[name=action][value=send]").await;
            assert_eq!(text_of(&client, "#batch-status").await, "Scheduled");
            screenshots(&client, &format!("{shots}-scheduled")).await;
            click(&client, "button[data-confirm]").await;
            client.accept_alert().await.unwrap();
            let note = text_of(&client, "p.success").await;
            assert_eq!(note, "The batch was canceled.");
            assert_eq!(text_of(&client, "#batch-status").await, "Canceled");

            click(&client, "a[href='/batches']").await;
            let list = text_of(&client, "#batches-table").await;
            assert!(list.contains("Sale tomorrow"), "{list}");
            assert!(list.contains("Canceled"), "{list}");
            assert!(list.contains("Regulars"), "{list}");
            screenshots(&client, &format!("{shots}-batches")).await;
            // Filtered by status: the canceled one alone, and none sending.
            choose(&client, "#status", "canceled").await;
            click(&client, "form.search button[type=submit]").await;
            client
                .wait()
                .for_element(Locator::Css("#status option[value=canceled][selected]"))
                .await
                .unwrap();
            let rows = client
                .find_all(Locator::Css("#batches-table tbody tr"))
                .await
                .unwrap();
            assert_eq!(rows.len(), 1);
            choose(&client, "#status", "sending").await;
            click(&client, "form.search button[type=submit]").await;
            let none = text_of(&client, "main > p").await;
            assert_eq!(none, "No batch is sending.");
        })
        .await;
}

/// A group's page as an operator meets it: a refused addition keeps the other forms as stored;
/// pasted rows add what is valid and list the rest by line (from 1); members that come through
/// a child group say so instead of offering a Remove that cannot work; the child-group picker
/// leaves out the group's parent; deleting asks first, says what happened with an undo, and a
/// deleted group's page is read-only with Restore at the top.
async fn operator_manages_a_group(backend: Backend) {
    let Some((browser, server)) = browser_and_server(backend, false).await else {
        return;
    };
    let base = server.base.clone();
    let token = server.token.clone();
    let api = reqwest::Client::new();
    let create = |body: Value| {
        let request = api
            .post(format!("{base}/api/contactgroups"))
            .bearer_auth(&token)
            .json(&body);
        async move {
            let created: Value = request.send().await.unwrap().json().await.unwrap();
            created["id"].as_str().unwrap().to_owned()
        }
    };
    let child = create(serde_json::json!({"name": "Walk-ins", "members": ["+14155550109"]})).await;
    let parent = create(
        serde_json::json!({"name": "Everyone", "child_groups": [child],
        "auto_update": {"to": "12345", "add": {"first_word": "JOIN"}}}),
    )
    .await;
    let leeds = reqwest::Client::new()
        .post(format!("{base}/api/contacts"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"phone": "+14155550120", "fields": {"city": "Leeds"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(leeds.status(), 201);
    let name = format!("operator_manages_a_group_{backend:?}");
    let shots = format!("group_{backend:?}").to_lowercase();
    browser
        .run(&name, |client| async move {
            sign_in_browser(&client, &base, &token).await;
            client
                .goto(&format!("{base}/groups/{parent}"))
                .await
                .unwrap();

            // A bad number alone: refused by line, every other form as stored.
            fill(&client, "#numbers", "555-1234").await;
            click(&client, "form:has(input[value=add]) button[type=submit]").await;
            let refused = text_of(&client, "#add-refused").await;
            assert!(refused.contains("Line 1: 555-1234"), "{refused}");
            let value = |css: &'static str| {
                let client = client.clone();
                async move {
                    wait_for(&client, css)
                        .await
                        .prop("value")
                        .await
                        .unwrap()
                        .unwrap_or_default()
                }
            };
            assert_eq!(value("#name").await, "Everyone");
            assert_eq!(value("#add_first_word").await, "JOIN");
            assert_eq!(value("#to").await, "12345");

            // Rows pasted from a spreadsheet and numbers on one line: the good ones are added.
            // As a paste puts it there (typing a tab would move to the next field).
            client
                .execute(
                    "document.getElementById('numbers').value = arguments[0];",
                    vec![Value::String(
                        "+14155550101\tAda\n555-1234\n+14155550102 +14155550103".into(),
                    )],
                )
                .await
                .unwrap();
            click(&client, "form:has(input[value=add]) button[type=submit]").await;
            let added = text_of(&client, "#added-note").await;
            assert!(added.starts_with("Added 3 numbers."), "{added}");
            let refused = text_of(&client, "#add-refused").await;
            assert!(refused.contains("Line 2: 555-1234"), "{refused}");
            assert_eq!(value("#numbers").await, "555-1234");
            assert_eq!(text_of(&client, "#group-size").await, "4");

            // The child group's member is marked, with no Remove.
            let members = text_of(&client, "#members-table tbody").await;
            let inherited = members
                .lines()
                .find(|row| row.starts_with("+14155550109"))
                .unwrap_or_default();
            assert!(inherited.ends_with("through Walk-ins"), "{members}");
            let removes = client
                .find_all(Locator::Css(
                    "#members-table button[aria-label='Remove +14155550109']",
                ))
                .await
                .unwrap();
            assert!(removes.is_empty());
            // The id an API caller needs, with a button to copy it.
            let copy = wait_for(&client, "button[data-copy]").await;
            assert!(copy.is_displayed().await.unwrap());
            assert_eq!(
                copy.attr("data-copy").await.unwrap().as_deref(),
                Some(parent.as_str())
            );
            screenshots(&client, &format!("{shots}-page")).await;

            // Members sort by when they became contacts, newest first and then oldest: the
            // child group's member came first.
            let first_member = |client: Client| async move {
                text_of(
                    &client,
                    "#members-table tbody tr:first-child td:first-child",
                )
                .await
            };
            click(&client, "#members-table th a[href*='sort=created_at']").await;
            client
                .wait()
                .for_element(Locator::Css("#members-table th[aria-sort=descending]"))
                .await
                .unwrap();
            assert_ne!(first_member(client.clone()).await, "+14155550109");
            click(&client, "#members-table th a[href*='sort=created_at']").await;
            client
                .wait()
                .for_element(Locator::Css("#members-table th[aria-sort=ascending]"))
                .await
                .unwrap();
            assert_eq!(first_member(client.clone()).await, "+14155550109");

            // A smart group from the list's form: its rule says what it matches as it is typed,
            // and where it goes wrong.
            client.goto(&format!("{base}/groups")).await.unwrap();
            fill(&client, "#name", "Leeds people").await;
            fill(&client, "#rule", "fields.city ==").await;
            let error = text_of(&client, "#rule-check .rule-error").await;
            assert!(error.contains("at character"), "{error}");
            assert!(error.contains('^'), "{error}");
            fill(&client, "#rule", "fields.city = \"Leeds\"").await;
            client
                .wait()
                .for_element(Locator::XPath(
                    "//p[contains(@class, 'rule-count')]/strong[text()='1']",
                ))
                .await
                .unwrap();
            screenshots(&client, &format!("{shots}-smart-new")).await;
            click(
                &client,
                "form[method=post][action='/groups'] button[type=submit]",
            )
            .await;
            client
                .wait()
                .for_element(Locator::XPath("//h1[text()='Leeds people']"))
                .await
                .unwrap();
            assert_eq!(text_of(&client, "#group-size").await, "1");
            wait_for(&client, "form:has(input[value=rule]) #rule").await;

            // The list sorts by a column header, both ways, and keeps the sort when its page
            // size changes.
            client.goto(&format!("{base}/groups")).await.unwrap();
            click(&client, "th a.sort[href*='sort=size']").await;
            client
                .wait()
                .for_element(Locator::Css(
                    "th[aria-sort=descending] a[href*='sort=size']",
                ))
                .await
                .unwrap();
            let first = text_of(&client, "main table tbody tr:first-child td:first-child").await;
            assert_eq!(first, "Everyone");
            click(&client, "th a.sort[href*='sort=size']").await;
            client
                .wait()
                .for_element(Locator::Css("th[aria-sort=ascending] a[href*='sort=size']"))
                .await
                .unwrap();
            let first = text_of(&client, "main table tbody tr:first-child td:first-child").await;
            assert_ne!(first, "Everyone");
            wait_for(&client, "#list-size")
                .await
                .select_by_value("25")
                .await
                .unwrap();
            click(&client, "form.list-controls button").await;
            client
                .wait()
                .for_element(Locator::Css("#list-size option[value='25'][selected]"))
                .await
                .unwrap();
            let address = client.current_url().await.unwrap();
            assert!(address.as_str().contains("sort=size"), "{address}");
            assert!(address.as_str().contains("size=25"), "{address}");

            // A second group of a taken name is made only when asked twice, and the pickers tell
            // the two apart; the list says what kind each group is.
            client.goto(&format!("{base}/groups")).await.unwrap();
            let list = text_of(&client, "main table tbody").await;
            assert!(
                list.contains("Everyone\nNested") || list.contains("Everyone Nested"),
                "{list}"
            );
            fill(&client, "#name", "walk-ins").await;
            click(
                &client,
                "form[method=post][action='/groups'] button[type=submit]",
            )
            .await;
            let warning = text_of(&client, "div.problem").await;
            assert!(
                warning.contains("A group named “Walk-ins” already exists."),
                "{warning}"
            );
            click(
                &client,
                "form[method=post][action='/groups'] button[type=submit]",
            )
            .await;
            client
                .wait()
                .for_element(Locator::XPath("//h1[text()='walk-ins']"))
                .await
                .unwrap();
            client.goto(&format!("{base}/send")).await.unwrap();
            let choices = text_of(&client, "fieldset .choices").await;
            assert_eq!(choices.matches("members, created").count(), 2, "{choices}");

            // The child's picker does not offer its parent.
            client
                .goto(&format!("{base}/groups/{child}"))
                .await
                .unwrap();
            let offered = client
                .find_all(Locator::Css(&format!("#child option[value='{parent}']")))
                .await
                .unwrap();
            assert!(offered.is_empty(), "the parent is offered as a child");

            // Delete asks first; dismissed, nothing happens.
            client
                .goto(&format!("{base}/groups/{parent}"))
                .await
                .unwrap();
            click(&client, "button.danger[data-confirm]").await;
            client.dismiss_alert().await.unwrap();
            assert_eq!(text_of(&client, "#group-status").await, "Active");
            click(&client, "button.danger[data-confirm]").await;
            client.accept_alert().await.unwrap();
            let note = text_of(&client, "form.undo").await;
            assert!(note.contains("The group “Everyone” was deleted."), "{note}");
            screenshots(&client, &format!("{shots}-deleted-list")).await;
            click(&client, "form.undo button").await;
            assert_eq!(
                text_of(&client, "p.success").await,
                "The group was restored."
            );
            assert_eq!(text_of(&client, "#group-status").await, "Active");

            // A deleted group's page: read-only, Restore at the top.
            click(&client, "button.danger[data-confirm]").await;
            client.accept_alert().await.unwrap();
            wait_for(&client, "form.undo").await;
            client
                .goto(&format!("{base}/groups/{parent}"))
                .await
                .unwrap();
            assert_eq!(text_of(&client, "h1").await, "Everyone (deleted)");
            wait_for(&client, "form.restore button").await;
            for form in ["#name", "#numbers", "#to", "button.danger"] {
                let found = client.find_all(Locator::Css(form)).await.unwrap();
                assert!(found.is_empty(), "{form} on a deleted group's page");
            }
            screenshots(&client, &format!("{shots}-deleted")).await;
        })
        .await;
}

/// A contact from the list's form to its deletion: created, refused again as a duplicate with a
/// link to it, shown in words (no enum keys), custom fields added and changed, added to and
/// removed from a group, opted out on the page (and so recorded), deleted after a confirmation.
async fn operator_edits_a_contact(backend: Backend) {
    let Some((browser, server)) = browser_and_server(backend, false).await else {
        return;
    };
    let base = server.base.clone();
    let token = server.token.clone();
    let created = reqwest::Client::new()
        .post(format!("{base}/api/contactgroups"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "Regulars"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let name = format!("operator_edits_a_contact_{backend:?}");
    let shots = format!("contact_{backend:?}").to_lowercase();
    browser
        .run(&name, |client| async move {
            sign_in_browser(&client, &base, &token).await;

            client.goto(&format!("{base}/contacts")).await.unwrap();
            fill(&client, "#phone", "(415) 555-0142").await;
            fill(&client, "#first_name", "Cy").await;
            click(
                &client,
                "form[method=post][action='/contacts'] button[type=submit]",
            )
            .await;
            client
                .wait()
                .for_element(Locator::XPath("//h1[starts-with(text(), '+14155550142')]"))
                .await
                .unwrap();
            let page = path(&client).await;
            let facts = text_of(&client, "dl.facts").await;
            assert!(facts.contains("Mobile or landline"), "{facts}");
            assert!(!facts.contains("fixed_line_or_mobile"), "{facts}");

            // The same number again: refused, with a way to the contact that has it.
            client.goto(&format!("{base}/contacts")).await.unwrap();
            fill(&client, "#phone", "+14155550142").await;
            click(
                &client,
                "form[method=post][action='/contacts'] button[type=submit]",
            )
            .await;
            let problem = text_of(&client, "section div.problem").await;
            assert!(
                problem.contains("This number is already a contact's."),
                "{problem}"
            );
            click(&client, "section div.problem a").await;
            wait_for(&client, "#custom-fields").await;
            assert_eq!(path(&client).await, page);

            // Into a group; a custom field added; out of the group; the field changed and the
            // contact opted out here, which its history says in words. Each step's note tells
            // its page from the one before.
            click(
                &client,
                "form:has(input[value=add_to_group]) button[type=submit]",
            )
            .await;
            note(&client, "Added to “Regulars”.").await;
            let groups = text_of(&client, "#contact-group-list").await;
            assert!(groups.starts_with("Regulars"), "{groups}");
            fill(&client, "#new_field", "city").await;
            fill(&client, "#new_value", "Leeds").await;
            click(&client, "form:has(input[value=save]) button[type=submit]").await;
            note(&client, "Saved.").await;
            screenshots(&client, &format!("{shots}-page")).await;
            click(&client, "#contact-group-list button").await;
            note(&client, "Removed from “Regulars”.").await;
            fill(&client, "#field-city", "York").await;
            click(&client, "#opted_out").await;
            click(&client, "form:has(input[value=save]) button[type=submit]").await;
            client
                .wait()
                .for_element(Locator::XPath("//td[text()='On this page']"))
                .await
                .unwrap();
            let history = text_of(&client, "section[aria-labelledby=consent] tbody").await;
            assert!(history.contains("Opted out On this page"), "{history}");
            let city = wait_for(&client, "#field-city").await;
            assert_eq!(city.prop("value").await.unwrap().as_deref(), Some("York"));

            // Deleted after a confirmation.
            click(&client, "button.danger[data-confirm]").await;
            client.accept_alert().await.unwrap();
            note(&client, "The contact +14155550142 was deleted.").await;
            screenshots(&client, &format!("{shots}-list")).await;
        })
        .await;
}

/// A group's size, read through the API.
async fn group_size(base: &str, token: &str, group: &str) -> i64 {
    let group: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/api/contactgroups/{group}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    group["size"].as_i64().unwrap()
}

/// Chooses `value` in the drop-down `css`.
async fn choose(client: &Client, css: &str, value: &str) {
    wait_for(client, css)
        .await
        .select_by_value(value)
        .await
        .unwrap_or_else(|error| panic!("{css} has no {value:?}: {error}"));
}

/// Ticked rows and a whole search: into a group, a refusal that keeps the choices, opted out,
/// exported, deleted after a confirmation.
async fn operator_acts_on_many_contacts(backend: Backend) {
    let Some((browser, server)) = browser_and_server(backend, false).await else {
        return;
    };
    let base = server.base.clone();
    let token = server.token.clone();
    let api = reqwest::Client::new();
    let group: serde_json::Value = api
        .post(format!("{base}/api/contactgroups"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "Regulars"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let group_id = group["id"].as_str().unwrap().to_owned();
    for n in 0..20 {
        let last = if n < 12 { "Smith" } else { "Jones" };
        let created = api
            .post(format!("{base}/api/contacts"))
            .bearer_auth(&token)
            .json(&serde_json::json!({
                "phone": format!("+1415555{:04}", 100 + n),
                "first_name": format!("P{n}"),
                "last_name": last,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
    }
    let name = format!("operator_acts_on_many_contacts_{backend:?}");
    let shots = format!("bulk_{backend:?}").to_lowercase();
    let (browser_base, browser_token, browser_group) =
        (base.clone(), token.clone(), group_id.clone());
    browser
        .run(&name, |client| async move {
            let (base, token, group_id) = (browser_base, browser_token, browser_group);
            sign_in_browser(&client, &base, &token).await;
            client
                .goto(&format!("{base}/contacts?search=smith"))
                .await
                .unwrap();
            let caption = text_of(&client, "#contacts-table caption").await;
            assert_eq!(caption, "12 shown of 12");

            // Two ticked rows into the group.
            let boxes = client
                .find_all(Locator::Css("td.tick input[type=checkbox]"))
                .await
                .unwrap();
            boxes[0].click().await.unwrap();
            boxes[1].click().await.unwrap();
            choose(&client, "#bulk-action", "add").await;
            choose(&client, "#bulk-group", &group_id).await;
            screenshots(&client, &format!("{shots}-ticked")).await;
            click(&client, "#bulk button[type=submit]").await;
            note(&client, "Added 2 contacts to “Regulars”.").await;
            assert_eq!(group_size(&base, &token, &group_id).await, 2);

            // Everyone the search finds, but no group chosen: refused at the field, the
            // choices kept.
            choose(&client, "#bulk-scope", "all").await;
            choose(&client, "#bulk-action", "add").await;
            click(&client, "#bulk button[type=submit]").await;
            let problem = text_of(&client, "#bulk .field-error").await;
            assert_eq!(problem, "Choose the group.");
            let scope = wait_for(&client, "#bulk-scope").await;
            assert_eq!(scope.prop("value").await.unwrap().as_deref(), Some("all"));
            let action = wait_for(&client, "#bulk-action").await;
            assert_eq!(action.prop("value").await.unwrap().as_deref(), Some("add"));
            screenshots(&client, &format!("{shots}-refused")).await;
            choose(&client, "#bulk-group", &group_id).await;
            click(&client, "#bulk button[type=submit]").await;
            note(
                &client,
                "Added 10 of the 12 contacts to “Regulars”; the others were in it already.",
            )
            .await;
            assert_eq!(group_size(&base, &token, &group_id).await, 12);

            // Opted out, all of them.
            choose(&client, "#bulk-scope", "all").await;
            choose(&client, "#bulk-action", "opt_out").await;
            click(&client, "#bulk button[type=submit]").await;
            note(&client, "Opted out 12 contacts.").await;
            let opted = text_of(&client, "#contacts-table tbody").await;
            assert_eq!(opted.matches("Yes").count(), 12, "{opted}");

            // Every row ticked by the header's box, exported.
            click(&client, "#tick-all").await;
            choose(&client, "#bulk-action", "export").await;
            click(&client, "#bulk button[type=submit]").await;
            wait_for(&client, "#export-done").await;
            let selection = text_of(&client, "#export-selection").await;
            assert_eq!(selection, "12 ticked contacts.");
            let done = text_of(&client, "#export-done").await;
            assert!(done.starts_with("12 contacts"), "{done}");
            screenshots(&client, &format!("{shots}-export")).await;
            client.goto(&format!("{base}/exports")).await.unwrap();
            let past = text_of(&client, "#exports-table tbody").await;
            assert!(
                past.starts_with("12 ticked contacts CSV Ready 12"),
                "{past}"
            );
            screenshots(&client, &format!("{shots}-exports-list")).await;

            // Deleted after the confirmation page.
            client
                .goto(&format!("{base}/contacts?search=smith"))
                .await
                .unwrap();
            choose(&client, "#bulk-scope", "all").await;
            choose(&client, "#bulk-action", "delete").await;
            click(&client, "#bulk button[type=submit]").await;
            client
                .wait()
                .for_element(Locator::XPath("//h1[text()='Delete 12 contacts?']"))
                .await
                .unwrap();
            screenshots(&client, &format!("{shots}-confirm")).await;
            // A Smith who arrives while the page asks is not among those confirmed.
            let late = reqwest::Client::new()
                .post(format!("{base}/api/contacts"))
                .bearer_auth(&token)
                .json(&serde_json::json!({"phone": "+14155550199", "last_name": "Smith"}))
                .send()
                .await
                .unwrap();
            assert_eq!(late.status(), 201);
            click(&client, "button.danger").await;
            note(&client, "Deleted 12 contacts.").await;
            let rows = text_of(&client, "#contacts-table tbody").await;
            assert!(rows.starts_with("+14155550199"), "{rows}");
        })
        .await;
    assert_eq!(group_size(&base, &token, &group_id).await, 0);
    let left: serde_json::Value = api
        .get(format!("{base}/api/contacts?count=true"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(left["count"], 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_operator_acts_on_many_contacts_sqlite() {
    operator_acts_on_many_contacts(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_operator_acts_on_many_contacts_postgres() {
    operator_acts_on_many_contacts(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_operator_edits_a_contact_sqlite() {
    operator_edits_a_contact(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_operator_edits_a_contact_postgres() {
    operator_edits_a_contact(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_operator_manages_a_group_sqlite() {
    operator_manages_a_group(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_operator_manages_a_group_postgres() {
    operator_manages_a_group(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_operator_sends_to_a_group_sqlite() {
    operator_sends_to_a_group(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_operator_sends_to_a_group_postgres() {
    operator_sends_to_a_group(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_operator_imports_a_spreadsheet_sqlite() {
    operator_imports_a_spreadsheet(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_operator_imports_a_spreadsheet_postgres() {
    operator_imports_a_spreadsheet(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_refusals_are_shown_at_the_field_sqlite() {
    refusals_are_shown_at_the_field(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_refusals_are_shown_at_the_field_postgres() {
    refusals_are_shown_at_the_field(Backend::Postgres).await;
}
