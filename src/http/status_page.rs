//! The `/` status page: small server-rendered HTML from the last snapshot (never the API), no
//! external assets, no JavaScript. Every value is HTML-escaped: display names are text that
//! anyone who can message the line controls.

use prometheus::proto::{Metric, MetricFamily};
use std::fmt::Write;
use std::time::SystemTime;

use crate::sweep::state::AppState;

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t)
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string()
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;max-width:70em}\
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}table{border-collapse:collapse}\
td,th{padding:.2em .8em;border-bottom:1px solid #ddd;text-align:left}td.n{text-align:right}\
.bar{display:flex;height:1.4em;border-radius:3px;overflow:hidden;max-width:40em}\
.bar span{display:block;height:100%;border-right:1px solid #fff}.ok{color:#1a7f37}.bad{color:#cf222e}\
.HEALTHY{background:#2da44e}.AT_RISK{background:#d4a72c}.CRITICAL{background:#cf222e}\
.OPTED_OUT{background:#6e7781}.other{background:#8250df}\
.score-low{background:#f2495c}.score-mid{background:#ff9830}.score-high{background:#73bf69}";

/// The class of a score band starting at `low`: the dashboards' thresholds and their Grafana
/// colours (red below 30, orange below 60, green from 60).
fn score_class(low: usize) -> &'static str {
    match low {
        0..30 => "score-low",
        30..60 => "score-mid",
        _ => "score-high",
    }
}

/// What the webhook receiver has counted, read from the exporter's own metrics.
#[derive(Debug, Default, PartialEq)]
struct Webhooks {
    /// Whether the receiver is on (its metrics are registered).
    on: bool,
    /// Unix time of the last verified event; 0 before the first.
    last_event: f64,
    /// Verified events.
    events: f64,
    /// Rejections by reason, non-zero ones.
    rejected: Vec<(String, f64)>,
    /// Each line's status from `phone_number.status_updated`.
    line_status: Vec<(String, String)>,
}

/// A sample's value, whatever the family's type (the receiver's are counters and gauges).
fn value(mf: &MetricFamily, m: &Metric) -> f64 {
    match mf.get_field_type() {
        prometheus::proto::MetricType::COUNTER => m.get_counter().get_value(),
        _ => m.get_gauge().get_value(),
    }
}

/// The value of label `name`.
fn label<'a>(m: &'a Metric, name: &str) -> Option<&'a str> {
    m.get_label()
        .iter()
        .find(|l| l.name() == name)
        .map(|l| l.value())
}

/// Reads the receiver's series from the self metrics as gathered (typed: no text is parsed).
fn webhooks(families: &[MetricFamily]) -> Webhooks {
    let mut w = Webhooks::default();
    for mf in families {
        for m in mf.get_metric() {
            let v = value(mf, m);
            match mf.name() {
                "linq_webhook_last_event_timestamp_seconds" => {
                    w.on = true;
                    w.last_event = v;
                }
                "linq_webhook_events_total" => w.events += v,
                "linq_webhook_rejected_total" if v > 0.0 => {
                    if let Some(reason) = label(m, "reason") {
                        w.rejected.push((reason.to_string(), v));
                    }
                }
                "linq_phone_number_status" if v > 0.0 => {
                    if let (Some(n), Some(st)) = (label(m, "phone_number"), label(m, "status")) {
                        w.line_status.push((n.to_string(), st.to_string()));
                    }
                }
                _ => {}
            }
        }
    }
    w
}

/// Renders the page.
pub fn render(state: &AppState, now: SystemTime) -> String {
    let mut h = String::with_capacity(16 * 1024);
    let path = escape_html(&state.telemetry_path);
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Linq exporter</title>\
<meta name=\"viewport\" content=\"width=device-width\"><style>{STYLE}</style></head><body>\
<h1>Linq exporter <small>{}</small></h1><p><a href=\"{path}\">Metrics</a> · \
<a href=\"/healthz\">/healthz</a> · <a href=\"/readyz\">/readyz</a></p>",
        escape_html(crate::VERSION)
    );
    h.push_str("<h2>Last sweep</h2><table>");
    match state.last_sweep() {
        None => h.push_str("<tr><td>No sweep has finished yet.</td></tr>"),
        Some(s) => {
            let result = match &s.error {
                None => "<span class=\"ok\" id=\"sweep-result\">success</span>".to_string(),
                Some(e) => format!(
                    "<span class=\"bad\" id=\"sweep-result\">failed</span>: {}",
                    escape_html(e)
                ),
            };
            let _ = write!(
                h,
                "<tr><th>Finished</th><td>{}</td></tr><tr><th>Result</th><td>{result}</td></tr>\
<tr><th>Duration</th><td>{:.2}s</td></tr>",
                rfc3339(s.at),
                s.duration.as_secs_f64()
            );
        }
    }
    let published = state.published();
    if let Some(p) = &published {
        let _ = write!(
            h,
            "<tr><th>Data from</th><td>{}</td></tr>",
            rfc3339(p.completed_at)
        );
    }
    h.push_str("</table>");

    let hooks = webhooks(&state.metrics.gather());
    if hooks.on {
        h.push_str("<h2>Webhook receiver</h2><table id=\"webhooks\">");
        let last = if hooks.last_event > 0.0 {
            let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs_f64(hooks.last_event);
            let ago = now.duration_since(at).map(|d| d.as_secs()).unwrap_or(0);
            format!("{} ({ago}s ago)", rfc3339(at))
        } else {
            "none yet".to_string()
        };
        let _ = write!(
            h,
            "<tr><th>Last verified event</th><td id=\"webhook-last-event\">{last}</td></tr>\
<tr><th>Verified events</th><td class=\"n\" id=\"webhook-events\">{}</td></tr>",
            hooks.events
        );
        if hooks.rejected.is_empty() {
            h.push_str("<tr><th>Rejected</th><td class=\"n\">0</td></tr>");
        }
        for (reason, n) in &hooks.rejected {
            let _ = write!(
                h,
                "<tr><th>Rejected: {}</th><td class=\"n bad\">{n}</td></tr>",
                escape_html(reason)
            );
        }
        h.push_str("</table>");
    }

    let Some(p) = published else {
        h.push_str("<p>No complete sweep yet: no chat data to show.</p></body></html>");
        return h;
    };
    let s = &p.summary;
    let _ = write!(
        h,
        "<h2>Chats</h2><table><tr><th>Total</th><td class=\"n\" id=\"total-chats\">{}</td></tr>\
<tr><th>Archived</th><td class=\"n\" id=\"archived-chats\">{}</td></tr>{}\
<tr><th>Group</th><td class=\"n\" id=\"group-chats\">{}</td></tr>\
<tr><th>Numbers</th><td class=\"n\">{}</td></tr></table>",
        s.total_chats,
        s.archived,
        if s.archived_unknown > 0 {
            format!(
                "<tr><th>Archived state unknown</th><td class=\"n\" id=\"archived-unknown-chats\">{}</td></tr>",
                s.archived_unknown
            )
        } else {
            String::new()
        },
        s.groups,
        s.phone_numbers
    );

    h.push_str("<h2>By health status</h2>");
    let status_total: u64 = s.by_status.iter().map(|(_, n)| n).sum();
    bar(
        &mut h,
        status_total,
        s.by_status.iter().map(|(k, n)| {
            let class = if matches!(k.as_str(), "HEALTHY" | "AT_RISK" | "CRITICAL" | "OPTED_OUT") {
                k.as_str()
            } else {
                "other"
            };
            (k.clone(), class, *n)
        }),
    );
    h.push_str("<table>");
    for (status, n) in &s.by_status {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"n\">{n}</td></tr>",
            escape_html(status)
        );
    }
    h.push_str("</table><h2>By health score</h2>");
    let scored: u64 = s.score_bands.iter().sum();
    bar(
        &mut h,
        scored,
        s.score_bands.iter().enumerate().map(|(i, n)| {
            let low = i * 10;
            (format!("{}-{}", low, low + 10), score_class(low), *n)
        }),
    );
    h.push_str("<table><tr>");
    for i in 0..10 {
        let _ = write!(h, "<th>{}-{}</th>", i * 10, i * 10 + 10);
    }
    h.push_str("</tr><tr>");
    for n in s.score_bands {
        let _ = write!(h, "<td class=\"n\">{n}</td>");
    }
    h.push_str("</tr></table>");

    let _ = write!(
        h,
        "<h2>Worst chats</h2><table id=\"worst\"><tr><th>Chat</th><th>Score</th><th>Status</th>\
<th>Number</th><th>Service</th>{}</tr>",
        if s.worst.iter().any(|c| c.display_name.is_some()) {
            "<th>Display name</th>"
        } else {
            ""
        }
    );
    for c in &s.worst {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td>",
            escape_html(&c.id),
            c.score
                .map(|v| format!("{v}"))
                .unwrap_or_else(|| "–".into()),
            escape_html(c.status.as_deref().unwrap_or("–")),
            escape_html(&c.phone_number),
            escape_html(&c.service),
        );
        if let Some(name) = &c.display_name {
            let _ = write!(h, "<td class=\"display-name\">{}</td>", escape_html(name));
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");

    // Each line: its reputation (from the sweep) and its status (from webhooks, when on).
    let mut lines: Vec<&str> = s.reputations.iter().map(|(n, _)| n.as_str()).collect();
    for (n, _) in &hooks.line_status {
        if !lines.contains(&n.as_str()) {
            lines.push(n);
        }
    }
    lines.sort_unstable();
    if !lines.is_empty() {
        h.push_str("<h2>Lines</h2><table id=\"lines\"><tr><th>Number</th><th>Reputation</th><th>Status</th></tr>");
        for number in lines {
            let reputation = s
                .reputations
                .iter()
                .find(|(n, _)| n.as_str() == number)
                .map_or("–", |(_, r)| r.as_str());
            let status = hooks
                .line_status
                .iter()
                .find(|(n, _)| n == number)
                .map_or("–", |(_, st)| st.as_str());
            let class = if status == "ACTIVE" || status == "–" {
                ""
            } else {
                " class=\"bad\""
            };
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td{class}>{}</td></tr>",
                escape_html(number),
                escape_html(reputation),
                escape_html(status)
            );
        }
        h.push_str("</table>");
    }

    h.push_str("<h2>Recent API errors</h2>");
    let errors = state.metrics.recent_errors();
    if errors.is_empty() {
        h.push_str("<p>None since start-up.</p>");
    } else {
        h.push_str("<table><tr><th>Time</th><th>Kind</th><th>Error</th></tr>");
        for e in errors.iter().rev() {
            let at = chrono::DateTime::from_timestamp(e.at, 0)
                .map(|t| t.format("%H:%M:%S").to_string())
                .unwrap_or_default();
            let _ = write!(
                h,
                "<tr><td>{at}</td><td>{}</td><td>{}</td></tr>",
                e.kind.as_str(),
                escape_html(&e.message)
            );
        }
        h.push_str("</table>");
    }
    let _ = write!(
        h,
        "<p><small>Rendered {} from the last snapshot; this page never calls the Linq API.</small></p></body></html>",
        rfc3339(now)
    );
    h
}

fn bar<'a>(h: &mut String, total: u64, parts: impl Iterator<Item = (String, &'a str, u64)>) {
    h.push_str("<div class=\"bar\">");
    if total > 0 {
        for (label, class, n) in parts.filter(|p| p.2 > 0) {
            let pct = n as f64 * 100.0 / total as f64;
            let _ = write!(
                h,
                "<span class=\"{class}\" style=\"width:{pct:.2}%\" title=\"{}: {n}\"></span>",
                escape_html(&label)
            );
        }
    }
    h.push_str("</div>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_bands_take_the_dashboards_colours() {
        let classes: Vec<&str> = (0..10).map(|i| score_class(i * 10)).collect();
        assert_eq!(classes[..3], ["score-low"; 3]);
        assert_eq!(classes[3..6], ["score-mid"; 3]);
        assert_eq!(classes[6..], ["score-high"; 4]);
        for class in ["score-low", "score-mid", "score-high"] {
            assert!(
                STYLE.contains(&format!(".{class}{{background:#")),
                "{class}"
            );
        }
    }

    #[test]
    fn reads_the_receivers_series() {
        let r = prometheus::Registry::new();
        let last = prometheus::Gauge::new("linq_webhook_last_event_timestamp_seconds", "h")
            .expect("gauge");
        last.set(1_700_000_000.0);
        let events = prometheus::IntCounterVec::new(
            prometheus::Opts::new("linq_webhook_events_total", "h"),
            &["event_type"],
        )
        .expect("vec");
        events.with_label_values(&["message.sent"]).inc_by(3);
        events.with_label_values(&["message.read"]).inc_by(2);
        let rejected = prometheus::IntCounterVec::new(
            prometheus::Opts::new("linq_webhook_rejected_total", "h"),
            &["reason"],
        )
        .expect("vec");
        rejected.with_label_values(&["signature"]).inc();
        rejected.with_label_values(&["timestamp"]);
        let status = prometheus::IntGaugeVec::new(
            prometheus::Opts::new("linq_phone_number_status", "h"),
            &["phone_number", "status"],
        )
        .expect("vec");
        status
            .with_label_values(&["+14155550100", "FLAGGED"])
            .set(1);
        let up = prometheus::IntGauge::new("linq_up", "h").expect("gauge");
        r.register(Box::new(up.clone())).expect("register");
        assert!(!webhooks(&r.gather()).on);
        for c in [
            Box::new(last) as Box<dyn prometheus::core::Collector>,
            Box::new(events),
            Box::new(rejected),
            Box::new(status),
        ] {
            r.register(c).expect("register");
        }
        assert_eq!(
            webhooks(&r.gather()),
            Webhooks {
                on: true,
                last_event: 1_700_000_000.0,
                events: 5.0,
                rejected: vec![("signature".into(), 1.0)],
                line_status: vec![("+14155550100".into(), "FLAGGED".into())],
            }
        );
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape_html("<script>alert(\"x\")</script> & 'y'"),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }
}
