//! Wire models of the Linq partner API V3, decoded for an API that evolves: unknown fields are
//! ignored, enum-like fields (`service`, `status`) are kept as the string sent, and only the
//! fields the snapshot needs are kept. Strings borrow from the page body where they can.

use std::borrow::Cow;

use serde::Deserialize;

/// One page of `GET /v3/chats`.
#[derive(Debug, PartialEq, Deserialize)]
pub struct ChatsPage<'a> {
    /// The chats on this page.
    #[serde(borrow)]
    pub chats: Vec<Chat<'a>>,
    /// Opaque cursor of the next page; `null` (or absent, or empty) on the last page.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// A chat, as far as the exporter needs it.
#[derive(Debug, PartialEq, Deserialize)]
pub struct Chat<'a> {
    /// Chat id.
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    /// Display name (often the other party's number).
    #[serde(default, borrow)]
    pub display_name: Option<Cow<'a, str>>,
    /// Participants.
    #[serde(default, borrow)]
    pub handles: Vec<Handle<'a>>,
    /// Whether the chat is archived; `None` when the page does not say (the field is
    /// deprecated and will be removed: a missing field must not read as "not archived").
    #[serde(default)]
    pub is_archived: Option<bool>,
    /// Whether it is a group chat.
    #[serde(default)]
    pub is_group: bool,
    /// `iMessage`, `SMS`, `RCS`, something newer, or null.
    #[serde(default, borrow)]
    pub service: Option<Cow<'a, str>>,
    /// Beta numeric health (0..100).
    #[serde(default, borrow)]
    pub health_score: Option<HealthScore<'a>>,
    /// Health status, the field that replaced `health_score`.
    #[serde(default, borrow)]
    pub health_status: Option<HealthStatus<'a>>,
}

/// A chat participant.
#[derive(Debug, PartialEq, Deserialize)]
pub struct Handle<'a> {
    /// E.164 number or an email address.
    #[serde(borrow)]
    pub handle: Cow<'a, str>,
    /// The handle's service.
    #[serde(default, borrow)]
    pub service: Option<Cow<'a, str>>,
    /// True for the account's own number.
    #[serde(default)]
    pub is_me: Option<bool>,
    /// `active`, `left`, `removed`, something newer, or null.
    #[serde(default, borrow)]
    pub status: Option<Cow<'a, str>>,
}

/// `health_score`: `{reason, score, updated_at}`.
#[derive(Debug, PartialEq, Deserialize)]
pub struct HealthScore<'a> {
    /// 0..100.
    pub score: f64,
    /// Why the score is what it is.
    #[serde(default, borrow)]
    pub reason: Option<Cow<'a, str>>,
    /// RFC 3339 time of the last change.
    #[serde(default, borrow)]
    pub updated_at: Option<Cow<'a, str>>,
}

/// `health_status`: `{status, doc_url, updated_at}`.
#[derive(Debug, PartialEq, Deserialize)]
pub struct HealthStatus<'a> {
    /// `HEALTHY`, `AT_RISK`, `CRITICAL`, `OPTED_OUT` or something newer.
    #[serde(borrow)]
    pub status: Cow<'a, str>,
    /// Documentation link.
    #[serde(default, borrow)]
    pub doc_url: Option<Cow<'a, str>>,
    /// RFC 3339 time of the last change.
    #[serde(default, borrow)]
    pub updated_at: Option<Cow<'a, str>>,
}

/// `GET /v3/phone_numbers`.
#[derive(Debug, Deserialize)]
pub struct PhoneNumbersPage<'a> {
    /// The account's numbers.
    #[serde(borrow)]
    pub phone_numbers: Vec<PhoneNumber<'a>>,
}

/// One of the account's numbers.
#[derive(Debug, Deserialize)]
pub struct PhoneNumber<'a> {
    /// E.164 number.
    #[serde(borrow)]
    pub phone_number: Cow<'a, str>,
    /// Line reputation (beta).
    #[serde(default, borrow)]
    pub reputation: Option<Reputation<'a>>,
    /// `iMessage` (iMessage-capable) or `RCS` (RCS and SMS only), or something newer. The
    /// line's `forwarding_number` is deliberately not read: it is someone's phone.
    #[serde(default, borrow)]
    pub line_type: Option<Cow<'a, str>>,
}

/// `reputation: {status, doc_url}`.
#[derive(Debug, Deserialize)]
pub struct Reputation<'a> {
    /// `HEALTHY`, `AT_RISK`, `CRITICAL` or something newer.
    #[serde(borrow)]
    pub status: Cow<'a, str>,
}

/// The error envelope: `{"success":false,"error":{"status":401,"code":2004,"message":"..."}}`.
#[derive(Debug, Deserialize)]
pub struct ErrorEnvelope {
    /// The error.
    pub error: ErrorBody,
    /// Linq's trace id, for support requests.
    #[serde(default)]
    pub trace_id: Option<String>,
}

/// The error body.
#[derive(Debug, Deserialize)]
pub struct ErrorBody {
    /// Linq error code, e.g. 2004.
    #[serde(default)]
    pub code: Option<i64>,
    /// Human message.
    #[serde(default)]
    pub message: Option<String>,
}

/// The Linq error code in an error body, if the body is the JSON envelope.
pub fn error_code(body: &[u8]) -> Option<i64> {
    serde_json::from_slice::<ErrorEnvelope>(body)
        .ok()
        .and_then(|e| e.error.code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::decode::decode_chats_page;

    const FULL: &str = include_str!("../../tests/fixtures/chats_page_full.json");

    #[test]
    fn decodes_both_health_fields_nulls_unknown_enums_and_extras() {
        let page = decode_chats_page(FULL.as_bytes()).expect("decodes");
        assert_eq!(page.next_cursor.as_deref(), Some("b3BhcXVlOjI="));
        assert_eq!(page.chats.len(), 4);

        let c = &page.chats[0];
        assert_eq!(c.id, "chat-1");
        assert_eq!(c.service.as_deref(), Some("iMessage"));
        let score = c.health_score.as_ref().expect("score");
        assert_eq!(score.score, 82.0);
        assert_eq!(
            c.health_status.as_ref().map(|s| s.status.as_ref()),
            Some("HEALTHY")
        );
        assert_eq!(c.handles.len(), 2);
        assert_eq!(c.handles[0].is_me, Some(true));

        let c = &page.chats[1];
        assert!(c.health_score.is_none() && c.health_status.is_none());
        assert_eq!(c.service, None);
        assert_eq!(c.display_name, None);
        assert!(c.is_group && c.is_archived == Some(true));
        assert_eq!(c.handles[1].handle, "someone@example.com");
        assert_eq!(c.handles[1].status, None);
        assert_eq!(c.handles[2].status.as_deref(), Some("left"));

        let c = &page.chats[2];
        assert_eq!(c.service.as_deref(), Some("WhatsApp"));
        assert_eq!(
            c.health_status.as_ref().map(|s| s.status.as_ref()),
            Some("SHADOWBANNED")
        );
        assert_eq!(c.handles[1].status.as_deref(), Some("muted"));
        assert_eq!(
            c.display_name.as_deref(),
            Some("Ann \"the \\ boss\"\nO'Neil ✓")
        );

        let c = &page.chats[3];
        assert_eq!(c.health_score.as_ref().map(|s| s.score), Some(12.5));
        assert!(c.health_status.is_none());
    }

    #[test]
    fn shape_errors_are_decode_errors() {
        for bad in [
            r#"{"chats": "oops", "next_cursor": null}"#,
            r#"{"chats": [{"id": "a", "handles": [], "is_archived": false, "is_group": false"#,
            r#"{"next_cursor": null}"#,
            r#"{"chats": [{"handles": []}]}"#,
            r#"{"chats": [{"id": "a", "health_score": {"score": "high"}}]}"#,
            "<html>502 Bad Gateway</html>",
            "",
        ] {
            assert!(decode_chats_page(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn last_page_shapes() {
        let p = decode_chats_page(br#"{"chats": []}"#).expect("decodes");
        assert!(p.chats.is_empty() && p.next_cursor.is_none());
        let p = decode_chats_page(br#"{"chats": [], "next_cursor": ""}"#).expect("decodes");
        assert_eq!(p.next_cursor.as_deref(), Some(""));
    }

    #[test]
    fn error_codes() {
        let body = br#"{"success":false,"error":{"status":401,"code":2004,"message":"Unauthorized"},"trace_id":"t"}"#;
        assert_eq!(error_code(body), Some(2004));
        assert_eq!(error_code(b"upstream connect error"), None);
        assert_eq!(error_code(br#"{"error":{"status":500}}"#), None);
    }
}
