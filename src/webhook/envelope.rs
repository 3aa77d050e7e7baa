//! The webhook envelope, decoded into what the metrics need. Pure and forgiving: unknown event
//! types and unknown fields are accepted (forward compatibility); only a body that is not a JSON
//! object with a string `event_type` is malformed. Both payload versions are read: 2026-02-03
//! (message fields at the top of `data`, a `chat` object with its `owner_handle`) and 2025-01-01
//! (`chat_id` at the top, message fields under `data.message`).

use serde_json::Value;

/// What a message event says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageEvent {
    /// `message.sent`.
    Sent,
    /// `message.received`.
    Received,
    /// `message.delivered`.
    Delivered,
    /// `message.read`.
    Read,
    /// `message.failed`.
    Failed,
}

impl MessageEvent {
    /// The `event` label.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageEvent::Sent => "sent",
            MessageEvent::Received => "received",
            MessageEvent::Delivered => "delivered",
            MessageEvent::Read => "read",
            MessageEvent::Failed => "failed",
        }
    }

    /// Every event, for pre-initialising the counters.
    pub const ALL: [MessageEvent; 5] = [
        MessageEvent::Sent,
        MessageEvent::Received,
        MessageEvent::Delivered,
        MessageEvent::Read,
        MessageEvent::Failed,
    ];

    fn from_type(event_type: &str) -> Option<Self> {
        Some(match event_type {
            "message.sent" => MessageEvent::Sent,
            "message.received" => MessageEvent::Received,
            "message.delivered" => MessageEvent::Delivered,
            "message.read" => MessageEvent::Read,
            "message.failed" => MessageEvent::Failed,
            _ => return None,
        })
    }
}

/// A timestamp of the payload, as the latency histograms read it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Stamp {
    /// Absent or null.
    #[default]
    Missing,
    /// Present but not an RFC 3339 time.
    Invalid,
    /// Unix seconds.
    At(f64),
}

impl Stamp {
    fn read(v: Option<&Value>) -> Stamp {
        match v {
            None | Some(Value::Null) => Stamp::Missing,
            Some(Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| {
                    Stamp::At(t.timestamp() as f64 + f64::from(t.timestamp_subsec_nanos()) / 1e9)
                })
                .unwrap_or(Stamp::Invalid),
            Some(_) => Stamp::Invalid,
        }
    }

    fn first(v: &Value, paths: &[&[&str]]) -> Stamp {
        paths
            .iter()
            .map(|p| Stamp::read(at(v, p)))
            .find(|s| *s != Stamp::Missing)
            .unwrap_or(Stamp::Missing)
    }
}

/// A message's timestamps (`sent_at`, `delivered_at`, `read_at`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MessageTimes {
    /// When Linq sent it.
    pub sent_at: Stamp,
    /// When the recipient's device had it.
    pub delivered_at: Stamp,
    /// When the recipient read it.
    pub read_at: Stamp,
}

/// What the metrics take from an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Detail {
    /// A message event.
    Message {
        /// Which one.
        event: MessageEvent,
        /// The chat, when the payload names it.
        chat_id: Option<String>,
        /// The account's number in the chat (`chat.owner_handle.handle`), when given.
        owner: Option<String>,
        /// The message's service, else the chat's, when given.
        service: Option<String>,
        /// `message.failed`: Linq's error code, as sent.
        error_code: Option<String>,
        /// The message's timestamps.
        times: MessageTimes,
    },
    /// `phone_number.status_updated`.
    PhoneStatus {
        /// The line.
        phone_number: String,
        /// `new_status` (`ACTIVE`, `FLAGGED`, or newer), when given.
        status: Option<String>,
        /// `new_reputation`, when given.
        reputation: Option<String>,
    },
    /// Any other event: counted by type only.
    Other,
}

/// A decoded envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `event_id`, for deduplication.
    pub event_id: Option<String>,
    /// The envelope's `created_at`: when Linq created the event.
    pub created_at: Stamp,
    /// The envelope's `trace_id` (the exemplar of its latency observations).
    pub trace_id: Option<String>,
    /// `event_type`, as sent.
    pub event_type: String,
    /// What the metrics take from it.
    pub detail: Detail,
}

/// Why a body is not an envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Not JSON.
    #[error("not JSON: {0}")]
    Json(String),
    /// JSON, but not an object with a string `event_type`.
    #[error("not a webhook envelope (an object with a string event_type)")]
    NotAnEnvelope,
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, key| v.get(key))
}

fn first(v: &Value, paths: &[&[&str]]) -> Option<String> {
    paths.iter().find_map(|p| text(at(v, p)))
}

/// Decodes an envelope.
pub fn parse(body: &[u8]) -> Result<Event, Malformed> {
    let v: Value = serde_json::from_slice(body).map_err(|e| Malformed::Json(e.to_string()))?;
    let Some(event_type) = v.get("event_type").and_then(Value::as_str) else {
        return Err(Malformed::NotAnEnvelope);
    };
    let event_type = event_type.to_string();
    let event_id = text(v.get("event_id"));
    let data = v.get("data").unwrap_or(&Value::Null);
    let detail = if let Some(event) = MessageEvent::from_type(&event_type) {
        Detail::Message {
            event,
            chat_id: first(
                data,
                &[&["chat", "id"], &["chat_id"], &["message", "chat_id"]],
            ),
            owner: first(
                data,
                &[
                    &["chat", "owner_handle", "handle"],
                    // 2025-01-01: our number on inbound messages
                    &["recipient_handle", "handle"],
                ],
            ),
            service: first(
                data,
                &[
                    &["service"],
                    &["message", "service"],
                    &["chat", "service"],
                    &["chat", "owner_handle", "service"],
                ],
            ),
            error_code: (event == MessageEvent::Failed)
                .then(|| first(data, &[&["code"], &["error", "code"], &["error_code"]]))
                .flatten(),
            // 2026-02-03 has them at the top of `data`, 2025-01-01 under `data.message`.
            times: MessageTimes {
                sent_at: Stamp::first(data, &[&["sent_at"], &["message", "sent_at"]]),
                delivered_at: Stamp::first(
                    data,
                    &[&["delivered_at"], &["message", "delivered_at"]],
                ),
                read_at: Stamp::first(data, &[&["read_at"], &["message", "read_at"]]),
            },
        }
    } else if event_type == "phone_number.status_updated" {
        match first(data, &[&["phone_number"]]) {
            Some(phone_number) => Detail::PhoneStatus {
                phone_number,
                status: first(data, &[&["new_status"], &["status"]]),
                reputation: first(
                    data,
                    &[
                        &["new_reputation"],
                        &["new_reputation", "status"],
                        &["reputation"],
                    ],
                ),
            },
            None => Detail::Other,
        }
    } else {
        Detail::Other
    };
    Ok(Event {
        event_id,
        created_at: Stamp::read(v.get("created_at")),
        trace_id: text(v.get("trace_id")),
        event_type,
        detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_sent_v2026() {
        let e = parse(
            br#"{"api_version":"v3","webhook_version":"2026-02-03","event_type":"message.sent",
            "event_id":"e20feb41","created_at":"2026-02-05T19:52:18Z","trace_id":"t","partner_id":"p",
            "data":{"chat":{"id":"c-1","is_group":false,"owner_handle":{"handle":"+12025551234","service":"iMessage"}},
            "id":"m-1","direction":"outbound","service":"SMS","parts":[]}}"#,
        )
        .expect("envelope");
        assert_eq!(e.event_id.as_deref(), Some("e20feb41"));
        assert_eq!(
            e.detail,
            Detail::Message {
                event: MessageEvent::Sent,
                chat_id: Some("c-1".into()),
                owner: Some("+12025551234".into()),
                service: Some("SMS".into()),
                error_code: None,
                times: MessageTimes::default(),
            }
        );
    }

    #[test]
    fn message_failed_carries_only_the_chat_and_a_code() {
        let e = parse(
            br#"{"event_type":"message.failed","event_id":"e2","data":{"chat_id":"c-9","message_id":"m","code":4001,"reason":"x","failed_at":"2026-01-01T00:00:00Z"}}"#,
        )
        .expect("envelope");
        assert_eq!(
            e.detail,
            Detail::Message {
                event: MessageEvent::Failed,
                chat_id: Some("c-9".into()),
                owner: None,
                service: None,
                error_code: Some("4001".into()),
                times: MessageTimes::default(),
            }
        );
    }

    #[test]
    fn phone_number_status_and_unknown_types() {
        let e = parse(
            br#"{"event_type":"phone_number.status_updated","event_id":"e3","data":{"phone_number":"+14155550100","previous_status":"ACTIVE","new_status":"FLAGGED","previous_reputation":"HEALTHY","new_reputation":"CRITICAL","changed_at":"2026-01-01T00:00:00Z"}}"#,
        )
        .expect("envelope");
        assert_eq!(
            e.detail,
            Detail::PhoneStatus {
                phone_number: "+14155550100".into(),
                status: Some("FLAGGED".into()),
                reputation: Some("CRITICAL".into()),
            }
        );
        let e = parse(br#"{"event_type":"poll.vote_added","future":{"x":[1,2]}}"#).expect("ok");
        assert_eq!(
            (e.event_type.as_str(), e.detail),
            ("poll.vote_added", Detail::Other)
        );
    }

    #[test]
    fn malformed_bodies() {
        for body in [
            &b"not json"[..],
            b"[]",
            b"{}",
            br#"{"event_type":7}"#,
            b"",
            b"\xff",
        ] {
            assert!(parse(body).is_err(), "{body:?}");
        }
    }

    #[test]
    fn message_timestamps_and_envelope_time() {
        let e = parse(
            br#"{"event_type":"message.read","event_id":"e1","created_at":"2026-02-05T19:13:58.833366566Z",
            "trace_id":"cbb93c08fa1a3f3c4c2efc161d67f36d",
            "data":{"chat":{"id":"c-1"},"sent_at":"2026-02-05T19:13:57.814Z",
            "delivered_at":"2026-02-05T19:13:57.948Z","read_at":"yesterday"}}"#,
        )
        .expect("envelope");
        assert_eq!(
            e.trace_id.as_deref(),
            Some("cbb93c08fa1a3f3c4c2efc161d67f36d")
        );
        assert_eq!(
            e.created_at,
            Stamp::At(1_770_318_838.0 + 833_366_566.0 / 1e9)
        );
        let Detail::Message { times, .. } = e.detail else {
            panic!("a message event");
        };
        assert_eq!(
            times.sent_at,
            Stamp::At(1_770_318_837.0 + 814_000_000.0 / 1e9)
        );
        assert_eq!(
            times.delivered_at,
            Stamp::At(1_770_318_837.0 + 948_000_000.0 / 1e9)
        );
        assert_eq!(times.read_at, Stamp::Invalid);
        // 2025-01-01: under data.message; null is missing, a number is invalid.
        let legacy = parse(
            br#"{"event_type":"message.delivered","created_at":12,
            "data":{"chat_id":"c","message":{"delivered_at":"2026-02-05T19:52:22.291Z","read_at":null,"sent_at":5}}}"#,
        )
        .expect("envelope");
        assert_eq!(legacy.created_at, Stamp::Invalid);
        let Detail::Message { times, .. } = legacy.detail else {
            panic!("a message event");
        };
        assert_eq!(
            times.delivered_at,
            Stamp::At(1_770_321_142.0 + 291_000_000.0 / 1e9)
        );
        assert_eq!(times.read_at, Stamp::Missing);
        assert_eq!(times.sent_at, Stamp::Invalid);
    }
}
