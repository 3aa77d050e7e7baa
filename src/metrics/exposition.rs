//! Renders a [`Snapshot`] once per completed sweep into the bytes every scrape shares, in one
//! of two encodings: text, which is at once Prometheus text 0.0.4 and the snapshot's part of
//! OpenMetrics (its families are gauges and one histogram, whose lines are the same in both;
//! the only OpenMetrics-only line, `# UNIT`, is a comment to a 0.0.4 parser), and protobuf.
//! Each keeps a gzip form that a scrape extends with the live self metrics without
//! recompressing the snapshot: the cached part is a sync-flushed raw deflate stream, the live
//! tail is a second deflate stream appended to it, and the CRC32s are combined, giving one
//! ordinary gzip member that every client reads.
//!
//! While the next snapshot is rendered, the published one gives up its plain bytes
//! ([`Rendered::without_text`]) so that two full expositions never sit in memory together; a
//! plain scrape in that window is served by inflating the cached gzip form chunk by chunk.

use std::collections::VecDeque;

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

use crate::format::pb::{self, field};
use crate::format::{unit_of, write_f64, write_header, write_sample, Format};
use crate::metrics::snapshot::ChatMetrics;
use crate::metrics::snapshot::{ChatRecord, Snapshot, SCORE_BUCKETS};

pub use crate::format::escape_label_value;

/// The content type of the text format.
pub const CONTENT_TYPE: &str = crate::format::TEXT_CONTENT_TYPE;

/// The encodings a snapshot is rendered and cached in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Text: serves text 0.0.4 and OpenMetrics alike.
    Text,
    /// Protobuf `MetricFamily` messages.
    Protobuf,
}

impl Encoding {
    /// The cached encoding a response in `format` is built on.
    pub fn of(format: Format) -> Encoding {
        match format {
            Format::Protobuf => Encoding::Protobuf,
            Format::Text | Format::OpenMetrics { .. } => Encoding::Text,
        }
    }
}

/// How per-chat series are chosen and labelled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RenderOptions {
    /// Which chats get per-chat series.
    pub chat_metrics: ChatMetrics,
    /// Threshold for `unhealthy`.
    pub unhealthy_score: f64,
    /// Cap on chats with per-chat series.
    pub max_chat_series: Option<usize>,
    /// Add `display_name` to `linq_chat_info`.
    pub display_name: bool,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            chat_metrics: ChatMetrics::All,
            unhealthy_score: 50.0,
            max_chat_series: None,
            display_name: false,
        }
    }
}

/// A rendered snapshot: its bytes and their cached gzip form, each as a list of shared chunks
/// (a scrape sends them without copying; rendering never reallocates a large buffer).
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The encoded snapshot metrics, in chunks; `None` once released (see
    /// [`Rendered::without_text`]).
    text: Option<Vec<Bytes>>,
    /// gzip header plus the raw deflate of `text`, sync-flushed at the end, in chunks.
    gzip_prefix: Vec<Bytes>,
    /// CRC32 state of `text`.
    crc: crc32fast::Hasher,
    /// Length of `text`.
    len: usize,
    /// Series in `text`.
    pub series: usize,
    /// Chats the cap left without per-chat series.
    pub dropped: usize,
}

/// Deflate level of the cached gzip: with the zlib-rs backend, level 1 is its "quick" strategy,
/// which leaves the exposition about 40% larger than level 2 for little time saved.
const GZIP_LEVEL: u32 = 2;

/// Rendered bytes are cut into chunks of at most this size (one allocation each, sized to an
/// allocator size class: a few bytes more would round up to the next class, 25% larger).
const CHUNK: usize = 256 * 1024;

/// The cached gzip form is cut into chunks of about this size: a 10 MB body goes out in ten
/// frames rather than two hundred (each frame is a write for the server).
const GZIP_CHUNK: usize = 1024 * 1024;

/// A chunk is cut once fewer than this many bytes are left in it, so that the next sample
/// still fits (a longer one only makes its chunk grow).
const LINE_ROOM: usize = 4096;

/// Every snapshot family's HELP says this: the exporter-writing guide asks that series served
/// from a cache say so.
const CACHED: &str = " From the last complete sweep, cached between sweeps.";

/// A gauge sample: labels and value.
type GaugeSink<'a> = dyn FnMut(&[(&str, &str)], f64) + 'a;
/// A histogram sample: labels, (upper bound, cumulative count) per bucket without +Inf,
/// count and sum.
type HistogramSink<'a> = dyn FnMut(&[(&str, &str)], &[(f64, u64)], u64, f64) + 'a;

/// Encodes one protobuf `Metric` into the buffer it is given.
type MetricEncoder<'a> = dyn Fn(&mut Vec<u8>) + 'a;
/// Takes each metric's encoder in turn.
type MetricSink<'a> = dyn FnMut(&MetricEncoder<'_>) + 'a;

/// Writes families into chunks, compressing and checksumming each finished chunk as it goes.
struct Writer {
    encoding: Encoding,
    /// Keep the plain chunks (else only their gzip form is kept).
    keep_plain: bool,
    out: Vec<u8>,
    /// One protobuf `Metric` at a time, to learn its length before it is written.
    scratch: Vec<u8>,
    series: usize,
    text: Vec<Bytes>,
    gzip: Vec<Bytes>,
    /// Compressed bytes not yet cut into a gzip chunk.
    gz_pending: Vec<u8>,
    compress: Compress,
    crc: crc32fast::Hasher,
    len: usize,
}

impl Writer {
    fn new(encoding: Encoding, keep_plain: bool) -> Self {
        Writer {
            encoding,
            keep_plain,
            out: Vec::with_capacity(CHUNK),
            scratch: Vec::new(),
            series: 0,
            text: Vec::new(),
            gzip: vec![Bytes::from_static(&GZIP_HEADER)],
            gz_pending: Vec::with_capacity(GZIP_CHUNK + CHUNK / 2),
            compress: Compress::new(Compression::new(GZIP_LEVEL), false),
            crc: crc32fast::Hasher::new(),
            len: 0,
        }
    }

    /// Moves the current chunk into the output once it is full (or `force`).
    fn cut(&mut self, force: bool) {
        if self.out.len() < CHUNK - LINE_ROOM && !force {
            return;
        }
        let chunk = std::mem::replace(&mut self.out, Vec::with_capacity(CHUNK));
        let flush = if force {
            FlushCompress::Sync
        } else {
            FlushCompress::None
        };
        deflate_into(&mut self.compress, &chunk, &mut self.gz_pending, flush);
        if self.gz_pending.len() >= GZIP_CHUNK || (force && !self.gz_pending.is_empty()) {
            let mut z = std::mem::replace(
                &mut self.gz_pending,
                Vec::with_capacity(if force { 0 } else { GZIP_CHUNK + CHUNK / 2 }),
            );
            z.shrink_to_fit();
            self.gzip.push(Bytes::from(z));
        }
        self.crc.update(&chunk);
        self.len += chunk.len();
        if !chunk.is_empty() && self.keep_plain {
            self.text.push(Bytes::from(chunk));
        }
    }

    fn finish(mut self, dropped: usize) -> Rendered {
        self.cut(true);
        Rendered {
            text: self.keep_plain.then_some(self.text),
            gzip_prefix: self.gzip,
            crc: self.crc,
            len: self.len,
            series: self.series,
            dropped,
        }
    }

    /// A protobuf `MetricFamily` whose metrics `each` encodes one at a time into the scratch
    /// buffer: run once to learn the family's length (written first, as the delimited format
    /// wants), then again to write them.
    fn pb_family(
        &mut self,
        name: &str,
        help: &str,
        kind: u64,
        each: &dyn Fn(&mut MetricSink<'_>),
    ) -> usize {
        let mut len = pb::family_header_len(name, help, kind, unit_of(name));
        let mut metrics = 0;
        let scratch = &mut self.scratch;
        each(&mut |encode| {
            scratch.clear();
            encode(scratch);
            len += pb::bytes_field_len(scratch.len());
            metrics += 1;
        });
        // A family without metrics is left out, as client libraries do.
        if metrics == 0 {
            return 0;
        }
        pb::varint(&mut self.out, len as u64);
        pb::family_header(&mut self.out, name, help, kind, unit_of(name));
        metrics = 0;
        each(&mut |encode| {
            self.scratch.clear();
            encode(&mut self.scratch);
            pb::bytes(&mut self.out, field::FAMILY_METRIC, &self.scratch);
            metrics += 1;
            self.cut(false);
        });
        metrics
    }

    /// A gauge family; `each` calls its sink once per sample.
    fn gauge(&mut self, name: &str, help: &str, each: &dyn Fn(&mut GaugeSink<'_>)) {
        let help = format!("{help}{CACHED}");
        match self.encoding {
            Encoding::Text => {
                write_header(&mut self.out, OPENMETRICS, name, &help, "gauge");
                each(&mut |labels, v| {
                    write_sample(&mut self.out, name, labels, None, v);
                    self.out.push(b'\n');
                    self.series += 1;
                    self.cut(false);
                });
            }
            Encoding::Protobuf => {
                self.series += self.pb_family(name, &help, field::GAUGE, &|metric| {
                    each(&mut |labels, v| {
                        metric(&|m: &mut Vec<u8>| {
                            for (k, val) in labels {
                                pb::label_pair(m, field::METRIC_LABEL, k, val);
                            }
                            pb::message(m, field::METRIC_GAUGE, |g| pb::double(g, field::ONE, v));
                        })
                    })
                });
            }
        }
    }

    /// A histogram family; `each` calls its sink once per labelled histogram.
    fn histogram(&mut self, name: &str, help: &str, each: &dyn Fn(&mut HistogramSink<'_>)) {
        let help = format!("{help}{CACHED}");
        let mut series = 0;
        each(&mut |_, buckets, _, _| series += buckets.len() + 3);
        match self.encoding {
            Encoding::Text => {
                write_header(&mut self.out, OPENMETRICS, name, &help, "histogram");
                let (bucket, count_name, sum_name) = (
                    format!("{name}_bucket"),
                    format!("{name}_count"),
                    format!("{name}_sum"),
                );
                let mut le = Vec::new();
                each(&mut |labels, buckets, count, sum| {
                    for (upper, n) in buckets {
                        le.clear();
                        write_f64(&mut le, *upper);
                        let le = String::from_utf8_lossy(&le);
                        write_sample(&mut self.out, &bucket, labels, Some(("le", &le)), *n as f64);
                        self.out.push(b'\n');
                    }
                    write_sample(
                        &mut self.out,
                        &bucket,
                        labels,
                        Some(("le", "+Inf")),
                        count as f64,
                    );
                    self.out.push(b'\n');
                    write_sample(&mut self.out, &count_name, labels, None, count as f64);
                    self.out.push(b'\n');
                    write_sample(&mut self.out, &sum_name, labels, None, sum);
                    self.out.push(b'\n');
                    self.cut(false);
                });
            }
            Encoding::Protobuf => {
                self.pb_family(name, &help, field::HISTOGRAM, &|metric| {
                    each(&mut |labels, buckets, count, sum| {
                        metric(&|m: &mut Vec<u8>| {
                            for (k, val) in labels {
                                pb::label_pair(m, field::METRIC_LABEL, k, val);
                            }
                            pb::message(m, field::METRIC_HISTOGRAM, |h| {
                                pb::uint(h, field::H_COUNT, count);
                                pb::double(h, field::H_SUM, sum);
                                for (upper, n) in buckets {
                                    pb::message(h, field::H_BUCKET, |b| {
                                        pb::uint(b, field::B_COUNT, *n);
                                        pb::double(b, field::B_UPPER, *upper);
                                    });
                                }
                            });
                        })
                    })
                });
            }
        }
        self.series += series;
    }
}

/// The snapshot's text is shared by text 0.0.4 and OpenMetrics: its headers are written the
/// OpenMetrics way (a `# UNIT` line where the name has a unit). Its HELP texts hold no double
/// quote or backslash, so their escaping is the same in both (a test holds them to that).
const OPENMETRICS: Format = Format::OpenMetrics { legacy: false };

fn bool_label(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

/// `is_archived`: `true`, `false`, or `unknown` when the API's page did not say (the field is
/// deprecated; reading its absence as `false` would silently un-archive every chat).
fn archived_label(a: Option<bool>) -> &'static str {
    a.map_or("unknown", bool_label)
}

/// Renders the snapshot's metrics as text (text 0.0.4 and OpenMetrics).
pub fn render_snapshot(snap: &Snapshot, opts: &RenderOptions) -> Rendered {
    render_snapshot_as(snap, opts, Encoding::Text)
}

/// Renders the snapshot's metrics in `encoding`.
pub fn render_snapshot_as(snap: &Snapshot, opts: &RenderOptions, encoding: Encoding) -> Rendered {
    render_snapshot_cached(snap, opts, encoding, true)
}

/// Renders the snapshot's metrics in `encoding`, keeping the plain bytes only when `keep_plain`
/// (else each chunk is dropped once compressed, and plain answers inflate the gzip form).
pub fn render_snapshot_cached(
    snap: &Snapshot,
    opts: &RenderOptions,
    encoding: Encoding,
    keep_plain: bool,
) -> Rendered {
    let (chats, dropped) = snap.chats_for_series(
        opts.chat_metrics,
        opts.unhealthy_score,
        opts.max_chat_series,
    );
    let mut w = Writer::new(encoding, keep_plain);

    per_chat(&mut w, snap, &chats, opts);

    w.gauge(
        "linq_chats",
        "Chats by number, service, group and archived state.",
        &|emit| {
            for ((phone, service, group, archived), n) in &snap.chat_counts {
                emit(
                    &[
                        ("phone_number", phone),
                        ("service", service),
                        ("is_group", bool_label(*group)),
                        ("is_archived", archived_label(*archived)),
                    ],
                    *n as f64,
                );
            }
        },
    );
    w.gauge(
        "linq_chat_participants",
        "Chat participants other than the account's own handle, by number, handle service and status, across all chats.",
        &|emit| {
            for ((phone, service, status), n) in &snap.participants {
                emit(
                    &[
                        ("phone_number", phone),
                        ("service", service),
                        ("status", status),
                    ],
                    *n as f64,
                );
            }
        },
    );
    w.gauge(
        "linq_chats_by_health_status",
        "Chats carrying each health_status, by number.",
        &|emit| {
            for ((phone, status), n) in &snap.by_status {
                emit(&[("phone_number", phone), ("status", status)], *n as f64);
            }
        },
    );
    w.histogram(
        "linq_chats_by_health_score",
        "Distribution of health_score over each number's scored chats (a gauge histogram: it describes the current sweep and goes down as well as up, so read it without rate()).",
        &|emit| {
            for (phone, h) in &snap.score_buckets {
                let buckets: [(f64, u64); 10] =
                    std::array::from_fn(|i| (f64::from(SCORE_BUCKETS[i]), h.le[i]));
                emit(&[("phone_number", phone)], &buckets, h.count, h.sum);
            }
        },
    );

    // linq_phone_number_reputation is live (crate::telemetry): a webhook updates it at once.

    w.gauge(
        "linq_phone_number_info",
        "1 for each of the account's numbers, with its line type (iMessage or RCS, from GET /v3/phone_numbers; unknown when not given).",
        &|emit| {
            for (phone, line_type) in &snap.line_types {
                emit(&[("phone_number", phone), ("line_type", line_type)], 1.0);
            }
        },
    );

    w.finish(dropped)
}

fn per_chat(w: &mut Writer, snap: &Snapshot, chats: &[&ChatRecord], opts: &RenderOptions) {
    w.gauge(
        "linq_chat_health_score",
        "health_score.score of each chat that has one (0-100, beta field).",
        &|emit| {
            for c in chats {
                if let Some(score) = c.score() {
                    emit(
                        &[
                            ("chat_id", &c.id),
                            ("phone_number", snap.label(c.phone_number)),
                        ],
                        score,
                    );
                }
            }
        },
    );
    w.gauge(
        "linq_chat_health_status",
        "1 for the current health_status.status of each chat that carries one.",
        &|emit| {
            for c in chats {
                if let Some(status) = c.status() {
                    emit(
                        &[
                            ("chat_id", &c.id),
                            ("phone_number", snap.label(c.phone_number)),
                            ("status", snap.label(status)),
                        ],
                        1.0,
                    );
                }
            }
        },
    );
    w.gauge(
        "linq_chat_health_updated_timestamp_seconds",
        "Unix time of each chat's last health change (health_status.updated_at, else health_score.updated_at).",
        &|emit| {
            for c in chats {
                if let Some(t) = c.health_updated() {
                    emit(
                        &[
                            ("chat_id", &c.id),
                            ("phone_number", snap.label(c.phone_number)),
                        ],
                        t as f64,
                    );
                }
            }
        },
    );
    w.gauge(
        "linq_chat_info",
        "1 per chat, with its descriptive labels.",
        &|emit| {
            for c in chats {
                let base = [
                    ("chat_id", &*c.id),
                    ("phone_number", snap.label(c.phone_number)),
                    ("service", snap.label(c.service)),
                    ("is_group", bool_label(c.is_group)),
                    ("is_archived", archived_label(c.is_archived)),
                    ("display_name", c.display_name.as_deref().unwrap_or("")),
                ];
                let n = if opts.display_name { 6 } else { 5 };
                emit(&base[..n], 1.0);
            }
        },
    );
}

/// The plain exposition of a scrape, chunk by chunk (see [`Rendered::plain_with_tail`]).
#[derive(Debug)]
pub struct PlainChunks {
    source: Source,
    len: u64,
}

#[derive(Debug)]
enum Source {
    Cached(VecDeque<Bytes>),
    Inflating {
        gzip: VecDeque<Bytes>,
        inflate: Box<Decompress>,
        text_len: u64,
        tail: Option<Bytes>,
    },
}

impl PlainChunks {
    /// Bytes still to come.
    pub fn remaining(&self) -> u64 {
        self.len
    }

    /// Everything, in one buffer.
    pub fn concat(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len as usize);
        for chunk in self {
            out.extend_from_slice(&chunk);
        }
        out
    }
}

impl Iterator for PlainChunks {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        let next = match &mut self.source {
            Source::Cached(chunks) => chunks.pop_front(),
            Source::Inflating {
                gzip,
                inflate,
                text_len,
                tail,
            } => {
                let mut out = Vec::with_capacity(CHUNK);
                while out.len() < out.capacity() && inflate.total_out() < *text_len {
                    let input = gzip.front().map(|b| &b[..]).unwrap_or(&[]);
                    let (in0, out0) = (inflate.total_in(), out.len());
                    let status = inflate.decompress_vec(input, &mut out, FlushDecompress::None);
                    let used = (inflate.total_in() - in0) as usize;
                    if used > 0 {
                        if let Some(front) = gzip.front_mut() {
                            let _ = front.split_to(used.min(front.len()));
                            if front.is_empty() {
                                gzip.pop_front();
                            }
                        }
                    }
                    // Our own stream never fails to inflate; if it somehow did, the response
                    // ends short rather than looping.
                    if status.is_err() || (used == 0 && out.len() == out0) {
                        *text_len = inflate.total_out();
                        break;
                    }
                }
                if out.is_empty() {
                    tail.take()
                } else {
                    Some(Bytes::from(out))
                }
            }
        };
        if let Some(b) = &next {
            self.len = self.len.saturating_sub(b.len() as u64);
        }
        next
    }
}

/// A live tail up to this size is appended as stored (uncompressed) deflate blocks: a few KB
/// more on the wire against a 10 MB body, and no compressor (whose state alone is hundreds of
/// KB to set up) on every scrape. Larger tails (many webhook series) are compressed.
const STORED_TAIL_MAX: usize = 64 * 1024;

/// Appends `data` as stored deflate blocks, the last one final (RFC 1951 3.2.4). The cached
/// prefix ends with a sync flush, so the stream is at a byte boundary here.
fn stored_blocks(out: &mut Vec<u8>, data: &[u8]) {
    let mut blocks = data.chunks(65_535).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
        return;
    }
    while let Some(block) = blocks.next() {
        out.push(u8::from(blocks.peek().is_none()));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
}

/// gzip member header: magic, deflate, no flags, no mtime, no extra flags, unknown OS.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// Compresses all of `input` into `out` with `flush`. zlib is done with a sync flush once it
/// returns with output space to spare, and with a finish once it reports the stream's end.
fn deflate_into(c: &mut Compress, mut input: &[u8], out: &mut Vec<u8>, flush: FlushCompress) {
    let finish = matches!(flush, FlushCompress::Finish);
    loop {
        if out.capacity() - out.len() < 4096 {
            out.reserve(out.len().max(4096));
        }
        let before = c.total_in();
        let status = c.compress_vec(input, out, flush);
        input = &input[(c.total_in() - before) as usize..];
        match status {
            Ok(flate2::Status::StreamEnd) => return,
            Ok(_) if !finish && input.is_empty() && out.len() < out.capacity() => return,
            Ok(_) => {}
            // Only reachable on misuse of the stream; the text stays correct without gzip.
            Err(_) => return,
        }
    }
}

impl Rendered {
    /// An empty snapshot (before the first complete sweep): only the self metrics are served.
    pub fn empty() -> Self {
        Writer::new(Encoding::Text, true).finish(0)
    }

    /// The same snapshot without its plain text (the gzip form is shared, not copied). The
    /// poller publishes this before rendering the next snapshot, so the old text's memory is
    /// free for the new one; plain scrapes meanwhile inflate the gzip form.
    pub fn without_text(&self) -> Rendered {
        Rendered {
            text: None,
            gzip_prefix: self.gzip_prefix.clone(),
            crc: self.crc.clone(),
            len: self.len,
            series: self.series,
            dropped: self.dropped,
        }
    }

    /// Whether the plain text is cached (else plain scrapes inflate the gzip form).
    pub fn has_text(&self) -> bool {
        self.text.is_some()
    }

    /// The snapshot's exposition text, in one buffer (for `--once` and tests).
    pub fn text(&self) -> Vec<u8> {
        self.plain_with_tail(Vec::new()).concat()
    }

    /// The plain exposition of the snapshot followed by `tail`, as chunks: the cached ones,
    /// shared (no copy), or inflated from the gzip form one at a time when the text is released.
    pub fn plain_with_tail(&self, tail: Vec<u8>) -> PlainChunks {
        let len = self.len as u64 + tail.len() as u64;
        let tail = (!tail.is_empty()).then(|| Bytes::from(tail));
        let source = match &self.text {
            Some(text) => Source::Cached(text.iter().cloned().chain(tail).collect()),
            None => Source::Inflating {
                // The first chunk is the gzip header; the rest is raw deflate.
                gzip: self.gzip_prefix.iter().skip(1).cloned().collect(),
                inflate: Box::new(Decompress::new(false)),
                text_len: self.len as u64,
                tail,
            },
        };
        PlainChunks { source, len }
    }

    /// One gzip member holding the snapshot followed by `tail`, as two chunks: the cached,
    /// shared prefix and the compressed tail with the gzip trailer (only `tail` is compressed).
    pub fn gzip_with_tail(&self, tail: &[u8]) -> Vec<Bytes> {
        let mut out;
        if tail.len() <= STORED_TAIL_MAX {
            out = Vec::with_capacity(tail.len() + 5 * (tail.len() / 65_535 + 1) + 8);
            stored_blocks(&mut out, tail);
        } else {
            out = Vec::with_capacity(tail.len() / 3 + 64);
            let mut compress = Compress::new(Compression::new(GZIP_LEVEL), false);
            deflate_into(&mut compress, tail, &mut out, FlushCompress::Finish);
        }
        let mut crc = self.crc.clone();
        let mut tail_crc = crc32fast::Hasher::new();
        tail_crc.update(tail);
        crc.combine(&tail_crc);
        out.extend_from_slice(&crc.finalize().to_le_bytes());
        // ISIZE is the length modulo 2^32, as RFC 1952 defines it.
        let size = (self.len as u64 + tail.len() as u64) as u32;
        out.extend_from_slice(&size.to_le_bytes());
        let mut chunks = Vec::with_capacity(self.gzip_prefix.len() + 1);
        chunks.extend(self.gzip_prefix.iter().cloned());
        chunks.push(Bytes::from(out));
        chunks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::decode::decode_chats_page;
    use crate::metrics::snapshot::SnapshotBuilder;
    use std::io::Read;

    fn snapshot() -> Snapshot {
        let page = decode_chats_page(include_bytes!("../../tests/fixtures/chats_page_full.json"))
            .expect("fixture");
        let mut b = SnapshotBuilder::new(true);
        for c in &page.chats {
            b.add_chat(0, None, c);
        }
        b.finish(&[])
    }

    /// `n` chats that differ only in their ids: large renders from a one-chat fixture.
    fn copies_of_one_chat(n: usize) -> Snapshot {
        let page = decode_chats_page(include_bytes!("../../tests/fixtures/chats_page_full.json"))
            .expect("fixture");
        let mut b = SnapshotBuilder::new(false);
        let mut chat = page.chats.into_iter().next().expect("a chat");
        for i in 0..n {
            chat.id = format!("chat-{i:05}").into();
            b.add_chat(0, None, &chat);
        }
        b.finish(&[])
    }

    #[test]
    fn escapes_quotes_backslashes_newlines_keeps_unicode() {
        let mut out = Vec::new();
        escape_label_value(&mut out, "Ann \"the \\ boss\"\nO'Neil ✓");
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "Ann \\\"the \\\\ boss\\\"\\nO'Neil ✓"
        );
    }

    #[test]
    fn display_name_label_is_opt_in_and_escaped() {
        let s = snapshot();
        let off = render_snapshot(&s, &RenderOptions::default());
        assert!(!String::from_utf8_lossy(&off.text()).contains("display_name"));
        let on = render_snapshot(
            &s,
            &RenderOptions {
                display_name: true,
                ..Default::default()
            },
        );
        let text = String::from_utf8(on.text()).expect("utf8");
        assert!(text.contains(
            "linq_chat_info{chat_id=\"chat-3\",phone_number=\"+14155551234\",service=\"WhatsApp\",is_group=\"false\",is_archived=\"false\",display_name=\"Ann \\\"the \\\\ boss\\\"\\nO'Neil ✓\"} 1\n"
        ), "{text}");
    }

    #[test]
    fn series_count_matches_sample_lines() {
        let r = render_snapshot(&snapshot(), &RenderOptions::default());
        let text = String::from_utf8(r.text()).expect("utf8");
        let samples = text.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(r.series, samples);
        // 2 scores + 2 statuses + 3 health timestamps + 4 info + 4 chat counts + 5 participants
        // + 9 status counts + 2 score histograms (10 buckets, +Inf, count, sum)
        assert_eq!(samples, 55);
        assert!(text.contains(
            "linq_chat_health_score{chat_id=\"chat-4\",phone_number=\"unknown\"} 12.5\n"
        ));
        for line in [
            "# TYPE linq_chats_by_health_score histogram\n",
            "linq_chats_by_health_score_bucket{phone_number=\"+14155551234\",le=\"80\"} 0\n",
            "linq_chats_by_health_score_bucket{phone_number=\"+14155551234\",le=\"90\"} 1\n",
            "linq_chats_by_health_score_bucket{phone_number=\"+14155551234\",le=\"+Inf\"} 1\n",
            "linq_chats_by_health_score_count{phone_number=\"+14155551234\"} 1\n",
            "linq_chats_by_health_score_sum{phone_number=\"+14155551234\"} 82\n",
            "linq_chats_by_health_score_bucket{phone_number=\"unknown\",le=\"10\"} 0\n",
            "linq_chats_by_health_score_bucket{phone_number=\"unknown\",le=\"20\"} 1\n",
            "linq_chats_by_health_score_sum{phone_number=\"unknown\"} 12.5\n",
            "# UNIT linq_chat_health_updated_timestamp_seconds seconds\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        // Shared by text 0.0.4 and OpenMetrics: no HELP may need escaping differently.
        for help in text.lines().filter(|l| l.starts_with("# HELP")) {
            assert!(!help.contains('"') && !help.contains('\\'), "{help}");
            assert!(help.ends_with(CACHED), "{help}");
        }
    }

    #[allow(dead_code, missing_docs)]
    mod metrics_proto {
        include!("../../tests/common/metrics_proto.rs");
    }

    #[test]
    fn protobuf_carries_the_same_samples() {
        let s = snapshot();
        let text = render_snapshot(&s, &RenderOptions::default());
        let pb = render_snapshot_as(&s, &RenderOptions::default(), Encoding::Protobuf);
        assert_eq!(pb.series, text.series);
        let families = metrics_proto::decode_families(&pb.text());
        let names: Vec<&str> = families.iter().map(|f| f.name()).collect();
        assert_eq!(
            names,
            [
                "linq_chat_health_score",
                "linq_chat_health_status",
                "linq_chat_health_updated_timestamp_seconds",
                "linq_chat_info",
                "linq_chats",
                "linq_chat_participants",
                "linq_chats_by_health_status",
                "linq_chats_by_health_score",
            ]
        );
        let score = &families[0];
        assert_eq!(score.r#type, Some(1));
        assert!(score.help.as_deref().is_some_and(|h| h.ends_with(CACHED)));
        let chat4 = score
            .metric
            .iter()
            .find(|m| m.label("chat_id") == Some("chat-4"))
            .expect("chat-4");
        assert_eq!(chat4.label("phone_number"), Some("unknown"));
        assert_eq!(chat4.gauge.as_ref().and_then(|g| g.value), Some(12.5));
        assert_eq!(families[2].unit.as_deref(), Some("seconds"));
        let hist = &families[7];
        assert_eq!(hist.r#type, Some(4));
        let me = hist
            .metric
            .iter()
            .find(|m| m.label("phone_number") == Some("+14155551234"))
            .and_then(|m| m.histogram.as_ref())
            .expect("histogram");
        assert_eq!((me.sample_count, me.sample_sum), (Some(1), Some(82.0)));
        let buckets: Vec<(f64, u64)> = me
            .bucket
            .iter()
            .map(|b| {
                (
                    b.upper_bound.unwrap_or(0.0),
                    b.cumulative_count.unwrap_or(0),
                )
            })
            .collect();
        assert_eq!(buckets.len(), 10);
        assert_eq!(buckets[7], (80.0, 0));
        assert_eq!(buckets[8], (90.0, 1));
        // The protobuf form is gzip-cached like the text.
        let gz = pb.gzip_with_tail(b"").concat();
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut plain)
            .expect("valid gzip");
        assert_eq!(plain, pb.text());
    }

    #[test]
    fn protobuf_of_a_large_snapshot_decodes_across_chunks() {
        let r = render_snapshot_as(
            &copies_of_one_chat(6000),
            &RenderOptions::default(),
            Encoding::Protobuf,
        );
        assert!(r.text.as_ref().is_some_and(|t| t.len() > 2));
        let families = metrics_proto::decode_families(&r.text());
        let info = families
            .iter()
            .find(|f| f.name() == "linq_chat_info")
            .expect("info");
        assert_eq!(info.metric.len(), 6000);
        assert_eq!(info.metric[5999].label("chat_id"), Some("chat-05999"));
    }

    #[test]
    fn none_mode_keeps_aggregates_only() {
        let r = render_snapshot(
            &snapshot(),
            &RenderOptions {
                chat_metrics: ChatMetrics::None,
                ..Default::default()
            },
        );
        let text = String::from_utf8(r.text()).expect("utf8");
        assert!(!text.lines().any(|l| l.starts_with("linq_chat_info{")));
        assert!(text.contains("linq_chats{"));
        assert_eq!(r.series, 4 + 5 + 9 + 26);
    }

    #[test]
    fn large_snapshots_span_many_chunks_and_stay_one_gzip_member() {
        let r = render_snapshot(&copies_of_one_chat(6000), &RenderOptions::default());
        assert!(
            r.text.as_ref().is_some_and(|t| t.len() > 3),
            "{:?} chunks",
            r.text.as_ref().map(Vec::len)
        );
        assert_eq!(r.series, 6000 * 4 + 1 + 1 + 4 + 13);
        let text = r.text();
        assert_eq!(
            text.iter().filter(|&&c| c == b'\n').count(),
            r.series + 2 * 9 + 1,
            "one HELP and one TYPE line per family, one UNIT"
        );
        let gz = r.gzip_with_tail(b"linq_up 1\n").concat();
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut plain)
            .expect("valid gzip");
        assert_eq!(plain, [text, b"linq_up 1\n".to_vec()].concat());
    }

    #[test]
    fn released_text_is_inflated_back_exactly_in_bounded_chunks() {
        let full = render_snapshot(&copies_of_one_chat(9000), &RenderOptions::default());
        let released = full.without_text();
        assert!(full.has_text() && !released.has_text());
        for tail in [&b""[..], b"linq_up 1\n"] {
            let want = full.plain_with_tail(tail.to_vec()).concat();
            assert!(want.len() > 3 * CHUNK, "{} bytes", want.len());
            let mut chunks = released.plain_with_tail(tail.to_vec());
            assert_eq!(chunks.remaining(), want.len() as u64);
            let mut got = Vec::new();
            for c in chunks.by_ref() {
                assert!(!c.is_empty() && c.len() <= CHUNK, "{}", c.len());
                got.extend_from_slice(&c);
            }
            assert_eq!(chunks.remaining(), 0);
            assert_eq!(got, want);
        }
        // The released form still serves gzip exactly as before.
        assert_eq!(
            released.gzip_with_tail(b"x").concat(),
            full.gzip_with_tail(b"x").concat()
        );
        assert_eq!(Rendered::empty().without_text().text(), b"");
    }

    #[test]
    fn without_plain_only_the_gzip_form_is_kept_and_plain_is_inflated_from_it() {
        let s = copies_of_one_chat(3000);
        for encoding in [Encoding::Text, Encoding::Protobuf] {
            let full = render_snapshot_cached(&s, &RenderOptions::default(), encoding, true);
            let lean = render_snapshot_cached(&s, &RenderOptions::default(), encoding, false);
            assert!(full.has_text() && !lean.has_text());
            assert_eq!(lean.series, full.series);
            assert_eq!(lean.text(), full.text());
            assert_eq!(
                lean.gzip_with_tail(b"x").concat(),
                full.gzip_with_tail(b"x").concat()
            );
        }
    }

    #[test]
    fn gzip_with_tail_is_one_valid_member() {
        let r = render_snapshot(&snapshot(), &RenderOptions::default());
        for tail in [
            &b""[..],
            b"linq_up 1\n",
            &vec![b'y'; 65_535][..],
            &vec![b'z'; 65_536][..],
            &vec![b'x'; 200_000][..],
        ] {
            let gz = r.gzip_with_tail(tail).concat();
            let mut d = flate2::read::GzDecoder::new(&gz[..]);
            let mut plain = Vec::new();
            d.read_to_end(&mut plain).expect("valid gzip");
            assert_eq!(plain, r.plain_with_tail(tail.to_vec()).concat());
        }
    }
}
