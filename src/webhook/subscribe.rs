//! `linq-exporter webhook subscribe` and `webhook list`: create a subscription through
//! `POST /v3/webhook-subscriptions` (writing the returned signing secret to a file, never to
//! stdout) and list the account's subscriptions. Both bound the response they read.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::Secret;

/// The events subscribed to when `--events` is not given: what the receiver's metrics use.
pub const DEFAULT_EVENTS: [&str; 9] = [
    "message.sent",
    "message.received",
    "message.delivered",
    "message.read",
    "message.failed",
    "phone_number.status_updated",
    "participant.added",
    "participant.removed",
    "chat.created",
];

/// The largest response read.
const MAX_RESPONSE: usize = 1024 * 1024;

/// A subscription as the API lists it (never its secret).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Subscription {
    /// Its id.
    pub id: String,
    /// Where events go.
    pub target_url: String,
    /// The events.
    #[serde(default)]
    pub subscribed_events: Vec<String>,
    /// Whether deliveries are on.
    #[serde(default)]
    pub is_active: Option<bool>,
}

#[derive(Deserialize)]
struct Created {
    #[serde(flatten)]
    subscription: Subscription,
    signing_secret: String,
}

#[derive(Deserialize)]
struct Listed {
    subscriptions: Vec<Subscription>,
}

/// Why a subscription call failed. Never carries the key or the secret.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// The request failed.
    #[error("{0}")]
    Request(String),
    /// The API answered with an error.
    #[error("HTTP {status}: {message}")]
    Http {
        /// The status.
        status: u16,
        /// Linq's message, or the start of the body.
        message: String,
    },
    /// The answer was not what the API documents.
    #[error("unexpected response: {0}")]
    Decode(String),
    /// The secret file could not be written.
    #[error("writing --secret-file {path:?}: {reason}")]
    SecretFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

fn client() -> Result<reqwest::Client, SubscribeError> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| SubscribeError::Request(e.to_string()))
}

async fn answer(resp: reqwest::Response) -> Result<Vec<u8>, SubscribeError> {
    let status = resp.status();
    let mut resp = resp;
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| SubscribeError::Request(e.to_string()))?
    {
        if body.len() + chunk.len() > MAX_RESPONSE {
            return Err(SubscribeError::Decode(format!(
                "response over {MAX_RESPONSE} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        let message = serde_json::from_slice::<crate::api::models::ErrorEnvelope>(&body)
            .ok()
            .and_then(|e| e.error.message)
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
        return Err(SubscribeError::Http {
            status: status.as_u16(),
            message,
        });
    }
    Ok(body)
}

/// Writes the secret to `path`, readable by its owner only, replacing the file atomically.
fn write_secret(path: &Path, secret: &str) -> Result<(), SubscribeError> {
    let err = |e: std::io::Error| SubscribeError::SecretFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    {
        use std::io::Write;
        let mut f = options.open(&tmp).map_err(err)?;
        f.write_all(secret.as_bytes()).map_err(err)?;
        f.write_all(b"\n").map_err(err)?;
        f.sync_all().map_err(err)?;
    }
    std::fs::rename(&tmp, path).map_err(err)
}

/// Creates a subscription for `target_url` and `events`, writes its signing secret to
/// `secret_file`, and returns it (without the secret).
pub async fn subscribe(
    base_url: &str,
    key: &Secret,
    target_url: &str,
    events: &[String],
    secret_file: &Path,
) -> Result<Subscription, SubscribeError> {
    let events: Vec<&str> = if events.is_empty() {
        DEFAULT_EVENTS.to_vec()
    } else {
        events.iter().map(String::as_str).collect()
    };
    let resp = client()?
        .post(format!(
            "{}/v3/webhook-subscriptions",
            base_url.trim_end_matches('/')
        ))
        .bearer_auth(key.expose())
        .json(&serde_json::json!({"target_url": target_url, "subscribed_events": events}))
        .send()
        .await
        .map_err(|e| SubscribeError::Request(e.without_url().to_string()))?;
    let body = answer(resp).await?;
    let created: Created =
        serde_json::from_slice(&body).map_err(|e| SubscribeError::Decode(e.to_string()))?;
    if created.signing_secret.trim().is_empty() {
        return Err(SubscribeError::Decode("no signing_secret".into()));
    }
    write_secret(secret_file, created.signing_secret.trim())?;
    Ok(created.subscription)
}

/// The account's subscriptions.
pub async fn list(base_url: &str, key: &Secret) -> Result<Vec<Subscription>, SubscribeError> {
    let resp = client()?
        .get(format!(
            "{}/v3/webhook-subscriptions",
            base_url.trim_end_matches('/')
        ))
        .bearer_auth(key.expose())
        .send()
        .await
        .map_err(|e| SubscribeError::Request(e.without_url().to_string()))?;
    let body = answer(resp).await?;
    let listed: Listed =
        serde_json::from_slice(&body).map_err(|e| SubscribeError::Decode(e.to_string()))?;
    Ok(listed.subscriptions)
}
