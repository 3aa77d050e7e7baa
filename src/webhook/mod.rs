//! The webhook receiver: Linq's signed events (`message.*`, `phone_number.status_updated`, and
//! every other type, counted by type) joined with the poller's state in one set of metrics.
//!
//! It listens on its own address (`--webhook.listen-address`), so the webhook port can face the
//! internet while the metrics port stays private, and serves only `POST {--webhook.path}`:
//! verify the signature ([`verify`]), decode the envelope ([`envelope`]), drop a retry of an
//! event already counted (`dedupe`), count (`metrics`) and answer 2xx at once (`receiver`); it
//! never calls the Linq API while answering. [`subscribe`] creates and lists subscriptions.

pub(crate) mod dedupe;
pub mod envelope;
pub(crate) mod metrics;
pub(crate) mod receiver;
pub mod subscribe;
pub mod verify;
