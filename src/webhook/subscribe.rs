//! `linq-exporter webhook subscribe`, `list` and `delete`: create a subscription through
//! `POST /v3/webhook-subscriptions` (writing the returned signing secret to a file, never to
//! stdout), list the account's subscriptions, delete one. Each bounds the response it reads.
//!
//! `subscribe` checks what it can before it calls the API (the URL, the event names, that
//! `--secret-file` can be written), because the secret is shown once: a subscription created
//! with nowhere to put its secret is an orphan. If writing fails anyway, the error names the
//! subscription and how to delete it.

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

/// Every event type a subscription can name (the API's `WebhookEventType`, Feb 2026).
pub const EVENTS: [&str; 17] = [
    "message.sent",
    "message.received",
    "message.read",
    "message.delivered",
    "message.failed",
    "reaction.added",
    "reaction.removed",
    "participant.added",
    "participant.removed",
    "chat.created",
    "chat.group_name_updated",
    "chat.group_icon_updated",
    "chat.group_name_update_failed",
    "chat.group_icon_update_failed",
    "chat.typing_indicator.started",
    "chat.typing_indicator.stopped",
    "phone_number.status_updated",
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
    /// A flag is invalid (checked before any request).
    #[error("invalid value for {flag}: {reason}")]
    Invalid {
        /// The flag.
        flag: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The secret file could not be written.
    #[error("writing --secret-file {path:?}: {reason}")]
    SecretFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The subscription was created but its secret could not be written: an orphan to delete.
    #[error("subscription {id} was created, but its signing secret could not be written to --secret-file {path:?}: {reason}. \
The secret cannot be retrieved again: delete the subscription with `linq-exporter webhook delete --id {id}` \
(DELETE /v3/webhook-subscriptions/{id}), fix the file's location and subscribe again")]
    Orphaned {
        /// The subscription's id.
        id: String,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Checks `--url`: an absolute https URL with a host.
pub fn check_target_url(url: &str) -> Result<(), SubscribeError> {
    let invalid = |reason: String| SubscribeError::Invalid {
        flag: "--url",
        reason,
    };
    let parsed = reqwest::Url::parse(url.trim()).map_err(|e| {
        invalid(format!(
            "{url:?} is not an absolute URL ({e}); give the receiver's public https URL, such as https://linq-webhooks.example.com/webhook"
        ))
    })?;
    if parsed.scheme() != "https" {
        return Err(invalid(format!(
            "{url:?} is not https (Linq delivers webhooks to https URLs only)"
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid(format!("{url:?} has no host")));
    }
    Ok(())
}

/// Checks `--events` against the documented event types; empty means the defaults.
pub fn check_events(events: &[String]) -> Result<Vec<String>, SubscribeError> {
    if events.is_empty() {
        return Ok(DEFAULT_EVENTS.iter().map(|e| e.to_string()).collect());
    }
    let mut out: Vec<String> = Vec::new();
    for e in events.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
        if !EVENTS.contains(&e) {
            return Err(SubscribeError::Invalid {
                flag: "--events",
                reason: format!(
                    "{e:?} is not a Linq webhook event; the events are: {}",
                    EVENTS.join(", ")
                ),
            });
        }
        if !out.iter().any(|o| o == e) {
            out.push(e.to_string());
        }
    }
    if out.is_empty() {
        return Err(SubscribeError::Invalid {
            flag: "--events",
            reason: "no event given".into(),
        });
    }
    Ok(out)
}

/// The temporary file the secret is written to before it is renamed into place.
fn temp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Checks, before the API is called, that the secret can be written to `path`: it is not a
/// directory, and a file can be created beside it (created and removed again).
pub fn check_secret_file(path: &Path) -> Result<(), SubscribeError> {
    let err = |reason: String| SubscribeError::SecretFile {
        path: path.to_path_buf(),
        reason: format!("{reason}; nothing was created at Linq"),
    };
    if path.file_name().is_none() {
        return Err(err("not a file path".into()));
    }
    if path.is_dir() {
        return Err(err("is a directory".into()));
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(err(format!("the directory {parent:?} does not exist")));
    }
    let tmp = temp_path(path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(&tmp).map_err(|e| err(e.to_string()))?;
    std::fs::remove_file(&tmp).map_err(|e| err(e.to_string()))
}

/// A request error with its causes (connection refused, say), without the URL's query.
fn request_error(e: reqwest::Error) -> SubscribeError {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    SubscribeError::Request(text)
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
    let tmp = temp_path(path);
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
    check_target_url(target_url)?;
    let events = check_events(events)?;
    check_secret_file(secret_file)?;
    let resp = client()?
        .post(format!(
            "{}/v3/webhook-subscriptions",
            base_url.trim_end_matches('/')
        ))
        .bearer_auth(key.expose())
        .json(&serde_json::json!({"target_url": target_url, "subscribed_events": events}))
        .send()
        .await
        .map_err(request_error)?;
    let body = answer(resp).await?;
    let created: Created =
        serde_json::from_slice(&body).map_err(|e| SubscribeError::Decode(e.to_string()))?;
    if created.signing_secret.trim().is_empty() {
        return Err(SubscribeError::Decode("no signing_secret".into()));
    }
    store_secret(
        created.subscription,
        created.signing_secret.trim(),
        secret_file,
    )
}

/// Writes a new subscription's secret; a failure names the subscription to delete.
fn store_secret(
    subscription: Subscription,
    secret: &str,
    secret_file: &Path,
) -> Result<Subscription, SubscribeError> {
    match write_secret(secret_file, secret) {
        Ok(()) => Ok(subscription),
        Err(e) => Err(SubscribeError::Orphaned {
            id: subscription.id,
            path: secret_file.to_path_buf(),
            reason: match e {
                SubscribeError::SecretFile { reason, .. } => reason,
                other => other.to_string(),
            },
        }),
    }
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
        .map_err(request_error)?;
    let body = answer(resp).await?;
    let listed: Listed =
        serde_json::from_slice(&body).map_err(|e| SubscribeError::Decode(e.to_string()))?;
    Ok(listed.subscriptions)
}

/// Deletes the subscription `id`.
pub async fn delete(base_url: &str, key: &Secret, id: &str) -> Result<(), SubscribeError> {
    let id = id.trim();
    if id.is_empty() || id.contains(['/', '?', '#', ' ']) {
        return Err(SubscribeError::Invalid {
            flag: "--id",
            reason: format!("{id:?} is not a subscription id"),
        });
    }
    let resp = client()?
        .delete(format!(
            "{}/v3/webhook-subscriptions/{id}",
            base_url.trim_end_matches('/')
        ))
        .bearer_auth(key.expose())
        .send()
        .await
        .map_err(request_error)?;
    answer(resp).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_urls_must_be_absolute_https() {
        assert!(check_target_url("https://hooks.example.com/webhook").is_ok());
        for (bad, why) in [
            ("not a url", "is not an absolute URL"),
            ("/webhook", "is not an absolute URL"),
            ("http://hooks.example.com/webhook", "is not https"),
        ] {
            let err = check_target_url(bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                err.starts_with(&format!("invalid value for --url: {bad:?} {why}")),
                "{err}"
            );
        }
    }

    #[test]
    fn events_are_checked_against_the_documented_list() {
        assert_eq!(
            check_events(&[]).map(|e| e.len()).ok(),
            Some(DEFAULT_EVENTS.len())
        );
        assert_eq!(
            check_events(&[
                "message.sent".into(),
                "message.sent".into(),
                "reaction.added".into()
            ])
            .ok(),
            Some(vec![
                "message.sent".to_string(),
                "reaction.added".to_string()
            ])
        );
        let err = check_events(&["message.sent".into(), "message.bounced".into()])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with("invalid value for --events: \"message.bounced\" is not a Linq webhook event; the events are: message.sent, "),
            "{err}"
        );
    }

    #[test]
    fn a_secret_file_that_cannot_be_written_is_found_before_the_api_is_called() {
        let dir = std::env::temp_dir().join(format!("linq-secret-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        assert!(check_secret_file(&dir.join("secret")).is_ok());
        assert!(!dir.join("secret.tmp").exists() && !dir.join("secret").exists());
        let err = check_secret_file(&dir.join("missing/secret"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("does not exist; nothing was created at Linq"),
            "{err}"
        );
        let err = check_secret_file(&dir)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("is a directory"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_secret_that_cannot_be_written_names_the_subscription_to_delete() {
        let sub = Subscription {
            id: "sub-42".into(),
            target_url: "https://x.example.com/webhook".into(),
            subscribed_events: vec![],
            is_active: Some(true),
        };
        let path = Path::new("/nonexistent-dir-linq/secret");
        let err = store_secret(sub, "whsec_c2VjcmV0", path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("subscription sub-42 was created, but its signing secret could not be written to --secret-file \"/nonexistent-dir-linq/secret\""), "{err}");
        assert!(
            err.contains("linq-exporter webhook delete --id sub-42"),
            "{err}"
        );
        assert!(!err.contains("c2VjcmV0"), "{err}");
    }
}
