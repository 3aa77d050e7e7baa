//! The receiver's metrics, registered in the exporter's one registry when the receiver is on.
//! Every label set stays bounded whatever arrives: `phone_number` is one of the account's
//! numbers or `unknown`, and the other free-form values (event type, service, error code, line
//! status) are capped; a value past its cap becomes `other` and is counted in
//! `linq_webhook_labels_capped_total{label}`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use prometheus::{Gauge, IntCounter, IntCounterVec, IntGaugeVec, Opts};

use crate::format::histogram::HistogramVec;
use crate::sweep::state::ChatDirectory;
use crate::telemetry::{SelfMetrics, StatusGauge};
use crate::webhook::envelope::{Detail, Event, MessageEvent, Stamp};
use crate::webhook::verify::Rejection;

/// Why a request was refused or ignored (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// No signature verified (401).
    Signature,
    /// A signature verified with a timestamp outside `--webhook.max-age` (401).
    Timestamp,
    /// Already counted: a retry (answered 2xx, not counted again).
    Duplicate,
    /// Verified, but not a JSON envelope (400).
    Malformed,
    /// Body over 1 MiB (413).
    TooLarge,
    /// Body not received within the body timeout (408).
    Timeout,
}

impl Rejected {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejected::Signature => "signature",
            Rejected::Timestamp => "timestamp",
            Rejected::Duplicate => "duplicate",
            Rejected::Malformed => "malformed",
            Rejected::TooLarge => "too_large",
            Rejected::Timeout => "timeout",
        }
    }

    const ALL: [Rejected; 6] = [
        Rejected::Signature,
        Rejected::Timestamp,
        Rejected::Duplicate,
        Rejected::Malformed,
        Rejected::TooLarge,
        Rejected::Timeout,
    ];
}

impl From<Rejection> for Rejected {
    fn from(r: Rejection) -> Self {
        match r {
            Rejection::Signature => Rejected::Signature,
            Rejection::Timestamp => Rejected::Timestamp,
        }
    }
}

/// The `message.failed` codes Linq documents (retries exhausted, delivery failed): their
/// failure series start at zero too, so `rate()` and the failure alerts have them from the start.
const DOCUMENTED_ERROR_CODES: [&str; 2] = ["3007", "4001"];

/// Classic bucket bounds (seconds) of the latency histograms: messaging spans a tenth of a
/// second (a webhook's lag, an iMessage delivery) to a day (a message read the next morning).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0,
    21600.0, 86400.0,
];

/// The `histogram` label of `linq_webhook_timestamps_unobserved_total`.
const UNOBSERVED_HISTOGRAMS: [&str; 3] = ["delivery", "read", "lag"];
/// Its `reason` label.
const UNOBSERVED_REASONS: [&str; 3] = ["missing", "invalid", "negative"];

/// Distinct values accepted per capped label before `other`.
const EVENT_TYPE_CAP: usize = 128;
const SERVICE_CAP: usize = 16;
const ERROR_CODE_CAP: usize = 64;
const STATUS_CAP: usize = 16;
const LINES_CAP: usize = 256;

/// The receiver's metrics.
#[derive(Debug)]
pub struct WebhookMetrics {
    events: IntCounterVec,
    rejected: IntCounterVec,
    last_event: Gauge,
    messages: IntCounterVec,
    failures: IntCounterVec,
    line_status: StatusGauge,
    capped: IntCounterVec,
    evictions: IntCounter,
    delivery: Arc<HistogramVec>,
    read: Arc<HistogramVec>,
    lag: Arc<HistogramVec>,
    unobserved: IntCounterVec,
    seen_values: Mutex<HashMap<&'static str, HashSet<String>>>,
}

impl WebhookMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &SelfMetrics) -> Result<Self, prometheus::Error> {
        let events = IntCounterVec::new(
            Opts::new(
                "linq_webhook_events_total",
                "Verified webhook events by type, counted once per event id.",
            ),
            &["event_type"],
        )?;
        let rejected = IntCounterVec::new(
            Opts::new(
                "linq_webhook_rejected_total",
                "Webhook requests refused or ignored: signature, timestamp, duplicate, malformed, too_large, timeout.",
            ),
            &["reason"],
        )?;
        let last_event = Gauge::new(
            "linq_webhook_last_event_timestamp_seconds",
            "Unix time of the last verified webhook event (0 before the first).",
        )?;
        let messages = IntCounterVec::new(
            Opts::new(
                "linq_message_events_total",
                "Message events from webhooks by the account's number, service and event (sent, received, delivered, read, failed).",
            ),
            &["phone_number", "service", "event"],
        )?;
        let failures = IntCounterVec::new(
            Opts::new(
                "linq_message_failures_total",
                "message.failed webhook events by the account's number, service and Linq error code.",
            ),
            &["phone_number", "service", "error_code"],
        )?;
        let line_status = IntGaugeVec::new(
            Opts::new(
                "linq_phone_number_status",
                "1 for each line's current status (ACTIVE, FLAGGED or newer) from phone_number.status_updated webhooks; absent until the first.",
            ),
            &["phone_number", "status"],
        )?;
        let capped = IntCounterVec::new(
            Opts::new(
                "linq_webhook_labels_capped_total",
                "Webhook label values replaced by \"other\" because the label's cap of distinct values was reached.",
            ),
            &["label"],
        )?;
        let evictions = IntCounter::new(
            "linq_webhook_dedupe_evictions_total",
            "Event ids forgotten before their 35-minute window to keep the dedupe memory bounded.",
        )?;
        let unobserved = IntCounterVec::new(
            Opts::new(
                "linq_webhook_timestamps_unobserved_total",
                "Latency observations not made: histogram (delivery, read, lag) and reason (missing, invalid, or negative: clock skew).",
            ),
            &["histogram", "reason"],
        )?;
        let delivery = Arc::new(HistogramVec::new(
            "linq_message_delivery_seconds",
            "Time from sent_at to delivered_at of messages, from message.delivered webhooks, by the account's number and service.",
            &["phone_number", "service"],
            LATENCY_BUCKETS,
        ));
        let read = Arc::new(HistogramVec::new(
            "linq_message_read_seconds",
            "Time from delivered_at to read_at of messages, from message.read webhooks, by the account's number and service.",
            &["phone_number", "service"],
            LATENCY_BUCKETS,
        ));
        let lag = Arc::new(HistogramVec::new(
            "linq_webhook_delivery_lag_seconds",
            "Time from a webhook event's created_at to its receipt, by event type.",
            &["event_type"],
            LATENCY_BUCKETS,
        ));
        for h in [&delivery, &read, &lag] {
            registry.register_histogram(h.clone());
        }
        for histogram in UNOBSERVED_HISTOGRAMS {
            for reason in UNOBSERVED_REASONS {
                unobserved.with_label_values(&[histogram, reason]);
            }
        }
        for c in [
            Box::new(unobserved.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(events.clone()),
            Box::new(rejected.clone()),
            Box::new(last_event.clone()),
            Box::new(messages.clone()),
            Box::new(failures.clone()),
            Box::new(line_status.clone()),
            Box::new(capped.clone()),
            Box::new(evictions.clone()),
        ] {
            registry.register(c)?;
        }
        for r in Rejected::ALL {
            rejected.with_label_values(&[r.as_str()]);
        }
        for label in [
            "event_type",
            "service",
            "error_code",
            "status",
            "phone_number",
        ] {
            capped.with_label_values(&[label]);
        }
        Ok(WebhookMetrics {
            events,
            rejected,
            last_event,
            messages,
            failures,
            line_status: StatusGauge::new(line_status),
            capped,
            evictions,
            delivery,
            read,
            lag,
            unobserved,
            seen_values: Mutex::new(HashMap::new()),
        })
    }

    /// `value`, or `other` once `label` has `cap` other values.
    fn capped<'a>(&self, label: &'static str, value: &'a str, cap: usize) -> &'a str {
        let mut seen = self.seen_values.lock().unwrap_or_else(|p| p.into_inner());
        let values = seen.entry(label).or_default();
        if values.contains(value) {
            return value;
        }
        if values.len() < cap {
            values.insert(value.to_string());
            return value;
        }
        self.capped.with_label_values(&[label]).inc();
        "other"
    }

    /// `to - from` in seconds, or `None` (counted under its reason) when either is missing or
    /// invalid or the difference is negative (clock skew).
    fn latency(&self, histogram: &str, from: Stamp, to: Stamp) -> Option<f64> {
        let reason = match (from, to) {
            (Stamp::At(a), Stamp::At(b)) if b >= a => return Some(b - a),
            (Stamp::At(_), Stamp::At(_)) => "negative",
            (Stamp::Invalid, _) | (_, Stamp::Invalid) => "invalid",
            _ => "missing",
        };
        self.unobserved
            .with_label_values(&[histogram, reason])
            .inc();
        None
    }

    /// Counts a refused or ignored request.
    pub fn rejected(&self, why: Rejected) {
        self.rejected.with_label_values(&[why.as_str()]).inc();
    }

    /// Counts ids the dedupe set forgot early.
    pub fn evicted(&self, n: u64) {
        self.evictions.inc_by(n);
    }

    /// Starts the five message-event series, and the failure series of the documented error
    /// codes, of every (account number, service) at zero, so `rate()` has a series before the
    /// first event.
    pub fn init(&self, directory: &ChatDirectory) {
        for (number, service) in directory.pairs() {
            let service = self.capped("service", service, SERVICE_CAP);
            for e in MessageEvent::ALL {
                self.messages
                    .with_label_values(&[number, service, e.as_str()]);
            }
            self.delivery.init(&[number, service]);
            self.read.init(&[number, service]);
            for code in DOCUMENTED_ERROR_CODES {
                self.capped("error_code", code, ERROR_CODE_CAP);
                self.failures.with_label_values(&[number, service, code]);
            }
        }
    }

    /// Counts a verified, new event at Unix time `now`.
    pub fn count(
        &self,
        event: &Event,
        directory: &ChatDirectory,
        telemetry: &SelfMetrics,
        now: f64,
    ) {
        let event_type = self.capped("event_type", &event.event_type, EVENT_TYPE_CAP);
        self.events.with_label_values(&[event_type]).inc();
        self.last_event.set(now);
        let trace_id = event.trace_id.as_deref();
        let lag = self.latency("lag", event.created_at, Stamp::At(now));
        if let Some(lag) = lag {
            self.lag.observe(&[event_type], lag, trace_id, now);
        }
        match &event.detail {
            Detail::Message {
                event,
                chat_id,
                owner,
                service,
                error_code,
                times,
            } => {
                let known = chat_id.as_deref().and_then(|id| directory.chat(id));
                // The account's own number: the payload's, when it is one of the account's,
                // else the chat's in the last snapshot, else unknown.
                let number = owner
                    .as_deref()
                    .filter(|n| directory.is_account_number(n))
                    .or(known.map(|(n, _)| n).filter(|n| *n != "unknown"))
                    .unwrap_or("unknown");
                let service = service
                    .as_deref()
                    .or(known.map(|(_, s)| s))
                    .unwrap_or("unknown");
                let service = self.capped("service", service, SERVICE_CAP);
                self.messages
                    .with_label_values(&[number, service, event.as_str()])
                    .inc();
                let latency = match event {
                    MessageEvent::Delivered => Some((
                        &self.delivery,
                        self.latency("delivery", times.sent_at, times.delivered_at),
                    )),
                    MessageEvent::Read => Some((
                        &self.read,
                        self.latency("read", times.delivered_at, times.read_at),
                    )),
                    _ => None,
                };
                if let Some((histogram, Some(seconds))) = latency {
                    histogram.observe(&[number, service], seconds, trace_id, now);
                }
                if *event == MessageEvent::Failed {
                    let code = error_code.as_deref().unwrap_or("unknown");
                    let code = self.capped("error_code", code, ERROR_CODE_CAP);
                    self.failures
                        .with_label_values(&[number, service, code])
                        .inc();
                }
            }
            Detail::PhoneStatus {
                phone_number,
                status,
                reputation,
            } => {
                // Status events come signed from Linq and name the account's lines; before the
                // first sweep lists them, a capped number of lines is accepted as sent.
                let phone_number = if directory.is_account_number(phone_number) {
                    phone_number.as_str()
                } else {
                    self.capped("phone_number", phone_number, LINES_CAP)
                };
                if phone_number == "other" {
                    return;
                }
                if let Some(status) = status {
                    let status = self.capped("status", status, STATUS_CAP);
                    self.line_status.set(phone_number, status);
                }
                if let Some(reputation) = reputation {
                    let reputation = self.capped("status", reputation, STATUS_CAP);
                    telemetry.set_reputation(phone_number, reputation);
                }
            }
            Detail::Other => {}
        }
    }
}
