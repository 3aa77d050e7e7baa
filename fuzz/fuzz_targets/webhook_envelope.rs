//! Fuzzes the webhook receiver's decoding of untrusted bytes: the envelope decoder must never
//! panic, must accept exactly what serde_json parses as an object with a string `event_type`,
//! and must give back that event type; signature verification of arbitrary headers and bodies
//! must never panic either, and never accept a body signed with another secret.
//!
//!   scripts/fuzz.sh 600 webhook_envelope
#![no_main]

use libfuzzer_sys::fuzz_target;
use linq_exporter::webhook::envelope;
use linq_exporter::webhook::verify::{sign_both, HeaderMap, HeaderName, HeaderValue, Verifier};

fuzz_target!(|data: &[u8]| {
    let parsed = envelope::parse(data);
    let oracle = serde_json::from_slice::<serde_json::Value>(data)
        .ok()
        .and_then(|v| {
            v.get("event_type")
                .and_then(|t| t.as_str())
                .map(str::to_string)
        });
    match (&parsed, &oracle) {
        (Ok(e), Some(t)) => assert_eq!(&e.event_type, t),
        (Err(_), None) => {}
        _ => panic!("envelope::parse and serde_json disagree: {parsed:?} vs {oracle:?}"),
    }

    // Split the input into a header value and a body, and verify them as both schemes would.
    let cut = data.first().map_or(0, |b| *b as usize % (data.len() + 1));
    let (head, body) = data.split_at(cut);
    let head = String::from_utf8_lossy(head);
    let mut headers = HeaderMap::new();
    for name in [
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "x-webhook-timestamp",
        "x-webhook-signature",
    ] {
        if let Ok(v) = HeaderValue::from_str(&head) {
            headers.insert(name, v);
        }
    }
    let v = Verifier::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw7Jxx2Oll+OE=");
    let _ = v.verify(
        &headers,
        body,
        1_780_000_000,
        std::time::Duration::from_secs(300),
    );
    // A body signed with another secret never verifies.
    let mut forged = HeaderMap::new();
    for (k, value) in sign_both(
        "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        "msg",
        1_780_000_000,
        body,
    ) {
        if let (Ok(k), Ok(value)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            forged.insert(k, value);
        }
    }
    assert!(v
        .verify(
            &forged,
            body,
            1_780_000_000,
            std::time::Duration::from_secs(300)
        )
        .is_err());
});
