//! A real headless Chromium driven over the Chrome DevTools Protocol (a
//! WebSocket, through the tokio-tungstenite the tests already use), for the
//! page tests.
//!
//! The browser can reach loopback only: every host name resolves to nothing
//! except 127.0.0.1, and everything that would leave the machine goes to a
//! proxy on a closed loopback port (Chromium never proxies loopback). So a
//! page that needs the internet fails here as it would offline, and the
//! `Network.requestWillBeSent` events recorded for each page say what it
//! tried to fetch.
//!
//! Chromium missing is a test failure that says what to install, never a
//! skip: a green run must mean the pages were really rendered.

#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::{tungstenite::Message, MaybeTlsStream, WebSocketStream};

/// How long one CDP command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The Chromium binary: `XCORE_TEST_CHROMIUM`, else `chromium` or
/// `chromium-browser` on the PATH.
fn chromium_binary() -> String {
    if let Ok(path) = std::env::var("XCORE_TEST_CHROMIUM") {
        return path;
    }
    for name in ["chromium", "chromium-browser"] {
        let found = std::env::var_os("PATH")
            .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()));
        if found {
            return name.to_string();
        }
    }
    panic!(
        "Chromium is not installed, and the page tests need a real browser: install it \
         with `apt-get install -y chromium chromium-driver` (Debian), or set \
         XCORE_TEST_CHROMIUM to a Chromium binary. .ci/run installs it."
    );
}

/// One headless Chromium with one page (tab).
pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    session: String,
    next_id: u64,
    /// Every CDP event received so far, oldest first.
    pub events: Vec<Value>,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    /// Starts Chromium (loopback-only network) and opens a blank page.
    pub async fn launch() -> Self {
        let binary = chromium_binary();
        let profile = tempfile::tempdir().expect("profile dir");
        let mut child = Command::new(&binary)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-default-apps",
                "--disable-sync",
                "--no-first-run",
                "--no-default-browser-check",
                "--metrics-recording-only",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--proxy-server=http://127.0.0.1:9",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start {binary} ({error}): install it with \
                     `apt-get install -y chromium chromium-driver`"
                )
            });
        let stderr = child.stderr.take().expect("stderr");
        let (found, endpoint) = std::sync::mpsc::channel();
        // Chromium prints its DevTools address on stderr; keep draining the
        // pipe afterwards so it never blocks on a full one.
        std::thread::spawn(move || {
            let mut sent = false;
            let mut early = Vec::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent {
                    if let Some(at) = line.find("ws://") {
                        let _ = found.send(Ok(line[at..].trim().to_string()));
                        sent = true;
                    } else {
                        early.push(line);
                    }
                }
            }
            if !sent {
                let _ = found.send(Err(early.join("\n")));
            }
        });
        // Generous: CI starts several browsers at once on two cores.
        let url = match endpoint.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(url)) => url,
            Ok(Err(output)) => panic!("Chromium exited before its DevTools were up:\n{output}"),
            Err(_) => panic!("Chromium did not announce its DevTools endpoint within 60 s"),
        };
        let (socket, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("connect to Chromium's DevTools");
        let mut browser = Self {
            child,
            _profile: profile,
            socket,
            session: String::new(),
            next_id: 1,
            events: Vec::new(),
        };
        let target = browser
            .browser_command("Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let target_id = target["targetId"].as_str().expect("targetId").to_string();
        let attached = browser
            .browser_command(
                "Target.attachToTarget",
                json!({"targetId": target_id, "flatten": true}),
            )
            .await;
        browser.session = attached["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_string();
        for domain in ["Page.enable", "Runtime.enable", "Network.enable"] {
            browser.command(domain, json!({})).await;
        }
        browser
    }

    async fn send(&mut self, method: &str, params: Value, session: Option<String>) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = Value::String(session);
        }
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("send CDP command");
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let frame = tokio::time::timeout(remaining, self.socket.next())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method} within {COMMAND_TIMEOUT:?}"))
                .expect("DevTools socket closed")
                .expect("DevTools socket error");
            let Message::Text(text) = frame else {
                continue;
            };
            let value: Value = serde_json::from_str(&text).expect("CDP JSON");
            if value["id"] == id {
                if let Some(error) = value.get("error") {
                    panic!("{method} failed: {error}");
                }
                return value["result"].clone();
            }
            if value.get("method").is_some() {
                self.events.push(value);
            }
        }
    }

    async fn browser_command(&mut self, method: &str, params: Value) -> Value {
        self.send(method, params, None).await
    }

    /// A CDP command on the page.
    pub async fn command(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.send(method, params, Some(session)).await
    }

    /// Opens `url` and waits for the document to finish loading.
    pub async fn goto(&mut self, url: &str) {
        let answer = self.command("Page.navigate", json!({"url": url})).await;
        if let Some(error) = answer.get("errorText").and_then(Value::as_str) {
            panic!("navigation to {url} failed: {error}");
        }
        self.wait_for(
            "document.readyState === 'complete'",
            Duration::from_secs(30),
        )
        .await;
    }

    /// Evaluates `expression` in the page (promises awaited) and returns
    /// its value.
    pub async fn eval(&mut self, expression: &str) -> Value {
        let answer = self
            .command(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        if let Some(exception) = answer.get("exceptionDetails") {
            panic!("evaluating {expression} threw: {exception}");
        }
        answer["result"]["value"].clone()
    }

    /// Polls `condition` (a JavaScript expression) until it is true; panics
    /// with the page's text after `timeout`.
    pub async fn wait_for(&mut self, condition: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.eval(&format!("Boolean({condition})")).await == Value::Bool(true) {
                return;
            }
            if Instant::now() > deadline {
                let text = self
                    .eval("document.body ? document.body.innerText.slice(0, 3000) : ''")
                    .await;
                panic!(
                    "timed out after {timeout:?} waiting for `{condition}`; the page shows:\n{}",
                    text.as_str().unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Types `text` into the element `selector` as keyboard input.
    pub async fn type_into(&mut self, selector: &str, text: &str) {
        let focused = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({selector:?}); if (!e) return false; e.focus(); return document.activeElement === e; }})()"
            ))
            .await;
        assert_eq!(focused, Value::Bool(true), "cannot focus {selector}");
        self.command("Input.insertText", json!({"text": text}))
            .await;
    }

    /// Clicks the middle of the element `selector` with the mouse.
    pub async fn click(&mut self, selector: &str) {
        let point = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({selector:?}); if (!e) return null; e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
            ))
            .await;
        let (Some(x), Some(y)) = (point[0].as_f64(), point[1].as_f64()) else {
            panic!("no element {selector} to click");
        };
        for kind in ["mousePressed", "mouseReleased"] {
            self.command(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            )
            .await;
        }
    }

    /// Saves a PNG of the page as `<name>.png` in the directory named by
    /// `XCORE_TEST_SCREENSHOTS`, when it is set (to look at what a test
    /// saw); does nothing otherwise.
    pub async fn screenshot(&mut self, name: &str) {
        let Ok(dir) = std::env::var("XCORE_TEST_SCREENSHOTS") else {
            return;
        };
        use base64::Engine as _;
        let shot = self
            .command("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("screenshot base64");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png)
            .expect("write screenshot");
    }

    /// URLs of every request the page has started so far.
    pub fn requested_urls(&self) -> Vec<String> {
        self.events
            .iter()
            .filter(|event| event["method"] == "Network.requestWillBeSent")
            .filter_map(|event| event["params"]["request"]["url"].as_str())
            .map(str::to_string)
            .collect()
    }

    /// URLs of the requests the page's Content-Security-Policy stopped
    /// before they were sent.
    pub fn blocked_by_csp(&self) -> Vec<String> {
        let ids: Vec<&Value> = self
            .events
            .iter()
            .filter(|event| {
                event["method"] == "Network.loadingFailed"
                    && event["params"]["blockedReason"] == "csp"
            })
            .map(|event| &event["params"]["requestId"])
            .collect();
        self.events
            .iter()
            .filter(|event| {
                event["method"] == "Network.requestWillBeSent"
                    && ids.contains(&&event["params"]["requestId"])
            })
            .filter_map(|event| event["params"]["request"]["url"].as_str())
            .map(str::to_string)
            .collect()
    }

    /// Requests that failed, with Chromium's reason.
    pub fn failed_requests(&self) -> Vec<String> {
        self.events
            .iter()
            .filter(|event| event["method"] == "Network.loadingFailed")
            .map(|event| event["params"].to_string())
            .collect()
    }
}
