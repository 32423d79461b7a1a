//! Headless Chromium driven over WebDriver (`chromedriver`, Debian's
//! `chromium-driver`) for the dashboard's test: start, navigate, wait for a
//! condition in the page, click, type, screenshots, the browser's console log
//! and the URLs the page loaded.

use crate::common::free_port;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

/// `name` on the PATH; fails the test (never skips it) when absent.
fn program(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not installed: the dashboard test needs Debian's `chromium` and \
                 `chromium-driver` (scripts/setup.sh installs them)"
            )
        })
}

/// chromedriver's legacy log endpoint: the browser's console (and network
/// errors, CSP refusals) since the last read.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({ "type": "browser" }).to_string()),
        )
    }
}

/// A browser session on the dashboard at `origin`.
pub struct Browser {
    pub client: Client,
    pub origin: String,
    driver: Child,
    /// chromedriver's port and the session's id, to end the session on drop.
    driver_port: u16,
    session: String,
    shots: PathBuf,
    /// Error lines of the console accepted so far (requests the test made fail on purpose).
    expected: Vec<String>,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium 1280 px wide.
    pub async fn start(origin: &str, shots: PathBuf) -> Browser {
        let chromium = program("chromium");
        let port = free_port();
        let driver = Command::new(program("chromedriver"))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let mut caps = Capabilities::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,1300", "--no-first-run", "--disable-extensions",
                         "--disable-background-networking", "--disable-component-update",
                         "--disable-sync", "--disable-default-apps", "--lang=en-US"],
            }),
        );
        caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
        let url = format!("http://127.0.0.1:{port}/");
        let deadline = Instant::now() + Duration::from_secs(60);
        let client = loop {
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("ui: waiting for chromedriver: {e}");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Err(e) => panic!("no WebDriver session on {url}: {e}"),
            }
        };
        std::fs::create_dir_all(&shots).expect("screenshot directory");
        let session = client.session_id().await.ok().flatten().unwrap_or_default();
        Browser {
            client,
            origin: origin.to_string(),
            driver,
            driver_port: port,
            session,
            shots,
            expected: Vec::new(),
        }
    }

    /// Opens the dashboard at `hash` (`#/tasks`, ...) and waits until the
    /// page has rendered it (`main[data-rendered]` names it).
    pub async fn open(&self, hash: &str) {
        let page = format!("{}/ui/", self.origin);
        let current = self.client.current_url().await.expect("url");
        if current.as_str().starts_with(&page) {
            let script = format!(
                "const h = {hash}; delete document.getElementById('main').dataset.rendered; \
                 if (location.hash === h) window.dispatchEvent(new HashChangeEvent('hashchange')); \
                 else location.hash = h; return 1",
                hash = js_str(hash)
            );
            self.js(&script).await;
        } else {
            self.client
                .goto(&format!("{page}{hash}"))
                .await
                .expect("navigate");
        }
        let rendered = format!(
            "return document.getElementById('main')?.dataset.rendered === {}",
            js_str(hash)
        );
        self.wait(
            &format!("{hash} rendered"),
            &rendered,
            Duration::from_secs(20),
        )
        .await;
    }

    /// Runs `script` (a function body: `return ...`) in the page.
    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Polls `script` until it returns something truthy (within `within`), and
    /// returns that; on time-out, saves a screenshot and fails naming `what`.
    pub async fn wait(&self, what: &str, script: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let v = self
                .client
                .execute(script, vec![])
                .await
                .unwrap_or(Value::Null);
            let truthy =
                !matches!(&v, Value::Null | Value::Bool(false)) && v != json!(0) && v != json!("");
            if truthy {
                return v;
            }
            if Instant::now() > deadline {
                self.shot(&format!("failed-{}", what.replace(' ', "-")))
                    .await;
                let page = self
                    .js("return document.getElementById('main').innerText")
                    .await;
                panic!("timed out after {within:?} waiting for: {what} (last value {v})\npage:\n{page}");
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Waits for the element at `css` and clicks it.
    pub async fn click(&self, css: &str) {
        self.wait(
            &format!("{css} to appear"),
            &format!("return document.querySelector({})", js_str(css)),
            Duration::from_secs(20),
        )
        .await;
        let element = self.client.find(Locator::Css(css)).await.expect("element");
        element
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Focuses the element at `css` and presses Enter (keyboard actions, as
    /// a person would), until `done` (a script) holds; a page re-rendering
    /// meanwhile takes the focus away, so this tries a few times.
    pub async fn press_enter(&self, css: &str, done: &str) {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        let enter = char::from(fantoccini::key::Key::Enter);
        let focus = format!(
            "const e = document.querySelector({}); if (e) e.focus(); return !!e && document.activeElement === e",
            js_str(css)
        );
        for _ in 0..5 {
            if self.js(&focus).await == json!(true) {
                let keys = KeyActions::new("keyboard".into())
                    .then(KeyAction::Down { value: enter })
                    .then(KeyAction::Up { value: enter });
                self.client
                    .perform_actions(keys)
                    .await
                    .expect("press Enter");
                let waited = Instant::now() + Duration::from_secs(3);
                while Instant::now() < waited {
                    if self.js(done).await == json!(true) {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        self.shot("failed-press-enter").await;
        panic!("Enter on {css} never led to: {done}");
    }

    /// Replaces the text of the field at `css` with `text`, as typed.
    pub async fn fill(&self, css: &str, text: &str) {
        let element = self
            .client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("field {css}: {e}"));
        element.clear().await.expect("clear");
        element.send_keys(text).await.expect("type");
    }

    /// Saves a screenshot of the viewport as `<name>.png`.
    pub async fn shot(&self, name: &str) {
        match self.client.screenshot().await {
            Ok(png) => {
                let path = self.shots.join(format!("{name}.png"));
                std::fs::write(&path, png).expect("write screenshot");
                eprintln!("ui: screenshot {}", path.display());
            }
            Err(e) => eprintln!("ui: no screenshot {name}: {e}"),
        }
    }

    /// Accepts console errors naming `fragment` (a request failed on purpose).
    pub fn expect_error(&mut self, fragment: &str) {
        self.expected.push(fragment.to_string());
    }

    /// Fails on any console error (SEVERE) since the last check that was not expected.
    pub async fn assert_no_console_errors(&self, context: &str) {
        let log = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("browser log");
        let errors: Vec<String> = log
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .filter(|m| !self.expected.iter().any(|x| m.contains(x.as_str())))
            .collect();
        assert!(errors.is_empty(), "console errors {context}: {errors:#?}");
    }

    /// Every URL the page has loaded (document and resources) not on the origin.
    pub async fn outside_requests(&self) -> Vec<String> {
        let urls = self
            .js("return [location.href, ...performance.getEntriesByType('resource').map(e => e.name)]")
            .await;
        urls.as_array()
            .into_iter()
            .flatten()
            .filter_map(|u| u.as_str())
            .filter(|u| !u.starts_with(&format!("{}/", self.origin)))
            .map(str::to_string)
            .collect()
    }

    /// Ends the browser session and chromedriver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        self.session.clear();
    }
}

impl Drop for Browser {
    /// Ends the session (chromedriver then quits the browser, also when the
    /// test failed half-way), then chromedriver.
    fn drop(&mut self) {
        use std::io::{Read, Write};
        if self.session.is_empty() {
            let _ = self.driver.kill();
            let _ = self.driver.wait();
            return;
        }
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.driver_port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let request = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
                self.session, self.driver_port
            );
            if stream.write_all(request.as_bytes()).is_ok() {
                // chromedriver answers once the browser has quit; the
                // connection may stay open after the answer.
                let (mut seen, mut chunk) = (Vec::new(), [0u8; 4096]);
                while let Ok(n @ 1..) = stream.read(&mut chunk) {
                    seen.extend_from_slice(&chunk[..n]);
                    if seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// `s` as a JavaScript string literal.
pub fn js_str(s: &str) -> String {
    Value::from(s).to_string()
}
