//! The Proxmox VE provider: snapshot tasks through the REST API, polled to their end.

use serde_json::Value;

use crate::builtin::http::{BODY_LIMIT, Fetched, client, fetch};
use crate::inputs::{SnapshotAction, SnapshotInputs};
use crate::runtime::{ConnectorError, Context, Outputs, until_cancelled};
use crate::settings::ProxmoxSettings;

/// An authenticated API client for one node's VM.
struct Api<'a> {
    http: reqwest::Client,
    base: String,
    auth: String,
    node: &'a str,
    settings: &'a ProxmoxSettings,
}

/// Runs the action and waits for its task.
pub async fn run(inputs: &SnapshotInputs, ctx: &Context) -> Result<Outputs, ConnectorError> {
    let api = Api::new(inputs, ctx)?;
    let vm = vm_path(&inputs.vm)?;
    let snapshots = format!("/nodes/{}/qemu/{vm}/snapshot", segment(api.node));
    let one = format!("{snapshots}/{}", segment(&inputs.name));
    let mut out = Outputs::new();
    let upid = match inputs.action {
        SnapshotAction::Create => {
            let exists = api.has_snapshot(&snapshots, &inputs.name, ctx).await?;
            out.insert("already_existed".into(), exists.into());
            if exists {
                return Ok(out);
            }
            let mut form = vec![("snapname", inputs.name.as_str())];
            if let Some(d) = &inputs.description {
                form.push(("description", d));
            }
            api.task(reqwest::Method::POST, &snapshots, Some(&form), ctx)
                .await?
        }
        SnapshotAction::Revert => {
            api.task(reqwest::Method::POST, &format!("{one}/rollback"), None, ctx)
                .await?
        }
        SnapshotAction::Delete => {
            let exists = api.has_snapshot(&snapshots, &inputs.name, ctx).await?;
            out.insert("already_absent".into(), (!exists).into());
            if !exists {
                return Ok(out);
            }
            api.task(reqwest::Method::DELETE, &one, None, ctx).await?
        }
    };
    api.wait(&upid, ctx).await?;
    out.insert("upid".into(), upid.into());
    Ok(out)
}

/// A VMID is a number.
fn vm_path(vm: &str) -> Result<&str, ConnectorError> {
    if !vm.is_empty() && vm.chars().all(|c| c.is_ascii_digit()) {
        Ok(vm)
    } else {
        Err(ConnectorError::Fatal(format!(
            "proxmox: `vm` must be a numeric VMID, not `{vm}`"
        )))
    }
}

/// Percent-encodes what a URL path segment cannot hold (`:`, `@`, `!` stay, as in a UPID).
fn segment(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        let c = b as char;
        if c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@".contains(c) {
            out.push(c);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `application/x-www-form-urlencoded`.
fn form_encode(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".into(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

impl<'a> Api<'a> {
    fn new(inputs: &'a SnapshotInputs, ctx: &'a Context) -> Result<Api<'a>, ConnectorError> {
        let settings = ctx.settings.proxmox.as_ref().ok_or_else(|| {
            ConnectorError::Fatal("proxmox is not configured (no [proxmox])".into())
        })?;
        let node = inputs
            .node
            .as_deref()
            .ok_or_else(|| ConnectorError::Fatal("the proxmox provider needs `node`".into()))?;
        let secret = ctx.secrets.get(&settings.token_secret).ok_or_else(|| {
            ConnectorError::Fatal(format!(
                "proxmox: secret `{}` is not set",
                settings.token_secret
            ))
        })?;
        Ok(Api {
            http: client(
                settings.ca_file.as_deref(),
                std::time::Duration::from_secs(30),
            )?,
            base: format!("{}/api2/json", settings.api_url.trim_end_matches('/')),
            auth: format!("PVEAPIToken={}={secret}", settings.token_id),
            node,
            settings,
        })
    }

    /// One API call; returns the `data` member of the reply.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        form: Option<&[(&str, &str)]>,
        ctx: &Context,
    ) -> Result<Value, ConnectorError> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header(reqwest::header::AUTHORIZATION, &self.auth);
        if let Some(form) = form {
            request = request
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(form_encode(form));
        }
        let fetched = until_cancelled(&ctx.cancel, fetch(request, BODY_LIMIT)).await?;
        reply_data(&method, path, &fetched)
    }

    async fn has_snapshot(
        &self,
        list: &str,
        name: &str,
        ctx: &Context,
    ) -> Result<bool, ConnectorError> {
        let data = self.call(reqwest::Method::GET, list, None, ctx).await?;
        let items = data.as_array().cloned().unwrap_or_default();
        Ok(items.iter().any(|s| s["name"] == name))
    }

    /// Starts a task and returns its UPID.
    async fn task(
        &self,
        method: reqwest::Method,
        path: &str,
        form: Option<&[(&str, &str)]>,
        ctx: &Context,
    ) -> Result<String, ConnectorError> {
        let data = self.call(method, path, form, ctx).await?;
        let upid = data.as_str().ok_or_else(|| {
            ConnectorError::Fatal(format!("proxmox: {path} returned no task id: {data}"))
        })?;
        ctx.log_line(&format!("proxmox task {upid}"));
        Ok(upid.to_string())
    }

    /// Polls the task until it stops; fails unless its exit status is `OK`.
    async fn wait(&self, upid: &str, ctx: &Context) -> Result<(), ConnectorError> {
        let path = format!(
            "/nodes/{}/tasks/{}/status",
            segment(self.node),
            segment(upid)
        );
        loop {
            let status = self.call(reqwest::Method::GET, &path, None, ctx).await?;
            if status["status"] == "stopped" {
                return match status["exitstatus"].as_str() {
                    Some("OK") => Ok(()),
                    other => Err(ConnectorError::Fatal(format!(
                        "proxmox task {upid} failed: {}",
                        other.unwrap_or("no exit status")
                    ))),
                };
            }
            tokio::select! {
                _ = ctx.cancel.cancelled() => return Err(ConnectorError::Cancelled),
                _ = tokio::time::sleep(self.settings.poll_interval()) => {}
            }
        }
    }
}

/// The `data` of a 2xx reply; 401/403 and other 4xx are fatal, 5xx retryable.
fn reply_data(
    method: &reqwest::Method,
    path: &str,
    fetched: &Fetched,
) -> Result<Value, ConnectorError> {
    let status = fetched.status;
    if (200..300).contains(&status) {
        return Ok(fetched
            .json()
            .map(|j| j["data"].clone())
            .unwrap_or(Value::Null));
    }
    let body: String = fetched.text().chars().take(300).collect();
    let message = match status {
        401 | 403 => format!("proxmox refused the API token ({status}) on {method} {path}"),
        _ => format!("proxmox: {method} {path} returned {status}: {body}"),
    };
    if status >= 500 {
        Err(ConnectorError::Retryable(message))
    } else {
        Err(ConnectorError::Fatal(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        assert_eq!(
            segment("UPID:pve:00A:qm:101:root@pam!tok:"),
            "UPID:pve:00A:qm:101:root@pam!tok:"
        );
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
        assert_eq!(
            form_encode(&[("snapname", "pre"), ("description", "a b&c")]),
            "snapname=pre&description=a+b%26c"
        );
    }
}
