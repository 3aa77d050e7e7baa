//! Latency histograms that carry what the `prometheus` crate's cannot: native (sparse,
//! exponential) buckets beside the classic ones, and an exemplar per classic bucket. Encoded in
//! every format: classic buckets in text 0.0.4; classic buckets with exemplars in OpenMetrics;
//! classic buckets with exemplars plus the native histogram in protobuf (Prometheus ingests the
//! native form when `native-histograms` is on, the classic one otherwise).

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::format::pb::{self, field};
use crate::format::{write_f64, write_header, write_sample, Format};

/// Native histogram resolution: schema 3, buckets growing by 2^(1/8) (about 9 %).
pub const SCHEMA: i32 = 3;
/// Observations at or below this (seconds) go to the native zero bucket.
pub const ZERO_THRESHOLD: f64 = 0.001;
/// The longest exemplar label value kept (OpenMetrics allows 128 characters of labels).
const MAX_EXEMPLAR_VALUE: usize = 64;

/// An exemplar: the `trace_id` of an observation, its value and Unix time.
#[derive(Debug, Clone, PartialEq)]
struct Exemplar {
    trace_id: Box<str>,
    value: f64,
    at: f64,
}

/// One series.
#[derive(Debug, Clone, Default)]
struct Series {
    /// Per classic bucket (not cumulative), the last one for +Inf.
    counts: Vec<u64>,
    exemplars: Vec<Option<Exemplar>>,
    count: u64,
    sum: f64,
    zero: u64,
    /// Native bucket index -> observations.
    native: BTreeMap<i32, u64>,
}

/// The native bucket of `v` (> [`ZERO_THRESHOLD`]): the `i` with 2^((i-1)/8) < v <= 2^(i/8).
pub fn native_index(v: f64) -> i32 {
    let scale = f64::from(1 << SCHEMA);
    let mut i = (v.log2() * scale).ceil() as i32;
    // log2 can be off by an ulp at a boundary: settle it against the bounds themselves.
    if v > (f64::from(i) / scale).exp2() {
        i += 1;
    } else if v <= (f64::from(i - 1) / scale).exp2() {
        i -= 1;
    }
    i
}

/// A histogram family with labels. Label values must already be bounded by the caller.
#[derive(Debug)]
pub struct HistogramVec {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    bounds: &'static [f64],
    series: Mutex<BTreeMap<Vec<Box<str>>, Series>>,
}

impl HistogramVec {
    /// A family; `bounds` are the classic buckets' upper bounds, ascending, without +Inf.
    pub fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        bounds: &'static [f64],
    ) -> Self {
        HistogramVec {
            name,
            help,
            labels,
            bounds,
            series: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Vec<Box<str>>, Series>> {
        self.series.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn series_mut<'a>(
        &self,
        all: &'a mut BTreeMap<Vec<Box<str>>, Series>,
        values: &[&str],
    ) -> &'a mut Series {
        let key: Vec<Box<str>> = values.iter().map(|v| Box::from(*v)).collect();
        let n = self.bounds.len() + 1;
        all.entry(key).or_insert_with(|| Series {
            counts: vec![0; n],
            exemplars: vec![None; n],
            ..Series::default()
        })
    }

    /// Starts a series at zero (so `rate()` has it before the first observation).
    pub fn init(&self, values: &[&str]) {
        let mut all = self.lock();
        self.series_mut(&mut all, values);
    }

    /// Observes `v` (>= 0, finite) for the series `values`; `trace_id` (if it is a plain id of
    /// at most 64 characters) becomes the exemplar of its classic bucket, at Unix time `at`.
    pub fn observe(&self, values: &[&str], v: f64, trace_id: Option<&str>, at: f64) {
        if !v.is_finite() || v < 0.0 {
            return;
        }
        let mut all = self.lock();
        let s = self.series_mut(&mut all, values);
        let b = self.bounds.partition_point(|le| *le < v);
        if let Some(c) = s.counts.get_mut(b) {
            *c += 1;
        }
        s.count += 1;
        s.sum += v;
        if v <= ZERO_THRESHOLD {
            s.zero += 1;
        } else {
            *s.native.entry(native_index(v)).or_default() += 1;
        }
        let id = trace_id.filter(|t| {
            !t.is_empty()
                && t.len() <= MAX_EXEMPLAR_VALUE
                && t.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        });
        if let (Some(id), Some(slot)) = (id, s.exemplars.get_mut(b)) {
            *slot = Some(Exemplar {
                trace_id: id.into(),
                value: v,
                at,
            });
        }
    }

    /// (count, sum) of a series, for tests and the status page.
    pub fn get(&self, values: &[&str]) -> Option<(u64, f64)> {
        let key: Vec<Box<str>> = values.iter().map(|v| Box::from(*v)).collect();
        self.lock().get(&key).map(|s| (s.count, s.sum))
    }

    /// Appends the family in `format`.
    pub fn encode(&self, format: Format, out: &mut Vec<u8>) {
        let all = self.lock();
        match format {
            Format::Protobuf => self.protobuf(&all, out),
            _ => self.text(&all, format, out),
        }
    }

    fn text(&self, all: &BTreeMap<Vec<Box<str>>, Series>, format: Format, out: &mut Vec<u8>) {
        write_header(out, format, self.name, self.help, "histogram");
        let om = format.is_openmetrics();
        let (bucket, count, sum) = (
            format!("{}_bucket", self.name),
            format!("{}_count", self.name),
            format!("{}_sum", self.name),
        );
        let mut le = Vec::new();
        for (values, s) in all {
            let labels: Vec<(&str, &str)> = self
                .labels
                .iter()
                .zip(values)
                .map(|(k, v)| (*k, &**v))
                .collect();
            let mut cumulative = 0;
            for (i, c) in s.counts.iter().enumerate() {
                cumulative += c;
                le.clear();
                write_f64(
                    &mut le,
                    self.bounds.get(i).copied().unwrap_or(f64::INFINITY),
                );
                let le = String::from_utf8_lossy(&le);
                write_sample(out, &bucket, &labels, Some(("le", &le)), cumulative as f64);
                if let (true, Some(Some(e))) = (om, s.exemplars.get(i)) {
                    out.extend_from_slice(b" # {trace_id=\"");
                    out.extend_from_slice(e.trace_id.as_bytes());
                    out.extend_from_slice(b"\"} ");
                    write_f64(out, e.value);
                    out.push(b' ');
                    // Milliseconds are all the precision a webhook's receipt time has.
                    let _ = std::io::Write::write_fmt(out, format_args!("{:.3}", e.at));
                }
                out.push(b'\n');
            }
            write_sample(out, &count, &labels, None, s.count as f64);
            out.push(b'\n');
            write_sample(out, &sum, &labels, None, s.sum);
            out.push(b'\n');
        }
    }

    fn protobuf(&self, all: &BTreeMap<Vec<Box<str>>, Series>, out: &mut Vec<u8>) {
        let mut body = Vec::new();
        pb::family_header(&mut body, self.name, self.help, field::HISTOGRAM, None);
        for (values, s) in all {
            pb::message(&mut body, field::FAMILY_METRIC, |m| {
                for (k, v) in self.labels.iter().zip(values) {
                    pb::label_pair(m, field::METRIC_LABEL, k, v);
                }
                pb::message(m, field::METRIC_HISTOGRAM, |h| self.histogram(h, s));
            });
        }
        pb::varint(out, body.len() as u64);
        out.extend_from_slice(&body);
    }

    fn histogram(&self, h: &mut Vec<u8>, s: &Series) {
        pb::uint(h, field::H_COUNT, s.count);
        pb::double(h, field::H_SUM, s.sum);
        let mut cumulative = 0;
        for (i, c) in s.counts.iter().enumerate() {
            cumulative += c;
            let exemplar = s.exemplars.get(i).and_then(Option::as_ref);
            let upper = match self.bounds.get(i) {
                Some(b) => *b,
                // The +Inf bucket is implied by the count; it is sent only to carry an exemplar.
                None if exemplar.is_some() => f64::INFINITY,
                None => continue,
            };
            pb::message(h, field::H_BUCKET, |b| {
                pb::uint(b, field::B_COUNT, cumulative);
                pb::double(b, field::B_UPPER, upper);
                if let Some(e) = exemplar {
                    pb::exemplar(
                        b,
                        field::B_EXEMPLAR,
                        ("trace_id", &e.trace_id),
                        e.value,
                        e.at,
                    );
                }
            });
        }
        pb::sint(h, field::H_SCHEMA, i64::from(SCHEMA));
        // A zero threshold above 0 marks the histogram as native even before any observation.
        pb::double(h, field::H_ZERO_THRESHOLD, ZERO_THRESHOLD);
        pb::uint(h, field::H_ZERO_COUNT, s.zero);
        // Spans of consecutive buckets, and the counts as deltas from the previous bucket.
        let mut spans: Vec<(i32, u32)> = Vec::new();
        let mut prev: Option<i32> = None;
        for &i in s.native.keys() {
            match (prev, spans.last_mut()) {
                (Some(p), Some(last)) if i == p + 1 => last.1 += 1,
                (Some(p), _) => spans.push((i - p - 1, 1)),
                (None, _) => spans.push((i, 1)),
            }
            prev = Some(i);
        }
        for (offset, len) in &spans {
            pb::message(h, field::H_POSITIVE_SPAN, |sp| {
                pb::sint(sp, field::ONE, i64::from(*offset));
                pb::uint(sp, field::TWO, u64::from(*len));
            });
        }
        let mut last = 0i64;
        pb::packed_sint(
            h,
            field::H_POSITIVE_DELTA,
            s.native.values().map(|&c| {
                let c = c as i64;
                let d = c - last;
                last = c;
                d
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: &[f64] = &[1.0, 10.0];

    #[test]
    fn native_index_matches_the_schema_bounds() {
        // Bucket i holds (2^((i-1)/8), 2^(i/8)]: 1 is the upper bound of bucket 0, 2 of 8.
        assert_eq!(native_index(1.0), 0);
        assert_eq!(native_index(1.0001), 1);
        assert_eq!(native_index(2.0), 8);
        assert_eq!(native_index(2.0001), 9);
        assert_eq!(native_index(0.5), -8);
        assert_eq!(native_index(1024.0), 80);
        for i in -80..200 {
            let upper = (f64::from(i) / 8.0).exp2();
            assert_eq!(native_index(upper), i, "{upper}");
        }
    }

    #[test]
    fn text_has_classic_buckets_and_openmetrics_exemplars() {
        let h = HistogramVec::new("lat_seconds", "Latency.", &["line"], BOUNDS);
        h.observe(&["a"], 0.5, Some("t1"), 1000.25);
        h.observe(&["a"], 5.0, Some("bad id!"), 1001.0);
        h.observe(&["a"], 50.0, None, 1002.0);
        h.observe(&["a"], -1.0, Some("neg"), 1003.0);
        let mut text = Vec::new();
        h.encode(Format::Text, &mut text);
        assert_eq!(
            String::from_utf8_lossy(&text),
            "# HELP lat_seconds Latency.\n# TYPE lat_seconds histogram\n\
             lat_seconds_bucket{line=\"a\",le=\"1\"} 1\n\
             lat_seconds_bucket{line=\"a\",le=\"10\"} 2\n\
             lat_seconds_bucket{line=\"a\",le=\"+Inf\"} 3\n\
             lat_seconds_count{line=\"a\"} 3\nlat_seconds_sum{line=\"a\"} 55.5\n"
        );
        let mut om = Vec::new();
        h.encode(Format::OpenMetrics { legacy: false }, &mut om);
        assert_eq!(
            String::from_utf8_lossy(&om),
            "# HELP lat_seconds Latency.\n# TYPE lat_seconds histogram\n# UNIT lat_seconds seconds\n\
             lat_seconds_bucket{line=\"a\",le=\"1\"} 1 # {trace_id=\"t1\"} 0.5 1000.250\n\
             lat_seconds_bucket{line=\"a\",le=\"10\"} 2\n\
             lat_seconds_bucket{line=\"a\",le=\"+Inf\"} 3\n\
             lat_seconds_count{line=\"a\"} 3\nlat_seconds_sum{line=\"a\"} 55.5\n"
        );
        assert_eq!(h.get(&["a"]), Some((3, 55.5)));
    }
}
