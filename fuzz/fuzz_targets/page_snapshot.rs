//! Any bytes in, no panic: a `GET /v3/chats` page body goes through everything the poller does
//! with it (decode, cursor walk, snapshot building, exposition rendering in every chat-metrics
//! mode, the cached-gzip path, the summary and the status page), and the same bytes are also
//! tried as a `GET /v3/phone_numbers` body and as an error envelope.
//!
//! The whole input is the body (so the seed corpus is plain JSON pages); the knobs that are not
//! in the body (walk index, `from` filter, cap, threshold) come from a hash of the input, so
//! every mutation also moves them.
//!
//! Besides "no panic", a few cheap oracles catch wrong output: the decoder's fast path
//! (`linq_exporter::api::decode`) must accept only what serde_json accepts, with the same value (scores
//! bit for bit); the gzip form must decompress to exactly the plain form, the series count must
//! match the sample lines, and the text must be UTF-8 with one sample per line.

#![no_main]

use std::io::Read;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use linq_exporter::api::decode::decode_chats_page;
use linq_exporter::api::models::{error_code, ChatsPage, PhoneNumbersPage};
use linq_exporter::api::pagination::CursorWalk;
use linq_exporter::config::ChatMetrics;
use linq_exporter::metrics::exposition::{
    render_snapshot, render_snapshot_cached, Encoding, RenderOptions,
};
use linq_exporter::metrics::snapshot::SnapshotBuilder;
use linq_exporter::sweep::state::{AppState, Published};
use linq_exporter::telemetry::SelfMetrics;

/// `from` filters a walk may have used (`None`: an unfiltered walk, owner taken from handles).
const FROMS: [Option<&str>; 4] = [
    None,
    Some("+14155551234"),
    Some(""),
    Some("we\"ird\\\nnum✓"),
];

/// One state for the status page: building the self-metrics registry per input is wasteful.
fn state() -> &'static AppState {
    static STATE: OnceLock<AppState> = OnceLock::new();
    STATE.get_or_init(|| {
        let metrics = Arc::new(SelfMetrics::new().expect("self metrics register"));
        AppState::new(metrics, Duration::from_secs(180), "/metrics".into())
    })
}

/// FNV-1a over the input: the knobs.
fn knobs(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The chunks of a response body, joined.
fn join<B: AsRef<[u8]>>(chunks: impl IntoIterator<Item = B>) -> Vec<u8> {
    let mut out = Vec::new();
    for c in chunks {
        out.extend_from_slice(c.as_ref());
    }
    out
}

fn check_rendered(rendered: &linq_exporter::metrics::exposition::Rendered) {
    let text = rendered.text();
    let text = std::str::from_utf8(&text).expect("exposition is UTF-8");
    let samples = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    assert_eq!(samples, rendered.series, "series count != sample lines");
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "exposition does not end with a newline"
    );
    check_gzip(rendered);
}

/// The gzip form (with a live tail) inflates to the plain bytes, cached or released.
fn check_gzip(rendered: &linq_exporter::metrics::exposition::Rendered) {
    for tail in [&b""[..], b"x", b"linq_up 1\n"] {
        let gz = join(rendered.gzip_with_tail(tail));
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut plain)
            .expect("gzip_with_tail is valid gzip");
        assert!(
            plain == rendered.plain_with_tail(tail.to_vec()).concat(),
            "gzip_with_tail != plain_with_tail"
        );
        assert!(
            plain
                == rendered
                    .without_text()
                    .plain_with_tail(tail.to_vec())
                    .concat(),
            "the released text does not inflate back to the cached one"
        );
    }
}

/// The fast path against serde_json, on text that is UTF-8 (as `decode_chats_page` gives it).
fn check_fast_path(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(fast) = linq_exporter::api::decode::chats_page(text) else {
        return;
    };
    let slow: ChatsPage<'_> = match serde_json::from_str(text) {
        Ok(page) => page,
        Err(e) => panic!("the fast path accepted a page serde_json rejects: {e}"),
    };
    assert_eq!(fast, slow, "the fast path and serde_json disagree");
    for (a, b) in fast.chats.iter().zip(&slow.chats) {
        let bits = |c: &linq_exporter::api::models::Chat<'_>| {
            c.health_score.as_ref().map(|s| s.score.to_bits())
        };
        assert_eq!(bits(a), bits(b), "scores differ in their bits");
    }
}

fuzz_target!(|data: &[u8]| {
    let k = knobs(data);
    check_fast_path(data);

    // The same bytes as the other two bodies the client decodes.
    let _ = error_code(data);
    let lines: Option<Vec<(String, Option<String>)>> =
        serde_json::from_slice::<PhoneNumbersPage<'_>>(data)
            .ok()
            .map(|p| {
                p.phone_numbers
                    .iter()
                    .map(|n| {
                        (
                            n.phone_number.to_string(),
                            n.reputation.as_ref().map(|r| r.status.to_string()),
                        )
                    })
                    .collect()
            });

    let Ok(page) = decode_chats_page(data) else {
        return;
    };

    // The cursor walk: this page after a first page, then the same cursor again (a loop
    // must be reported, not followed).
    let mut walk = CursorWalk::new();
    let _ = walk.cursor();
    let _ = walk.advance(Some("first".into()), 1);
    let cursor = page.next_cursor.clone();
    let first = walk.advance(cursor.clone(), page.chats.len());
    if first.is_ok() && !walk.is_done() {
        assert_eq!(walk.cursor(), cursor.as_deref());
        let again = walk.advance(cursor.clone(), page.chats.len());
        assert!(again.is_err(), "a repeated cursor was not detected");
    }
    assert!(walk.pages() >= 2);

    // Snapshot building: the page seen by one walk, and (for some inputs) part of it again by
    // an earlier or later walk with another filter, which exercises deduplication.
    let keep_display_name = k & 1 == 0;
    let walk_index = ((k >> 1) & 3) as usize;
    let from = FROMS[((k >> 3) & 3) as usize];
    let mut builder = SnapshotBuilder::new(keep_display_name);
    builder.count_page();
    for chat in &page.chats {
        builder.add_chat(walk_index, from, chat);
    }
    if k & (1 << 5) != 0 {
        builder.count_page();
        let other_walk = ((k >> 6) & 3) as usize;
        let other_from = FROMS[((k >> 8) & 3) as usize];
        for chat in page.chats.iter().rev().step_by(2) {
            builder.add_chat(other_walk, other_from, chat);
        }
    }
    let _ = builder.len();
    let _ = builder.is_empty();
    let walk_numbers: Vec<String> = match (k >> 10) & 3 {
        0 => Vec::new(),
        1 => vec!["+14155551234".into()],
        2 => vec!["+14155550000".into(), "+14155551234".into()],
        _ => from.map(|f| vec![f.to_string()]).unwrap_or_default(),
    };
    let mut snap = builder.finish(&walk_numbers);
    if let Some(lines) = &lines {
        snap.reputations = lines
            .iter()
            .filter_map(|(n, r)| r.as_deref().map(|r| (Arc::from(n.as_str()), Arc::from(r))))
            .collect();
    }
    assert!(snap.total_chats() <= page.chats.len());

    // Rendering in every mode.
    let cap = match (k >> 12) & 3 {
        0 => None,
        1 => Some(0),
        2 => Some(1),
        _ => Some(((k >> 14) & 7) as usize),
    };
    let unhealthy_score = [0.0, 50.0, 100.0, 30.5][((k >> 17) & 3) as usize];
    let mut last = None;
    for chat_metrics in [ChatMetrics::All, ChatMetrics::Unhealthy, ChatMetrics::None] {
        for max_chat_series in [None, cap] {
            let opts = RenderOptions {
                chat_metrics,
                unhealthy_score,
                max_chat_series,
                display_name: k & (1 << 19) == 0,
            };
            let rendered = render_snapshot(&snap, &opts);
            check_rendered(&rendered);
            let _ = rendered.gzip_with_tail(b"x");
            // The protobuf form, and each form cached as gzip only: the same bytes come back.
            let protobuf = render_snapshot_cached(&snap, &opts, Encoding::Protobuf, true);
            check_gzip(&protobuf);
            assert_eq!(protobuf.series, rendered.series, "protobuf series");
            for (encoding, full) in [(Encoding::Text, &rendered), (Encoding::Protobuf, &protobuf)] {
                let lean = render_snapshot_cached(&snap, &opts, encoding, false);
                assert!(!lean.has_text());
                assert!(
                    lean.text() == full.text(),
                    "gzip-only form inflates to the plain bytes"
                );
            }
            last = Some((rendered, protobuf));
        }
    }

    // The summary and the status page built from it.
    let summary = snap.summary();
    let state = state();
    if let Some((rendered, protobuf)) = last {
        state.publish(Published {
            rendered,
            protobuf: Some(protobuf),
            summary,
            completed_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000),
        });
        let html = linq_exporter::http::status_page::render(
            state,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_030),
        );
        assert!(!html.is_empty());
    }
});
