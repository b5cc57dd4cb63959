//! A small W3C WebDriver client for the end-to-end tests: a real headless Chromium, driven
//! through `chromedriver` (Debian's `chromium` and `chromium-driver`, installed by
//! `.ci/deps-browser.sh`).
//!
//! [`Browser::start`] runs `chromedriver` on a free loopback port as a child process, waits for
//! its `/status` to say it is ready, and opens one session of headless Chromium with a fresh
//! profile folder. The session speaks JSON over HTTP/1.1 (one connection per command, plain
//! `std::net::TcpStream`). Dropping the [`Browser`] ends the session, kills `chromedriver` and
//! removes the profile. A missing browser or driver is a panic that names the install script,
//! never a skipped test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

/// The key W3C WebDriver names an element reference by.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The longest a command may take (starting Chromium on a busy machine included).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);

/// A headless Chromium session behind its own `chromedriver`.
pub struct Browser {
    driver: Child,
    /// `127.0.0.1:PORT` of `chromedriver`.
    addr: String,
    session: String,
    profile: PathBuf,
}

/// An element of the current page, found by [`Browser::find`].
#[derive(Debug, Clone)]
pub struct Element {
    id: String,
}

/// Runs axe-core on the document (WCAG 2.x A and AA rules and best practices) and answers the
/// serious and critical violations.
const AXE_RUN: &str = "const done = arguments[arguments.length - 1];\
    window.axe.run(document, { resultTypes: ['violations'] })\
      .then(r => done(r.violations\
        .filter(v => v.impact === 'serious' || v.impact === 'critical')\
        .map(v => ({ id: v.id, impact: v.impact, help: v.help,\
          nodes: v.nodes.map(n => n.target.join(' ') + ': ' + n.failureSummary) }))))\
      .catch(e => done({ error: String(e) }));";

/// An executable on `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

impl Browser {
    /// Starts `chromedriver` and a headless Chromium session.
    pub fn start() -> Browser {
        let missing = |what: &str| {
            panic!(
                "{what} is not installed: run `bash .ci/deps-browser.sh` (Debian packages \
                 chromium and chromium-driver)"
            )
        };
        let chromium = on_path("chromium").unwrap_or_else(|| missing("chromium"));
        let chromedriver = on_path("chromedriver").unwrap_or_else(|| missing("chromedriver"));

        // Port 0: chromedriver picks a free port and says which on its first lines.
        let mut driver = Command::new(&chromedriver)
            .args(["--port=0", "--log-level=WARNING"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", chromedriver.display()));
        let out = driver.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let port = loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    if let Some(rest) = line.split("started successfully on port ").nth(1) {
                        break rest.trim_end_matches('.').trim().to_string();
                    }
                }
                Err(e) => {
                    let _ = driver.kill();
                    let _ = driver.wait();
                    panic!("chromedriver did not say which port it listens on: {e}");
                }
            }
        };
        let addr = format!("127.0.0.1:{port}");

        let profile =
            std::env::temp_dir().join(format!("patchday-chromium-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).unwrap();
        let mut browser = Browser {
            driver,
            addr,
            session: String::new(),
            profile,
        };

        // Ready when `/status` says so (it answers as soon as the port is bound).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = browser
                .http("GET", "/status", None)
                .map(|(_, v)| v["value"]["ready"] == true);
            if matches!(ready, Ok(true)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver at {} never became ready: {ready:?}",
                browser.addr
            );
            std::thread::sleep(Duration::from_millis(50));
        }

        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": chromium.display().to_string(),
                        "args": [
                            "--headless=new",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-dev-shm-usage",
                            "--window-size=1200,1000",
                            format!("--user-data-dir={}", browser.profile.display()),
                        ],
                    },
                },
            },
        });
        let created = browser.command("POST", "/session", Some(capabilities));
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {created}"))
            .to_string();
        browser
    }

    /// Opens `url` and waits for the page to load.
    pub fn navigate(&self, url: &str) {
        self.session_command("POST", "/url", Some(json!({ "url": url })));
    }

    /// Carries the session `cookie` (`patchday_session=VALUE`, e.g. [`crate::daemon::Daemon::cookie`])
    /// on `base` (`http://ADDR`) from now on: as if this browser had signed in.
    pub fn use_session(&self, base: &str, cookie: &str) {
        let (name, value) = cookie.split_once('=').expect("NAME=VALUE");
        self.navigate(&format!("{base}/healthz"));
        let cookie =
            json!({ "cookie": { "name": name, "value": value, "path": "/", "httpOnly": true } });
        self.session_command("POST", "/cookie", Some(cookie));
    }

    /// Signs in through a sign-in link (`http://ADDR/signin/TOKEN`) as a person does: opens it
    /// and clicks "Sign in"; waits for the overview.
    pub fn sign_in(&self, url: &str) {
        self.navigate(url);
        self.click(&self.find("form[method=post] button[type=submit]"));
        crate::daemon::poll(
            "the overview after signing in",
            Duration::from_secs(30),
            || self.title().starts_with("Overview").then_some(()),
        );
    }

    /// The URL of the current page.
    pub fn current_url(&self) -> String {
        self.string("GET", "/url", None)
    }

    /// The current page's `<title>`.
    pub fn title(&self) -> String {
        self.string("GET", "/title", None)
    }

    /// The current page's markup, as the browser serialises its DOM.
    pub fn source(&self) -> String {
        self.string("GET", "/source", None)
    }

    /// The first element matching the CSS `selector`; panics when there is none.
    pub fn find(&self, selector: &str) -> Element {
        let found = self.session_command(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": selector })),
        );
        element(&found)
    }

    /// Every element matching the CSS `selector`, in document order (maybe none).
    pub fn find_all(&self, selector: &str) -> Vec<Element> {
        let found = self.session_command(
            "POST",
            "/elements",
            Some(json!({ "using": "css selector", "value": selector })),
        );
        found
            .as_array()
            .unwrap_or_else(|| panic!("not a list of elements: {found}"))
            .iter()
            .map(element)
            .collect()
    }

    /// Clicks `element` as a person would (scrolled into view, at its centre); a click that
    /// submits a form waits for the next page to load.
    pub fn click(&self, element: &Element) {
        let path = format!("/element/{}/click", element.id);
        self.session_command("POST", &path, Some(json!({})));
    }

    /// Types `text` into `element` (a text field) as a person would (WebDriver Element Send Keys).
    pub fn type_text(&self, element: &Element, text: &str) {
        let path = format!("/element/{}/value", element.id);
        self.session_command("POST", &path, Some(json!({ "text": text })));
    }

    /// The rendered text of `element` (what a person reads, not the markup).
    pub fn text(&self, element: &Element) -> String {
        self.string("GET", &format!("/element/{}/text", element.id), None)
    }

    /// Runs `script` (a function body; `return` gives the value) in the page: its value.
    pub fn execute(&self, script: &str) -> Value {
        self.session_command(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// Runs `script` (a function body) in the page as an asynchronous script: it calls its last
    /// argument with the value to return.
    pub fn execute_async(&self, script: &str) -> Value {
        self.session_command(
            "POST",
            "/execute/async",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// The current page's accessibility violations of impact `serious` or `critical`, as
    /// axe-core finds them: axe.min.js (`tests/axe/node_modules`, installed by
    /// `.ci/deps-axe.sh`) is injected through WebDriver's execute script, which the page's
    /// Content-Security-Policy does not govern (the page itself still runs no inline script).
    /// Each violation is `{id, impact, help, nodes: ["selector: why", ...]}`.
    pub fn axe_violations(&self) -> Vec<Value> {
        let file = crate::repo_root().join("tests/axe/node_modules/axe-core/axe.min.js");
        let axe = std::fs::read_to_string(&file).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (install axe-core: bash .ci/deps-axe.sh)",
                file.display()
            )
        });
        let loaded = self.execute(&format!("{axe}\n;return typeof window.axe;"));
        assert_eq!(loaded, "object", "axe-core did not load in the page");
        let found = self.execute_async(AXE_RUN);
        assert!(found["error"].is_null(), "axe-core failed: {found}");
        found
            .as_array()
            .unwrap_or_else(|| panic!("not a list of violations: {found}"))
            .clone()
    }

    /// A screenshot of the viewport, as PNG bytes.
    pub fn screenshot(&self) -> Vec<u8> {
        let encoded = self.string("GET", "/screenshot", None);
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("the screenshot is base64")
    }

    /// Saves a screenshot of the viewport as the PNG file `path`; returns its bytes.
    pub fn save_screenshot(&self, path: &Path) -> Vec<u8> {
        let png = self.screenshot();
        std::fs::write(path, &png)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        png
    }

    /// A command of this session whose value is a string.
    fn string(&self, method: &str, path: &str, body: Option<Value>) -> String {
        let value = self.session_command(method, path, body);
        value
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path}: not a string: {value}"))
            .to_string()
    }

    /// A command of this session (`/session/{id}{path}`): its `value`.
    fn session_command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        self.command(method, &path, body)
    }

    /// A WebDriver command: its `value`; panics with the driver's error when it fails.
    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, answer) = self
            .http(method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path}: chromedriver does not answer: {e}"));
        let value = answer["value"].clone();
        if status != 200 {
            panic!(
                "{method} {path}: {status} {}: {}",
                value["error"].as_str().unwrap_or("?"),
                value["message"].as_str().unwrap_or(&answer.to_string())
            );
        }
        value
    }

    /// One HTTP/1.1 exchange with chromedriver: (status, JSON body).
    fn http(&self, method: &str, path: &str, body: Option<Value>) -> std::io::Result<(u16, Value)> {
        let mut stream = TcpStream::connect(&self.addr)?;
        stream.set_read_timeout(Some(COMMAND_TIMEOUT))?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Accept: application/json\r\n",
            addr = self.addr
        );
        if method != "GET" && method != "DELETE" {
            request.push_str(&format!(
                "Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        request.push_str("\r\n");
        request.push_str(&body);
        stream.write_all(request.as_bytes())?;
        // chromedriver keeps the connection open whatever `Connection` says: read until the
        // response is whole by its own framing.
        let mut response = Vec::new();
        let mut buffer = [0u8; 64 * 1024];
        loop {
            let read = stream.read(&mut buffer)?;
            response.extend_from_slice(&buffer[..read]);
            if read == 0 {
                return parse_response(&response, true).unwrap_or_else(|| {
                    Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the connection closed mid-response",
                    ))
                });
            }
            if let Some(parsed) = parse_response(&response, false) {
                return parsed;
            }
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = format!("/session/{}", self.session);
            let _ = self.http("DELETE", &path, None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// An element reference from a find command's value.
fn element(value: &Value) -> Element {
    let id = value[ELEMENT_KEY]
        .as_str()
        .unwrap_or_else(|| panic!("not an element reference: {value}"));
    Element { id: id.to_string() }
}

/// An HTTP/1.1 response read so far: `None` while incomplete, else its status and JSON body.
/// The body is framed by `Content-Length`, by chunks, or (when `closed`) by the end of the
/// stream.
fn parse_response(response: &[u8], closed: bool) -> Option<std::io::Result<(u16, Value)>> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let split = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    let body = &response[split + 4..];
    let Some(status) = head.split(' ').nth(1).and_then(|s| s.parse().ok()) else {
        return Some(Err(bad("no status")));
    };
    let header = |name: &str| {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.trim() == name)
            .map(|(_, v)| v.trim().to_string())
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        dechunk(body)?
    } else if let Some(length) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.get(..length)?.to_vec()
    } else if closed {
        body.to_vec()
    } else {
        return None;
    };
    Some(
        serde_json::from_slice(&body)
            .map(|value| (status, value))
            .map_err(|e| bad(&format!("not JSON: {e}"))),
    )
}

/// A `Transfer-Encoding: chunked` body, joined; `None` until its last chunk is there.
fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_framed_by_length_chunks_or_the_end() {
        let parse = |bytes: &[u8], closed| parse_response(bytes, closed).map(|r| r.unwrap());
        let sized = b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n{\"value\":null}";
        assert_eq!(parse(sized, false), Some((200, json!({"value": null}))));
        assert_eq!(parse(&sized[..sized.len() - 1], false), None);
        let chunked =
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n";
        assert_eq!(parse(chunked, false), Some((404, json!({"a": 1}))));
        assert_eq!(parse(&chunked[..chunked.len() - 5], false), None);
        let unframed = b"HTTP/1.1 200 OK\r\n\r\n[1,2]";
        assert_eq!(parse(unframed, false), None);
        assert_eq!(parse(unframed, true), Some((200, json!([1, 2]))));
        assert_eq!(parse(b"HTTP/1.1 200 OK\r\n", true), None);
        let not_json = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{]";
        assert!(parse_response(not_json, false).unwrap().is_err());
    }
}
