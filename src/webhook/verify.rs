//! Signature verification, pure (no I/O, the clock passed in), for both header sets Linq sends
//! on every delivery:
//!
//! - **Standard Webhooks**: `webhook-id`, `webhook-timestamp`, `webhook-signature` (`v1,<base64>`,
//!   possibly several separated by spaces; any one matching is enough), signed content
//!   `{id}.{timestamp}.{raw body}`, HMAC-SHA256 keyed with the base64-decoded secret after its
//!   `whsec_` prefix. The signature is computed by the specification's own crate
//!   (`standardwebhooks`) and compared here in constant time, with our `--webhook.max-age`.
//! - **Legacy** (deprecated, still sent): `X-Webhook-Timestamp`, `X-Webhook-Signature` = hex
//!   HMAC-SHA256 of `{timestamp}.{raw body}` keyed with the secret string as written, verified by
//!   `ring` in constant time.
//!
//! A request verifies when either set verifies. A signature that matches with a timestamp older
//! than the max age, or that far in the future, is a `timestamp` rejection; anything else that
//! does not verify is a `signature` rejection.

use std::time::Duration;

/// The header types `verify` takes, re-exported for the fuzz target.
pub use axum::http::{HeaderMap, HeaderName, HeaderValue};

/// Why a request did not verify (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Missing headers, or no signature matched.
    Signature,
    /// A signature matched, but its timestamp is outside `--webhook.max-age`.
    Timestamp,
}

/// A verified request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// `webhook-id`, when the Standard Webhooks signature (which covers it) verified.
    pub webhook_id: Option<String>,
}

/// Verifies requests against one signing secret.
pub struct Verifier {
    standard: Option<standardwebhooks::Webhook>,
    legacy: ring::hmac::Key,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier(<secret redacted>)")
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Constant-time equality of two byte strings of the same length (the length is not secret).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl Verifier {
    /// A verifier for `secret`. A secret that is not `whsec_<base64>` (or plain base64) can only
    /// verify the legacy header set.
    pub fn new(secret: &str) -> Self {
        let secret = secret.trim();
        let standard = standardwebhooks::Webhook::new(secret)
            .ok()
            .filter(|_| !secret.is_empty());
        Verifier {
            standard,
            legacy: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes()),
        }
    }

    /// Verifies a request received at Unix time `now` (seconds).
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: i64,
        max_age: Duration,
    ) -> Result<Verified, Rejection> {
        let max_age = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
        let fresh =
            |ts: i64| now.saturating_sub(ts) <= max_age && ts.saturating_sub(now) <= max_age;
        let mut outcome = Err(Rejection::Signature);

        if let (Some(standard), Some(id), Some(ts), Some(signatures)) = (
            &self.standard,
            header(headers, "webhook-id"),
            header(headers, "webhook-timestamp"),
            header(headers, "webhook-signature"),
        ) {
            if let (Ok(ts), false) = (ts.parse::<i64>(), id.is_empty()) {
                let expected = standard.sign(id, ts, body).ok();
                let expected = expected
                    .as_deref()
                    .and_then(|e| e.split_once(','))
                    .map(|(_, sig)| sig);
                let matched = expected.is_some_and(|expected| {
                    signatures
                        .split(' ')
                        .filter_map(|s| s.split_once(','))
                        .filter(|(version, _)| *version == "v1")
                        .any(|(_, sig)| same(sig.as_bytes(), expected.as_bytes()))
                });
                if matched {
                    if fresh(ts) {
                        return Ok(Verified {
                            webhook_id: Some(id.to_string()),
                        });
                    }
                    outcome = Err(Rejection::Timestamp);
                }
            }
        }

        if let (Some(ts), Some(signature)) = (
            header(headers, "x-webhook-timestamp"),
            header(headers, "x-webhook-signature"),
        ) {
            if let (Ok(ts_value), Some(tag)) = (
                ts.parse::<i64>(),
                hex_decode(signature.to_ascii_lowercase().as_str()),
            ) {
                let mut signed = Vec::with_capacity(ts.len() + 1 + body.len());
                signed.extend_from_slice(ts.as_bytes());
                signed.push(b'.');
                signed.extend_from_slice(body);
                if ring::hmac::verify(&self.legacy, &signed, &tag).is_ok() {
                    if fresh(ts_value) {
                        return Ok(Verified { webhook_id: None });
                    }
                    outcome = Err(Rejection::Timestamp);
                }
            }
        }
        outcome
    }
}

/// Signs `body` with both header sets, as Linq does: for the demo simulator and the tests.
pub fn sign_both(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Vec<(String, String)> {
    let mut headers = Vec::new();
    if let Ok(standard) = standardwebhooks::Webhook::new(secret.trim()) {
        if let Ok(signature) = standard.sign(id, timestamp, body) {
            headers.push(("webhook-id".to_string(), id.to_string()));
            headers.push(("webhook-timestamp".to_string(), timestamp.to_string()));
            headers.push(("webhook-signature".to_string(), signature));
        }
    }
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.trim().as_bytes());
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    let tag = ring::hmac::sign(&key, &signed);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    headers.push(("x-webhook-timestamp".to_string(), timestamp.to_string()));
    headers.push(("x-webhook-signature".to_string(), hex));
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const BODY: &[u8] = br#"{"event_type":"message.sent","event_id":"e1","data":{}}"#;
    const NOW: i64 = 1_780_000_000;
    const FIVE_MIN: Duration = Duration::from_secs(300);

    fn headers(pairs: &[(String, String)], keep: impl Fn(&str) -> bool) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs.iter().filter(|(k, _)| keep(k)) {
            h.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        h
    }

    /// Vectors computed by the Standard Webhooks Python package and Python's hmac
    /// (scripts/webhook-vectors.py), independently of this code.
    #[test]
    fn independent_vectors() {
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/webhook_vectors.json"))
                .expect("vectors");
        let secret = v["secret"].as_str().expect("secret");
        let now = v["now"].as_i64().expect("now");
        let max_age = Duration::from_secs(v["max_age_seconds"].as_u64().expect("max age"));
        let verifier = Verifier::new(secret);
        let cases = v["cases"].as_array().expect("cases");
        assert!(cases.len() >= 14);
        for case in cases {
            let name = case["name"].as_str().unwrap_or_default();
            let mut headers = HeaderMap::new();
            for (k, value) in case["headers"].as_object().expect("headers") {
                headers.insert(
                    axum::http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                    value.as_str().unwrap_or_default().parse().expect("value"),
                );
            }
            let body = case["body"].as_str().expect("body").as_bytes();
            let got = verifier.verify(&headers, body, now, max_age);
            let want = match case["expect"].as_str() {
                Some("ok") => Ok(Verified {
                    webhook_id: case["webhook_id"].as_str().map(str::to_string),
                }),
                Some("timestamp") => Err(Rejection::Timestamp),
                _ => Err(Rejection::Signature),
            };
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn either_header_set_alone_verifies_and_both_together_do() {
        let v = Verifier::new(SECRET);
        let signed = sign_both(SECRET, "msg_1", NOW, BODY);
        let standard = headers(&signed, |k| k.starts_with("webhook-"));
        let legacy = headers(&signed, |k| k.starts_with("x-webhook-"));
        let both = headers(&signed, |_| true);
        assert_eq!(
            v.verify(&standard, BODY, NOW, FIVE_MIN),
            Ok(Verified {
                webhook_id: Some("msg_1".into())
            })
        );
        assert_eq!(
            v.verify(&legacy, BODY, NOW, FIVE_MIN),
            Ok(Verified { webhook_id: None })
        );
        assert_eq!(
            v.verify(&both, BODY, NOW, FIVE_MIN).map(|v| v.webhook_id),
            Ok(Some("msg_1".into()))
        );
    }

    #[test]
    fn tampered_body_wrong_secret_and_missing_headers_are_signature_rejections() {
        let v = Verifier::new(SECRET);
        let both = headers(&sign_both(SECRET, "msg_1", NOW, BODY), |_| true);
        let tampered = br#"{"event_type":"message.sent","event_id":"e2","data":{}}"#;
        assert_eq!(
            v.verify(&both, tampered, NOW, FIVE_MIN),
            Err(Rejection::Signature)
        );
        let other = Verifier::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        assert_eq!(
            other.verify(&both, BODY, NOW, FIVE_MIN),
            Err(Rejection::Signature)
        );
        assert_eq!(
            v.verify(&HeaderMap::new(), BODY, NOW, FIVE_MIN),
            Err(Rejection::Signature)
        );
    }

    #[test]
    fn any_of_several_standard_signatures_may_match() {
        let v = Verifier::new(SECRET);
        let signed = sign_both(SECRET, "msg_1", NOW, BODY);
        let good = &signed[2].1;
        let pairs = vec![
            signed[0].clone(),
            signed[1].clone(),
            (
                "webhook-signature".to_string(),
                format!("v1,bm90IGl0 v2,xyz {good}"),
            ),
        ];
        assert!(v
            .verify(&headers(&pairs, |_| true), BODY, NOW, FIVE_MIN)
            .is_ok());
    }

    #[test]
    fn stale_and_future_timestamps_are_timestamp_rejections() {
        let v = Verifier::new(SECRET);
        for ts in [NOW - 301, NOW + 301] {
            let both = headers(&sign_both(SECRET, "msg_1", ts, BODY), |_| true);
            assert_eq!(
                v.verify(&both, BODY, NOW, FIVE_MIN),
                Err(Rejection::Timestamp),
                "{ts}"
            );
        }
        let edge = headers(&sign_both(SECRET, "msg_1", NOW - 300, BODY), |_| true);
        assert!(v.verify(&edge, BODY, NOW, FIVE_MIN).is_ok());
        // A forged request with a stale timestamp is a signature rejection, not a timestamp one.
        let forged = headers(&sign_both(SECRET, "msg_1", NOW - 900, b"{}"), |_| true);
        assert_eq!(
            v.verify(&forged, BODY, NOW, FIVE_MIN),
            Err(Rejection::Signature)
        );
    }

    #[test]
    fn a_secret_that_is_not_base64_still_verifies_legacy_signatures() {
        let secret = "plain secret, not base64!";
        let v = Verifier::new(secret);
        let both = headers(&sign_both(secret, "msg_1", NOW, BODY), |_| true);
        assert_eq!(
            v.verify(&both, BODY, NOW, FIVE_MIN),
            Ok(Verified { webhook_id: None })
        );
        assert!(!format!("{v:?}").contains(secret));
    }
}
