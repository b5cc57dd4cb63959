//! `http`: requests against a real hyper server on loopback (plain and TLS).

use patchday_connectors::{ConnectorError, Context, Outputs, Secrets, Settings, builtin};
use serde_json::{Value, json};

use crate::support::{HttpServer, Req, TestPki, ctx_with, json_resp};

async fn run(inputs: Value, ctx: &Context) -> Result<Outputs, ConnectorError> {
    builtin("http").unwrap().execute(inputs, ctx).await
}

fn ctx() -> Context {
    Context::new("run-1", "open-ticket")
}

/// A ServiceNow-style change API: POST creates, GET reads.
fn change_api(req: Req) -> crate::support::Resp {
    match (req.method.as_str(), req.path.as_str()) {
        ("POST", "/api/now/table/change_request") => {
            let sent: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            json_resp(
                201,
                json!({ "result": {
                    "number": "CHG0040007", "state": "new",
                    "short_description": sent["short_description"],
                    "auth": req.header("authorization"),
                    "content_type": req.header("content-type"),
                }}),
            )
        }
        ("GET", "/api/now/table/change_request/CHG0040007") => json_resp(
            200,
            json!({ "result": { "number": "CHG0040007", "state": "approved" } }),
        ),
        ("GET", "/big") => (200, vec![], vec![b'x'; 100 * 1024]),
        ("GET", "/unavailable") => (503, vec![], b"try later".to_vec()),
        _ => (404, vec![], b"no such thing".to_vec()),
    }
}

#[tokio::test]
async fn post_json_opens_a_change_ticket() {
    let server = HttpServer::start(change_api).await;
    let inputs = json!({
        "method": "POST",
        "url": server.url("http", "/api/now/table/change_request"),
        "headers": { "Authorization": "Bearer abc" },
        "json": { "short_description": "Patch cycle 2026-12" },
        "expect": { "status": [200, 201], "json": { "/result/state": "new" } }
    });
    let out = run(inputs, &ctx()).await.unwrap();
    assert_eq!(out["status"], 201);
    assert_eq!(out["headers"]["content-type"], "application/json");
    let result = &out["json"]["result"];
    assert_eq!(result["number"], "CHG0040007");
    assert_eq!(result["short_description"], "Patch cycle 2026-12");
    assert_eq!(result["auth"], "Bearer abc");
    assert_eq!(result["content_type"], "application/json");
    assert_eq!(out["body_truncated"], false);
}

#[tokio::test]
async fn expectations_on_body_and_json_pointer() {
    let server = HttpServer::start(change_api).await;
    let url = server.url("http", "/api/now/table/change_request/CHG0040007");
    let ok = json!({ "url": url, "expect": { "status": 200, "body_contains": "CHG0040007", "json": { "/result/state": "approved" } } });
    run(ok, &ctx()).await.unwrap();
    let wrong_state = json!({ "url": url, "expect": { "json": { "/result/state": "closed" } } });
    let err = run(wrong_state, &ctx()).await.unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Fatal(m) if m.contains("/result/state is \"approved\", expected \"closed\"")),
        "{err:?}"
    );
    let missing = json!({ "url": url, "expect": { "body_contains": "CHG9" } });
    assert!(matches!(
        run(missing, &ctx()).await.unwrap_err(),
        ConnectorError::Fatal(_)
    ));
}

#[tokio::test]
async fn status_mismatch_is_fatal_but_5xx_retryable() {
    let server = HttpServer::start(change_api).await;
    let err = run(json!({ "url": server.url("http", "/nope") }), &ctx())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Fatal(m) if m.contains("status 404, expected 2xx")),
        "{err:?}"
    );
    let err = run(json!({ "url": server.url("http", "/unavailable") }), &ctx())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Retryable(m) if m.contains("503") && m.contains("try later")),
        "{err:?}"
    );
    let accepted = json!({ "url": server.url("http", "/nope"), "expect": { "status": 404 } });
    assert_eq!(run(accepted, &ctx()).await.unwrap()["status"], 404);
}

#[tokio::test]
async fn body_is_bounded_and_says_so() {
    let server = HttpServer::start(change_api).await;
    let out = run(json!({ "url": server.url("http", "/big") }), &ctx())
        .await
        .unwrap();
    assert_eq!(out["body"].as_str().unwrap().len(), 64 * 1024);
    assert_eq!(out["body_truncated"], true);
    assert_eq!(out["json"], Value::Null);
}

#[tokio::test]
async fn unreachable_and_silent_servers_are_retryable() {
    let port = crate::support::free_port();
    let err = run(
        json!({ "url": format!("http://127.0.0.1:{port}/") }),
        &ctx(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ConnectorError::Retryable(_)), "{err:?}");
    // Accepts connections but never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            conns.push(s);
        }
    });
    let err = run(json!({ "url": url, "timeout": "1s" }), &ctx())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Retryable(m) if m.contains("timed out")),
        "{err:?}"
    );
    held.abort();
}

#[tokio::test]
async fn tls_is_verified_against_the_ca_file() {
    let pki = TestPki::generate();
    let dir = tempfile::tempdir().unwrap();
    pki.write_to(dir.path());
    let server = HttpServer::start_tls(&pki, |_| json_resp(200, json!({ "ok": true }))).await;
    let ctx = ctx_with(Settings::default(), dir.path());
    let url = server.url("https", "/health");
    let err = run(json!({ "url": url }), &ctx).await.unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Fatal(m) if m.contains("certificate")),
        "{err:?}"
    );
    let out = run(json!({ "url": url, "ca_file": "ca.pem" }), &ctx)
        .await
        .unwrap();
    assert_eq!(out["json"]["ok"], true);
}

#[tokio::test]
async fn secrets_are_redacted_from_outputs() {
    let server = HttpServer::start(change_api).await;
    let mut ctx = ctx();
    ctx.secrets = Secrets::new().with("snow", "abc-secret-token");
    let inputs = json!({
        "method": "POST",
        "url": server.url("http", "/api/now/table/change_request"),
        "headers": { "Authorization": "Bearer abc-secret-token" },
        "json": {}
    });
    let out = run(inputs, &ctx).await.unwrap();
    assert_eq!(out["json"]["result"]["auth"], "Bearer ***");
    assert!(!out["body"].as_str().unwrap().contains("abc-secret-token"));
    let line = builtin("http")
        .unwrap()
        .dry_run(
            &json!({ "method": "DELETE", "url": "https://x/abc-secret-token" }),
            &ctx,
        )
        .unwrap();
    assert_eq!(line, "would send DELETE https://x/***");
}
