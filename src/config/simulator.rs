//! Settings of the demo simulator (`--demo`, `simulate`), validated with the other flags.

use std::time::Duration;

/// The webhook signing secret of `--demo` (`whsec_` + base64 of "demo-webhook-secret").
pub const DEMO_WEBHOOK_SECRET: &str = "whsec_ZGVtby13ZWJob29rLXNlY3JldA==";

/// Simulator settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Number of chats.
    pub chats: usize,
    /// The account's numbers; chats are spread over them.
    pub numbers: Vec<String>,
    /// Added latency for every request.
    pub latency: Duration,
    /// Fraction of requests answered 500.
    pub error_rate: f64,
    /// Fraction of requests answered 429 with `Retry-After: 1`.
    pub rate_limit_rate: f64,
    /// Fraction of requests delayed by `slow_delay`.
    pub slow_rate: f64,
    /// Delay of a slow request.
    pub slow_delay: Duration,
    /// Fraction of chat pages answered with truncated JSON.
    pub malformed_rate: f64,
    /// Fraction of requests answered 401.
    pub unauthorized_rate: f64,
    /// How long health values stay put before drifting.
    pub drift_period: Duration,
    /// Time between two demo webhook deliveries.
    pub webhook_interval: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            chats: 3000,
            numbers: vec![
                "+14155550100".into(),
                "+14155550101".into(),
                "+12125550199".into(),
            ],
            latency: Duration::ZERO,
            error_rate: 0.0,
            rate_limit_rate: 0.0,
            slow_rate: 0.0,
            slow_delay: Duration::from_millis(300),
            malformed_rate: 0.0,
            unauthorized_rate: 0.0,
            drift_period: Duration::from_secs(15),
            webhook_interval: Duration::from_millis(50),
        }
    }
}
