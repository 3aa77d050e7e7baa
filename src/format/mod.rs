//! Exposition formats: which one a scrape asked for (the `Accept` header, q-values included),
//! and the encoders every part of `/metrics` shares: the snapshot's cached families, the live
//! self metrics and the webhook latency histograms.
//!
//! - Prometheus text 0.0.4, the default (also for `*/*`);
//! - OpenMetrics 1.0.0 (and 0.0.1, the same text): counter families typed without `_total`,
//!   units, exemplars, `# EOF`;
//! - the Prometheus protobuf format (`io.prometheus.client.MetricFamily`, varint-delimited),
//!   which alone carries native histograms.
//!
//! The lowest layer, next to [`crate::telemetry`]: it knows nothing of Linq.

pub mod families;
pub mod histogram;
pub mod pb;

use std::io::Write;

/// The exposition formats `/metrics` serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics text; `legacy` when only `version=0.0.1` was accepted (the content is the
    /// same, the content type names the version asked for).
    OpenMetrics {
        /// Answer as version 0.0.1.
        legacy: bool,
    },
    /// Prometheus protobuf, varint-delimited `MetricFamily` messages.
    Protobuf,
}

/// The content type of text 0.0.4.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The content type of OpenMetrics 1.0.0.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of OpenMetrics 0.0.1.
pub const OPENMETRICS_LEGACY_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=0.0.1; charset=utf-8";
/// The content type of the protobuf format.
pub const PROTOBUF_CONTENT_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// Accept header entries read at most (a header is bounded by the server's head limits
/// anyway; this bounds the work per scrape).
const MAX_ACCEPT_ENTRIES: usize = 64;

impl Format {
    /// The response's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => TEXT_CONTENT_TYPE,
            Format::OpenMetrics { legacy: false } => OPENMETRICS_CONTENT_TYPE,
            Format::OpenMetrics { legacy: true } => OPENMETRICS_LEGACY_CONTENT_TYPE,
            Format::Protobuf => PROTOBUF_CONTENT_TYPE,
        }
    }

    /// Whether the format is OpenMetrics.
    pub fn is_openmetrics(self) -> bool {
        matches!(self, Format::OpenMetrics { .. })
    }

    /// The format for an `Accept` header: the acceptable format with the highest q-value; at
    /// equal q an explicit media type beats a wildcard, and among explicit ones protobuf beats
    /// OpenMetrics beats text. Text 0.0.4 without a header, for `*/*`, and when nothing we
    /// serve is acceptable (as other exporters do, rather than 406).
    pub fn negotiate(accept: Option<&str>) -> Format {
        Format::negotiate_among(accept, true)
    }

    /// [`Format::negotiate`] over the formats at hand: without `protobuf`, the best of the
    /// others (a scrape that prefers protobuf before its form is rendered gets its next choice).
    pub fn negotiate_among(accept: Option<&str>, protobuf: bool) -> Format {
        let Some(accept) = accept else {
            return Format::Text;
        };
        // (q, explicit, preference) of the best entry so far.
        let mut best: Option<((f32, bool, u8), Format)> = None;
        for entry in accept.split(',').take(MAX_ACCEPT_ENTRIES) {
            let mut parts = entry.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let mut q = 1.0f32;
            let mut version = None;
            let mut proto = None;
            let mut encoding = None;
            for p in parts {
                let Some((k, v)) = p.split_once('=') else {
                    continue;
                };
                let v = v.trim().trim_matches('"');
                match k.trim().to_ascii_lowercase().as_str() {
                    "q" => {
                        q = v
                            .parse::<f32>()
                            .ok()
                            .filter(|q| q.is_finite())
                            .unwrap_or(0.0)
                    }
                    "version" => version = Some(v.to_string()),
                    "proto" => proto = Some(v.to_string()),
                    "encoding" => encoding = Some(v.to_string()),
                    _ => {}
                }
            }
            if q <= 0.0 {
                continue;
            }
            let candidate = match media.as_str() {
                "application/vnd.google.protobuf"
                    if proto
                        .as_deref()
                        .is_none_or(|p| p == "io.prometheus.client.MetricFamily")
                        && encoding.as_deref().is_none_or(|e| e == "delimited") =>
                {
                    Some((true, 2, Format::Protobuf))
                }
                "application/openmetrics-text" => match version.as_deref() {
                    None | Some("1.0.0") => Some((true, 1, Format::OpenMetrics { legacy: false })),
                    Some("0.0.1") => Some((true, 1, Format::OpenMetrics { legacy: true })),
                    _ => None,
                },
                // text 1.0.0 differs from 0.0.4 only for UTF-8 names, which this exporter
                // never has: the same bytes are valid as both.
                "text/plain" => match version.as_deref() {
                    None | Some("0.0.4") | Some("1.0.0") => Some((true, 0, Format::Text)),
                    _ => None,
                },
                "*/*" | "text/*" => Some((false, 0, Format::Text)),
                _ => None,
            };
            if let Some((explicit, pref, format)) =
                candidate.filter(|(_, _, f)| protobuf || *f != Format::Protobuf)
            {
                let key = (q, explicit, pref);
                if best.as_ref().is_none_or(|(b, _)| key > *b) {
                    best = Some((key, format));
                }
            }
        }
        best.map_or(Format::Text, |(_, f)| f)
    }
}

/// Writes a sample value the way Prometheus and OpenMetrics parse it (shortest round-trip
/// decimal; `NaN`, `+Inf`, `-Inf`).
pub fn write_f64(out: &mut Vec<u8>, v: f64) {
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"+Inf" } else { b"-Inf" });
    } else {
        let _ = write!(out, "{v}");
    }
}

/// Escapes a label value (both text formats): backslash, double quote and newline; everything
/// else (unicode included) is written as is.
pub fn escape_label_value(out: &mut Vec<u8>, value: &str) {
    // Almost no value needs escaping: copy it whole when none of the three bytes occurs.
    if !value.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
        out.extend_from_slice(value.as_bytes());
        return;
    }
    for b in value.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(b),
        }
    }
}

/// Escapes HELP text: backslash and newline in text 0.0.4, and the double quote too in
/// OpenMetrics.
pub fn escape_help(out: &mut Vec<u8>, help: &str, openmetrics: bool) {
    for b in help.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'"' if openmetrics => out.extend_from_slice(b"\\\""),
            _ => out.push(b),
        }
    }
}

/// The OpenMetrics unit a family's name carries (`_seconds`, `_bytes`), if any: the `# UNIT`
/// line OpenMetrics asks for.
pub fn unit_of(family: &str) -> Option<&'static str> {
    if family.ends_with("_seconds") {
        Some("seconds")
    } else if family.ends_with("_bytes") {
        Some("bytes")
    } else {
        None
    }
}

/// Writes `# HELP`, `# TYPE` and (OpenMetrics, or `unit` forced) `# UNIT` lines of a family.
/// `kind` is the OpenMetrics type word; text 0.0.4 maps `unknown` to `untyped`.
pub fn write_header(out: &mut Vec<u8>, format: Format, family: &str, help: &str, kind: &str) {
    let om = format.is_openmetrics();
    out.extend_from_slice(b"# HELP ");
    out.extend_from_slice(family.as_bytes());
    out.push(b' ');
    escape_help(out, help, om);
    out.extend_from_slice(b"\n# TYPE ");
    out.extend_from_slice(family.as_bytes());
    out.push(b' ');
    out.extend_from_slice(match (kind, om) {
        ("unknown", false) => b"untyped".as_slice(),
        (k, _) => k.as_bytes(),
    });
    out.push(b'\n');
    if om {
        if let Some(unit) = unit_of(family) {
            let _ = writeln!(out, "# UNIT {family} {unit}");
        }
    }
}

/// Writes one sample line: `name{labels} value`, `extra` labels last (the `le` of a bucket).
pub fn write_sample(
    out: &mut Vec<u8>,
    name: &str,
    labels: &[(&str, &str)],
    extra: Option<(&str, &str)>,
    value: f64,
) {
    out.extend_from_slice(name.as_bytes());
    if !labels.is_empty() || extra.is_some() {
        out.push(b'{');
        for (i, (k, v)) in labels.iter().chain(extra.as_ref()).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b"=\"");
            escape_label_value(out, v);
            out.push(b'"');
        }
        out.push(b'}');
    }
    out.push(b' ');
    write_f64(out, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROM2: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.1";
    const PROM2_OM: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    const PROM3: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";

    #[test]
    fn negotiates_what_prometheus_sends() {
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
        assert_eq!(Format::negotiate(Some("")), Format::Text);
        assert_eq!(Format::negotiate(Some(PROM2)), Format::Protobuf);
        assert_eq!(Format::negotiate_among(Some(PROM2), false), Format::Text);
        assert_eq!(
            Format::negotiate_among(Some(PROM3), false),
            Format::OpenMetrics { legacy: false }
        );
        assert_eq!(
            Format::negotiate(Some(PROM2_OM)),
            Format::OpenMetrics { legacy: false }
        );
        assert_eq!(
            Format::negotiate(Some(PROM3)),
            Format::OpenMetrics { legacy: false }
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;version=0.0.1")),
            Format::OpenMetrics { legacy: true }
        );
        assert_eq!(
            Format::negotiate(Some("text/plain;version=0.0.4")),
            Format::Text
        );
    }

    #[test]
    fn q_values_decide_and_zero_excludes() {
        assert_eq!(
            Format::negotiate(Some(
                "application/openmetrics-text;q=0.2, text/plain;version=0.0.4;q=0.9"
            )),
            Format::Text
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=0, text/plain;q=0.1")),
            Format::Text
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text, */*")),
            Format::OpenMetrics { legacy: false }
        );
        // At equal q: an explicit type beats the wildcard; protobuf beats OpenMetrics.
        assert_eq!(
            Format::negotiate(Some(
                "*/*, application/openmetrics-text, application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"
            )),
            Format::Protobuf
        );
        // Unsupported versions and encodings are not ours.
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;version=2.0.0")),
            Format::Text
        );
        assert_eq!(
            Format::negotiate(Some(
                "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text"
            )),
            Format::Text
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=nan")),
            Format::Text
        );
        assert_eq!(Format::negotiate(Some("image/png")), Format::Text);
    }

    #[test]
    fn headers_escape_help_per_format() {
        let mut text = Vec::new();
        write_header(
            &mut text,
            Format::Text,
            "a_seconds",
            "say \"x\" \\ y",
            "gauge",
        );
        assert_eq!(
            String::from_utf8_lossy(&text),
            "# HELP a_seconds say \"x\" \\\\ y\n# TYPE a_seconds gauge\n"
        );
        let mut om = Vec::new();
        let f = Format::OpenMetrics { legacy: false };
        write_header(&mut om, f, "a_seconds", "say \"x\"", "unknown");
        assert_eq!(
            String::from_utf8_lossy(&om),
            "# HELP a_seconds say \\\"x\\\"\n# TYPE a_seconds unknown\n# UNIT a_seconds seconds\n"
        );
    }
}
