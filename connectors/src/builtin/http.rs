//! `http`: one HTTP request with expectations on the response (reqwest, rustls; certificate
//! verification always on, extra CAs from `ca_file`). Not idempotent (it may POST).
//!
//! Outputs `status`, `headers` (lower-case names; repeated headers joined with `, `), `body`
//! (the first 64 KiB as text), `body_truncated` and `json` (the parsed body, or null).
//! Connection errors, timeouts and 5xx responses are retryable; any other unmet expectation
//! is fatal.

use std::path::Path;
use std::time::Duration;

use crate::catalog::ConnectorSpec;
use crate::inputs::{HttpExpect, HttpInputs, HttpMethod};
use crate::runtime::{
    BoxFuture, Connector, ConnectorError, Context, Outputs, parse_inputs, spec_of, until_cancelled,
};

/// How much of a response body is kept.
pub const BODY_LIMIT: usize = 64 * 1024;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The `http` connector.
pub struct Http;

/// A client with rustls, the system roots plus the CAs in `ca_file`, and a whole-request timeout.
pub fn client(
    ca_file: Option<&Path>,
    timeout: Duration,
) -> Result<reqwest::Client, ConnectorError> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(15)))
        .user_agent(concat!("patchday/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_file {
        for cert in read_ca_file(path)? {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| ConnectorError::Fatal(format!("cannot build the HTTP client: {e}")))
}

fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, ConnectorError> {
    let pem = std::fs::read(path).map_err(|e| {
        ConnectorError::Fatal(format!("cannot read CA file {}: {e}", path.display()))
    })?;
    reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| ConnectorError::Fatal(format!("invalid CA file {}: {e}", path.display())))
}

/// Classifies a transport error: everything before a response is worth retrying, except a
/// malformed request and a certificate that does not verify.
pub fn transport_error(e: reqwest::Error) -> ConnectorError {
    let message = format!("HTTP request failed: {}", error_chain(&e));
    // A certificate that does not verify will not verify on the next attempt either.
    if e.is_builder() || message.contains("certificate") {
        ConnectorError::Fatal(message)
    } else {
        ConnectorError::Retryable(message)
    }
}

/// The error and its sources, joined, e.g. "error sending request: connection refused".
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// A response read into memory, body bounded.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub status: u16,
    pub headers: serde_json::Map<String, serde_json::Value>,
    pub body: Vec<u8>,
    pub truncated: bool,
}

impl Fetched {
    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON, when it is complete and parses.
    pub fn json(&self) -> Option<serde_json::Value> {
        if self.truncated {
            return None;
        }
        serde_json::from_slice(&self.body).ok()
    }
}

/// Sends the request and reads at most `limit` bytes of the body.
pub async fn fetch(
    request: reqwest::RequestBuilder,
    limit: usize,
) -> Result<Fetched, ConnectorError> {
    let mut response = request.send().await.map_err(transport_error)?;
    let status = response.status().as_u16();
    let headers = header_map(response.headers());
    let mut body = Vec::new();
    let mut truncated = false;
    while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            truncated = true;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched {
        status,
        headers,
        body,
        truncated,
    })
}

fn header_map(headers: &reqwest::header::HeaderMap) -> serde_json::Map<String, serde_json::Value> {
    let mut map = serde_json::Map::new();
    for name in headers.keys() {
        let values: Vec<String> = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        map.insert(name.as_str().to_string(), values.join(", ").into());
    }
    map
}

fn method(m: HttpMethod) -> reqwest::Method {
    match m {
        HttpMethod::Get => reqwest::Method::GET,
        HttpMethod::Head => reqwest::Method::HEAD,
        HttpMethod::Post => reqwest::Method::POST,
        HttpMethod::Put => reqwest::Method::PUT,
        HttpMethod::Patch => reqwest::Method::PATCH,
        HttpMethod::Delete => reqwest::Method::DELETE,
    }
}

fn method_name(m: HttpMethod) -> String {
    format!("{m:?}").to_uppercase()
}

fn build_request(
    inputs: &HttpInputs,
    ctx: &Context,
) -> Result<reqwest::RequestBuilder, ConnectorError> {
    let timeout = inputs
        .timeout
        .as_ref()
        .map(|t| t.duration())
        .unwrap_or(DEFAULT_TIMEOUT);
    let ca = inputs.ca_file.as_deref().map(|p| ctx.resolve_path(p));
    let url = reqwest::Url::parse(&inputs.url)
        .map_err(|e| ConnectorError::Fatal(format!("invalid url `{}`: {e}", inputs.url)))?;
    let mut request = client(ca.as_deref(), timeout)?.request(method(inputs.method), url);
    for (name, value) in &inputs.headers {
        request = request.header(name, value);
    }
    if let Some(body) = &inputs.body {
        request = request.body(body.clone());
    }
    if let Some(json) = &inputs.json {
        let bytes = serde_json::to_vec(json).unwrap_or_default();
        request = request
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(bytes);
    }
    Ok(request)
}

/// Checks a response against `expect`; `Err` holds why it does not match.
pub fn check_expect(expect: &HttpExpect, fetched: &Fetched) -> Result<(), String> {
    check_status(expect.status.as_ref().map(|s| s.as_slice()), fetched.status)?;
    if let Some(needle) = &expect.body_contains
        && !fetched.text().contains(needle.as_str())
    {
        return Err(format!("the body does not contain `{needle}`"));
    }
    if let Some(pointers) = &expect.json {
        let json = fetched
            .json()
            .ok_or_else(|| "the body is not JSON".to_string())?;
        for (pointer, want) in pointers {
            match json.pointer(pointer) {
                Some(got) if got == want => {}
                Some(got) => return Err(format!("{pointer} is {got}, expected {want}")),
                None => return Err(format!("{pointer} is missing, expected {want}")),
            }
        }
    }
    Ok(())
}

/// Status in the accepted list, or any 2xx without a list.
pub fn check_status(accepted: Option<&[u16]>, status: u16) -> Result<(), String> {
    let ok = match accepted {
        Some(list) => list.contains(&status),
        None => (200..300).contains(&status),
    };
    if ok {
        return Ok(());
    }
    let wanted = match accepted {
        Some(list) => list
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(" or "),
        None => "2xx".into(),
    };
    Err(format!("status {status}, expected {wanted}"))
}

fn outputs(fetched: &Fetched) -> Outputs {
    let mut out = Outputs::new();
    out.insert("status".into(), fetched.status.into());
    out.insert("headers".into(), fetched.headers.clone().into());
    out.insert("body".into(), fetched.text().into());
    out.insert("body_truncated".into(), fetched.truncated.into());
    out.insert(
        "json".into(),
        fetched.json().unwrap_or(serde_json::Value::Null),
    );
    out
}

/// A 5xx is the server's trouble and may pass; any other mismatch will not.
fn mismatch_error(status: u16, why: String, body: &str) -> ConnectorError {
    let snippet: String = body.chars().take(200).collect();
    let message = format!("unexpected response: {why}; body: {snippet}");
    if status >= 500 {
        ConnectorError::Retryable(message)
    } else {
        ConnectorError::Fatal(message)
    }
}

async fn execute(inputs: HttpInputs, ctx: &Context) -> Result<Outputs, ConnectorError> {
    let request = build_request(&inputs, ctx)?;
    let fetched = until_cancelled(&ctx.cancel, fetch(request, BODY_LIMIT)).await?;
    ctx.log_line(&format!(
        "{} {} -> {}",
        method_name(inputs.method),
        inputs.url,
        fetched.status
    ));
    let expect = inputs.expect.unwrap_or_default();
    if let Err(why) = check_expect(&expect, &fetched) {
        return Err(mismatch_error(fetched.status, why, &fetched.text()));
    }
    Ok(outputs(&fetched))
}

impl Connector for Http {
    fn spec(&self) -> &'static ConnectorSpec {
        spec_of("http")
    }

    fn dry_run(&self, inputs: &serde_json::Value, ctx: &Context) -> Result<String, ConnectorError> {
        let inputs: HttpInputs = parse_inputs("http", inputs)?;
        let method = method_name(inputs.method);
        Ok(ctx
            .secrets
            .redact(&format!("would send {method} {}", inputs.url)))
    }

    fn execute<'a>(
        &'a self,
        inputs: serde_json::Value,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<Outputs, ConnectorError>> {
        Box::pin(async move {
            let inputs: HttpInputs = parse_inputs("http", &inputs)?;
            execute(inputs, ctx)
                .await
                .map(|out| ctx.redact_outputs(out))
                .map_err(|e| e.redacted(&ctx.secrets))
        })
    }
}
