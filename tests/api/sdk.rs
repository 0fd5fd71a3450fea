//! Sinch's own SDKs (PyPI `sinch`, npm `@sinch/sms`) pointed at the real server: every groups
//! operation through each, by the scripts in `tests/sdk/`.
//!
//! The SDKs come from the package registries. Where they cannot be installed the test is skipped
//! loudly, unless `ROSTER_REQUIRE_SDK=1` (CI sets it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::helpers::TestApp;
use crate::on_both_backends;

on_both_backends!(sinch_python_and_node_sdks_work);

const PYTHON_SDK: &str = "sinch==2.3.0";

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk")
}

/// Installs the SDKs once per test run; `Err` says why they are unavailable.
fn sdks_ready() -> Result<(), String> {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    READY
        .get_or_init(|| {
            let python_has_sdk = Command::new("python3")
                .args(["-c", "import sinch; assert sinch.__version__ == '2.3.0'"])
                .status()
                .is_ok_and(|s| s.success());
            if !python_has_sdk {
                let installed = Command::new("python3")
                    .args([
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        "--disable-pip-version-check",
                        PYTHON_SDK,
                    ])
                    .status()
                    .map_err(|e| format!("cannot run python3: {e}"))?;
                if !installed.success() {
                    return Err(format!("pip install {PYTHON_SDK} failed"));
                }
            }
            if !sdk_dir().join("node_modules/@sinch/sms").exists() {
                let installed = Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund"])
                    .current_dir(sdk_dir())
                    .status()
                    .map_err(|e| format!("cannot run npm: {e}"))?;
                if !installed.success() {
                    return Err("npm ci in tests/sdk failed".into());
                }
            }
            Ok(())
        })
        .clone()
}

async fn sinch_python_and_node_sdks_work(app: TestApp) {
    if let Err(reason) = sdks_ready() {
        if std::env::var("ROSTER_REQUIRE_SDK").is_ok_and(|v| v == "1") {
            panic!("the Sinch SDKs are required (ROSTER_REQUIRE_SDK=1) but unavailable: {reason}");
        }
        eprintln!("\n*** SKIPPED Sinch SDK test: {reason} ***\n");
        return;
    }
    for (program, script) in [("python3", "sinch_groups.py"), ("node", "sinch_groups.mjs")] {
        let address = app.address.clone();
        let plan = app.plan_id.clone();
        let token = app.token.clone();
        let script_path = sdk_dir().join(script);
        // The scripts block; the server runs on this test's runtime, so they run on another
        // thread.
        let output = tokio::task::spawn_blocking(move || {
            Command::new(program)
                .arg(script_path)
                .args([&address, &plan, &token])
                .output()
        })
        .await
        .expect("script thread")
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        assert!(
            output.status.success(),
            "{script} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // Each script sent a personalized batch with Sinch's `parameters`: send them and read what
    // each number got.
    let log = app.dir().join("sdk-messages.jsonl");
    let running = app.start_dispatcher(
        std::sync::Arc::new(roster::send::log::LogSender::open(&log).expect("log")),
        crate::helpers::quick_dispatch(),
    );
    let started = std::time::Instant::now();
    let personal = loop {
        let lines: Vec<roster::send::log::LogLine> = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .filter(|line: &roster::send::log::LogLine| {
                line.client_reference
                    .as_deref()
                    .is_some_and(|reference| reference.ends_with("-personal"))
            })
            .collect();
        if lines.len() >= 4 || started.elapsed() > std::time::Duration::from_secs(30) {
            break lines;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    running.stop().await;
    // The provider reports on the Python script's batch; the SDK reads the reports back.
    let python_batch = personal
        .iter()
        .find(|line| {
            line.client_reference
                .as_deref()
                .is_some_and(|r| r.starts_with("py-"))
        })
        .map(|line| line.batch_id.clone())
        .expect("the Python script's personalized batch was sent");
    for (number, status, code) in [
        ("+46701234501", "Delivered", 0),
        ("+46701234502", "Failed", 402),
    ] {
        let reported = app
            .send_json(
                reqwest::Method::POST,
                "/api/delivery-reports",
                &serde_json::json!({"type": "recipient_delivery_report_sms",
                    "batch_id": python_batch, "recipient": number, "code": code,
                    "status": status, "at": "2026-12-04T10:00:00Z"}),
            )
            .await;
        assert_eq!(reported.status(), 200);
    }
    let (address, plan, token) = (app.address.clone(), app.plan_id.clone(), app.token.clone());
    let script_path = sdk_dir().join("sinch_groups.py");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script_path)
            .args([&address, &plan, &token, "reports", &python_batch])
            .args(["+46701234501", "+46701234502"])
            .output()
    })
    .await
    .expect("script thread")
    .expect("run python3");
    assert!(
        output.status.success(),
        "reading delivery reports failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let mut got: Vec<(String, String)> = personal
        .into_iter()
        .map(|line| (line.to, line.body))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("+46701234501", "Hi Ann, your code is PY-1"),
            ("+46701234502", "Hi friend, your code is PY-1"),
            ("+46701234601", "Hi Ann, your code is JS-1"),
            ("+46701234602", "Hi friend, your code is JS-1"),
        ]
        .map(|(to, body)| (to.to_owned(), body.to_owned()))
    );
}
