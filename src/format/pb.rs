//! The protobuf wire format, as much of it as `io.prometheus.client.MetricFamily`
//! (Prometheus' `metrics.proto`) needs: varints, zigzag, doubles, strings and nested messages.
//!
//! Written by hand rather than generated (prost + protoc): the snapshot's families hold up to
//! hundreds of thousands of metrics, which are streamed straight into the cached, compressed
//! exposition chunks with each message's length computed first, so no per-sample message
//! structs are ever built; the five field kinds below are all of the encoding that takes. The
//! tests decode the output with `prost` types mirroring `metrics.proto`, and CI scrapes it with
//! a real Prometheus.

/// Field numbers and enum values of `metrics.proto`.
pub mod field {
    /// `MetricFamily.name`.
    pub const FAMILY_NAME: u32 = 1;
    /// `MetricFamily.help`.
    pub const FAMILY_HELP: u32 = 2;
    /// `MetricFamily.type`.
    pub const FAMILY_TYPE: u32 = 3;
    /// `MetricFamily.metric`.
    pub const FAMILY_METRIC: u32 = 4;
    /// `MetricFamily.unit`.
    pub const FAMILY_UNIT: u32 = 5;
    /// `Metric.label`.
    pub const METRIC_LABEL: u32 = 1;
    /// `Metric.gauge`.
    pub const METRIC_GAUGE: u32 = 2;
    /// `Metric.counter`.
    pub const METRIC_COUNTER: u32 = 3;
    /// `Metric.summary`.
    pub const METRIC_SUMMARY: u32 = 4;
    /// `Metric.untyped`.
    pub const METRIC_UNTYPED: u32 = 5;
    /// `Metric.histogram`.
    pub const METRIC_HISTOGRAM: u32 = 7;
    /// `LabelPair.name` (also `Gauge.value`, `Counter.value`, `Untyped.value`: field 1).
    pub const ONE: u32 = 1;
    /// `LabelPair.value`.
    pub const TWO: u32 = 2;
    /// `Histogram.sample_count`.
    pub const H_COUNT: u32 = 1;
    /// `Histogram.sample_sum`.
    pub const H_SUM: u32 = 2;
    /// `Histogram.bucket`.
    pub const H_BUCKET: u32 = 3;
    /// `Histogram.schema`.
    pub const H_SCHEMA: u32 = 5;
    /// `Histogram.zero_threshold`.
    pub const H_ZERO_THRESHOLD: u32 = 6;
    /// `Histogram.zero_count`.
    pub const H_ZERO_COUNT: u32 = 7;
    /// `Histogram.positive_span`.
    pub const H_POSITIVE_SPAN: u32 = 12;
    /// `Histogram.positive_delta`.
    pub const H_POSITIVE_DELTA: u32 = 13;
    /// `Bucket.cumulative_count`.
    pub const B_COUNT: u32 = 1;
    /// `Bucket.upper_bound`.
    pub const B_UPPER: u32 = 2;
    /// `Bucket.exemplar`.
    pub const B_EXEMPLAR: u32 = 3;
    /// `Exemplar.label`.
    pub const E_LABEL: u32 = 1;
    /// `Exemplar.value`.
    pub const E_VALUE: u32 = 2;
    /// `Exemplar.timestamp`.
    pub const E_TIMESTAMP: u32 = 3;
    /// `Summary.sample_count`, `Summary.sample_sum`, `Summary.quantile`.
    pub const S_COUNT: u32 = 1;
    /// `Summary.sample_sum`.
    pub const S_SUM: u32 = 2;
    /// `Summary.quantile`.
    pub const S_QUANTILE: u32 = 3;

    /// `MetricType.COUNTER`.
    pub const COUNTER: u64 = 0;
    /// `MetricType.GAUGE`.
    pub const GAUGE: u64 = 1;
    /// `MetricType.SUMMARY`.
    pub const SUMMARY: u64 = 2;
    /// `MetricType.UNTYPED`.
    pub const UNTYPED: u64 = 3;
    /// `MetricType.HISTOGRAM`.
    pub const HISTOGRAM: u64 = 4;
}

const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;

/// Appends `v` as a base-128 varint.
pub fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The length of `v` as a varint.
pub fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn key(out: &mut Vec<u8>, field: u32, wire: u32) {
    varint(out, u64::from(field << 3 | wire));
}

/// A `uint64`/enum field.
pub fn uint(out: &mut Vec<u8>, field: u32, v: u64) {
    key(out, field, VARINT);
    varint(out, v);
}

/// A `sint32`/`sint64` field (zigzag).
pub fn sint(out: &mut Vec<u8>, field: u32, v: i64) {
    key(out, field, VARINT);
    varint(out, zigzag(v));
}

/// Zigzag encoding of a signed integer.
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// A `double` field.
pub fn double(out: &mut Vec<u8>, field: u32, v: f64) {
    key(out, field, FIXED64);
    out.extend_from_slice(&v.to_le_bytes());
}

/// A `string` or `bytes` field (also a nested message already encoded).
pub fn bytes(out: &mut Vec<u8>, field: u32, v: &[u8]) {
    key(out, field, LEN);
    varint(out, v.len() as u64);
    out.extend_from_slice(v);
}

/// The bytes a length-delimited field of `len` bytes takes, key included (fields < 16).
pub fn bytes_field_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// A `LabelPair` message as field `field`.
pub fn label_pair(out: &mut Vec<u8>, field: u32, name: &str, value: &str) {
    let len = bytes_field_len(name.len()) + bytes_field_len(value.len());
    key(out, field, LEN);
    varint(out, len as u64);
    bytes(out, field::ONE, name.as_bytes());
    bytes(out, field::TWO, value.as_bytes());
}

/// Appends a nested message built by `build` as field `field` (through a scratch buffer).
pub fn message(out: &mut Vec<u8>, field: u32, build: impl FnOnce(&mut Vec<u8>)) {
    let mut m = Vec::new();
    build(&mut m);
    bytes(out, field, &m);
}

/// Appends a packed repeated `sint64` field.
pub fn packed_sint(out: &mut Vec<u8>, field: u32, values: impl Iterator<Item = i64>) {
    let mut m = Vec::new();
    for v in values {
        varint(&mut m, zigzag(v));
    }
    if !m.is_empty() {
        bytes(out, field, &m);
    }
}

/// Writes a `MetricFamily` header (name, help, type, unit) into `out`.
pub fn family_header(out: &mut Vec<u8>, name: &str, help: &str, kind: u64, unit: Option<&str>) {
    bytes(out, field::FAMILY_NAME, name.as_bytes());
    bytes(out, field::FAMILY_HELP, help.as_bytes());
    uint(out, field::FAMILY_TYPE, kind);
    if let Some(unit) = unit {
        bytes(out, field::FAMILY_UNIT, unit.as_bytes());
    }
}

/// The length of [`family_header`]'s output.
pub fn family_header_len(name: &str, help: &str, kind: u64, unit: Option<&str>) -> usize {
    bytes_field_len(name.len())
        + bytes_field_len(help.len())
        + 1
        + varint_len(kind)
        + unit.map_or(0, |u| bytes_field_len(u.len()))
}

/// An `Exemplar` message as field `field`: one label, its value and Unix time.
pub fn exemplar(out: &mut Vec<u8>, field: u32, label: (&str, &str), value: f64, at: f64) {
    message(out, field, |m| {
        label_pair(m, field::E_LABEL, label.0, label.1);
        double(m, field::E_VALUE, value);
        let secs = at.floor();
        let nanos = ((at - secs) * 1e9).round().clamp(0.0, 999_999_999.0) as u64;
        message(m, field::E_TIMESTAMP, |t| {
            uint(t, 1, secs as i64 as u64);
            if nanos > 0 {
                uint(t, 2, nanos);
            }
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_zigzag_match_the_spec() {
        for (v, want) in [
            (0u64, vec![0u8]),
            (1, vec![1]),
            (127, vec![0x7f]),
            (128, vec![0x80, 0x01]),
            (300, vec![0xac, 0x02]),
            (
                u64::MAX,
                vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ] {
            let mut out = Vec::new();
            varint(&mut out, v);
            assert_eq!(out, want, "{v}");
            assert_eq!(varint_len(v), want.len(), "{v}");
        }
        assert_eq!(zigzag(0), 0);
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
        assert_eq!(zigzag(-2), 3);
        assert_eq!(zigzag(i64::MIN), u64::MAX);
    }

    #[test]
    fn header_length_is_what_is_written() {
        for unit in [None, Some("seconds")] {
            let mut out = Vec::new();
            family_header(&mut out, "linq_up", "help text", field::HISTOGRAM, unit);
            assert_eq!(
                out.len(),
                family_header_len("linq_up", "help text", field::HISTOGRAM, unit)
            );
        }
    }
}
