//! Headless Chromium driven through chromedriver (WebDriver), for the web page's end-to-end
//! tests. Without Chromium and chromedriver the tests are skipped with a loud message, unless
//! `ROSTER_REQUIRE_BROWSER=1` (CI sets it), which turns the skip into a failure.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;

use crate::helpers::free_port;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A chromedriver process and a browser session in it; both end when this is dropped.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn required() -> bool {
    std::env::var("ROSTER_REQUIRE_BROWSER").is_ok_and(|value| value == "1")
}

fn binary(env: &str, default: &str) -> Option<PathBuf> {
    let path = std::env::var_os(env).map_or_else(|| PathBuf::from(default), PathBuf::from);
    path.exists().then_some(path)
}

impl Browser {
    /// A fresh headless Chromium, or `None` (with a loud message) where there is none.
    pub async fn start() -> Option<Browser> {
        let (Some(chromium), Some(chromedriver)) = (
            binary("ROSTER_CHROMIUM", CHROMIUM),
            binary("ROSTER_CHROMEDRIVER", CHROMEDRIVER),
        ) else {
            assert!(
                !required(),
                "ROSTER_REQUIRE_BROWSER=1 but {CHROMIUM} or {CHROMEDRIVER} is missing \
                 (apt-get install chromium chromium-driver)"
            );
            eprintln!(
                "\n*** SKIPPED: browser tests need Chromium and chromedriver \
                 (apt-get install chromium chromium-driver) ***\n"
            );
            return None;
        };
        let port = free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().expect("browser profile directory");
        let options = serde_json::json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--no-first-run", "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        });
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            // chromedriver is on loopback: plain HTTP, no TLS stack needed.
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            let attempt = ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await;
            match attempt {
                Ok(client) => break client,
                Err(error) => {
                    assert!(
                        Instant::now() < deadline,
                        "chromedriver did not start: {error}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        Some(Browser {
            client,
            driver,
            _profile: profile,
        })
    }

    /// Runs `steps`; if they panic, saves a screenshot and the page's HTML under
    /// `target/browser-artifacts/NAME.*` before passing the panic on.
    pub async fn run<F>(self, name: &str, steps: impl FnOnce(Client) -> F)
    where
        F: std::future::Future<Output = ()>,
    {
        let outcome = std::panic::AssertUnwindSafe(steps(self.client.clone()))
            .catch_unwind()
            .await;
        if let Err(panic) = outcome {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-artifacts");
            let _ = std::fs::create_dir_all(&dir);
            if let Ok(png) = self.client.screenshot().await {
                let _ = std::fs::write(dir.join(format!("{name}.png")), png);
            }
            if let Ok(html) = self.client.source().await {
                let _ = std::fs::write(dir.join(format!("{name}.html")), html);
            }
            eprintln!("browser artefacts of {name} saved in {}", dir.display());
            let _ = self.client.clone().close().await;
            std::panic::resume_unwind(panic);
        }
        let _ = self.client.clone().close().await;
    }
}

/// Saves the page as it is at a desktop's width (1366×900) and a phone's (390×844) under
/// `target/browser-artifacts/NAME-desktop.png` and `NAME-phone.png`, to be looked at; the window
/// is left at the phone's size for a moment and then put back. A page longer than the screen is
/// taken whole (up to 6,000 pixels), so that what is below the fold is seen too.
pub async fn screenshots(client: &Client, name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-artifacts");
    std::fs::create_dir_all(&dir).expect("the artefacts directory");
    for (width, height, label) in [(1366, 900, "desktop"), (390, 844, "phone")] {
        client
            .set_window_size(width, height)
            .await
            .expect("resize the window");
        // The page lays itself out again at the new width after the resize returns.
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        let page_height = client
            .execute("return document.documentElement.scrollHeight;", vec![])
            .await
            .ok()
            .and_then(|height| height.as_u64())
            .unwrap_or(u64::from(height));
        if page_height > u64::from(height) {
            let whole = page_height.min(6000) as u32;
            client
                .set_window_size(width, whole)
                .await
                .expect("resize the window");
        }
        let png = client.screenshot().await.expect("a screenshot");
        std::fs::write(dir.join(format!("{name}-{label}.png")), png).expect("save a screenshot");
    }
    client
        .set_window_size(1280, 1000)
        .await
        .expect("resize the window");
}

/// Waits (20 s at most) for an element, and returns it.
pub async fn wait_for(client: &Client, css: &str) -> fantoccini::elements::Element {
    client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|error| panic!("no element {css}: {error}"))
}

/// The text of the element `css`.
pub async fn text_of(client: &Client, css: &str) -> String {
    wait_for(client, css)
        .await
        .text()
        .await
        .unwrap_or_else(|error| panic!("no text in {css}: {error}"))
}

/// The current address's path.
pub async fn path(client: &Client) -> String {
    client
        .current_url()
        .await
        .expect("current URL")
        .path()
        .to_owned()
}
