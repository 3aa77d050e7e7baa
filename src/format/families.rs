//! Encodes the families gathered from a [`prometheus::Registry`] (the live self metrics) in
//! OpenMetrics and protobuf; text 0.0.4 stays the crate's own `TextEncoder`. The `prometheus`
//! crate has no OpenMetrics encoder, and its protobuf encoder needs the `protobuf` crate and
//! knows nothing of native histograms, which the same response must carry.

use prometheus::proto::{LabelPair, Metric, MetricFamily, MetricType};

use crate::format::pb::{self, field};
use crate::format::{write_f64, write_header, write_sample, Format};

/// Appends `families` in OpenMetrics text (no `# EOF`: the caller ends the exposition).
pub fn openmetrics(families: &[MetricFamily], out: &mut Vec<u8>) {
    let format = Format::OpenMetrics { legacy: false };
    for mf in families {
        let name = mf.name();
        let metrics = mf.get_metric();
        match mf.get_field_type() {
            MetricType::COUNTER => {
                let base = name.strip_suffix("_total").unwrap_or(name);
                write_header(out, format, base, mf.help(), "counter");
                let total = format!("{base}_total");
                for m in metrics {
                    line(
                        out,
                        &total,
                        m.get_label(),
                        None,
                        m.get_counter().get_value(),
                    );
                }
            }
            MetricType::GAUGE => {
                write_header(out, format, name, mf.help(), "gauge");
                for m in metrics {
                    line(out, name, m.get_label(), None, m.get_gauge().get_value());
                }
            }
            // The registry never holds untyped metrics; written as OpenMetrics `unknown`.
            #[allow(deprecated)]
            MetricType::UNTYPED => {
                write_header(out, format, name, mf.help(), "unknown");
                for m in metrics {
                    line(out, name, m.get_label(), None, m.get_untyped().get_value());
                }
            }
            MetricType::HISTOGRAM => {
                write_header(out, format, name, mf.help(), "histogram");
                let (bucket, count, sum) = (
                    format!("{name}_bucket"),
                    format!("{name}_count"),
                    format!("{name}_sum"),
                );
                let mut le = Vec::new();
                for m in metrics {
                    let h = m.get_histogram();
                    let mut inf = false;
                    for b in h.get_bucket() {
                        le.clear();
                        write_f64(&mut le, b.upper_bound());
                        inf |= b.upper_bound() == f64::INFINITY;
                        let le = String::from_utf8_lossy(&le);
                        line(
                            out,
                            &bucket,
                            m.get_label(),
                            Some(("le", &le)),
                            b.cumulative_count() as f64,
                        );
                    }
                    if !inf {
                        line(
                            out,
                            &bucket,
                            m.get_label(),
                            Some(("le", "+Inf")),
                            h.get_sample_count() as f64,
                        );
                    }
                    line(
                        out,
                        &count,
                        m.get_label(),
                        None,
                        h.get_sample_count() as f64,
                    );
                    line(out, &sum, m.get_label(), None, h.get_sample_sum());
                }
            }
            MetricType::SUMMARY => {
                write_header(out, format, name, mf.help(), "summary");
                let (count, sum) = (format!("{name}_count"), format!("{name}_sum"));
                let mut q = Vec::new();
                for m in metrics {
                    let s = m.get_summary();
                    for quantile in s.get_quantile() {
                        q.clear();
                        write_f64(&mut q, quantile.quantile());
                        let q = String::from_utf8_lossy(&q);
                        line(
                            out,
                            name,
                            m.get_label(),
                            Some(("quantile", &q)),
                            quantile.value(),
                        );
                    }
                    line(out, &count, m.get_label(), None, s.sample_count() as f64);
                    line(out, &sum, m.get_label(), None, s.sample_sum());
                }
            }
        }
    }
}

fn line(out: &mut Vec<u8>, name: &str, labels: &[LabelPair], extra: Option<(&str, &str)>, v: f64) {
    let labels: Vec<(&str, &str)> = labels.iter().map(|l| (l.name(), l.value())).collect();
    write_sample(out, name, &labels, extra, v);
    out.push(b'\n');
}

/// Appends `families` as varint-delimited protobuf `MetricFamily` messages.
pub fn protobuf(families: &[MetricFamily], out: &mut Vec<u8>) {
    let mut body = Vec::new();
    for mf in families {
        body.clear();
        let kind = match mf.get_field_type() {
            MetricType::COUNTER => field::COUNTER,
            MetricType::GAUGE => field::GAUGE,
            MetricType::SUMMARY => field::SUMMARY,
            MetricType::UNTYPED => field::UNTYPED,
            MetricType::HISTOGRAM => field::HISTOGRAM,
        };
        pb::family_header(&mut body, mf.name(), mf.help(), kind, None);
        for m in mf.get_metric() {
            pb::message(&mut body, field::FAMILY_METRIC, |out| metric(out, mf, m));
        }
        pb::varint(out, body.len() as u64);
        out.extend_from_slice(&body);
    }
}

fn metric(out: &mut Vec<u8>, mf: &MetricFamily, m: &Metric) {
    for l in m.get_label() {
        pb::label_pair(out, field::METRIC_LABEL, l.name(), l.value());
    }
    match mf.get_field_type() {
        MetricType::COUNTER => pb::message(out, field::METRIC_COUNTER, |c| {
            pb::double(c, field::ONE, m.get_counter().get_value())
        }),
        MetricType::GAUGE => pb::message(out, field::METRIC_GAUGE, |g| {
            pb::double(g, field::ONE, m.get_gauge().get_value())
        }),
        #[allow(deprecated)]
        MetricType::UNTYPED => pb::message(out, field::METRIC_UNTYPED, |u| {
            pb::double(u, field::ONE, m.get_untyped().get_value())
        }),
        MetricType::SUMMARY => pb::message(out, field::METRIC_SUMMARY, |s| {
            let sum = m.get_summary();
            pb::uint(s, field::S_COUNT, sum.sample_count());
            pb::double(s, field::S_SUM, sum.sample_sum());
            for q in sum.get_quantile() {
                pb::message(s, field::S_QUANTILE, |qm| {
                    pb::double(qm, field::ONE, q.quantile());
                    pb::double(qm, field::TWO, q.value());
                });
            }
        }),
        MetricType::HISTOGRAM => pb::message(out, field::METRIC_HISTOGRAM, |h| {
            let hist = m.get_histogram();
            pb::uint(h, field::H_COUNT, hist.get_sample_count());
            pb::double(h, field::H_SUM, hist.get_sample_sum());
            for b in hist.get_bucket() {
                pb::message(h, field::H_BUCKET, |bm| {
                    pb::uint(bm, field::B_COUNT, b.cumulative_count());
                    pb::double(bm, field::B_UPPER, b.upper_bound());
                });
            }
        }),
    }
}
