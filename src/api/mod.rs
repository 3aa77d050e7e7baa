//! The Linq API, the lowest layer: the HTTP client (timeouts, retries, bounded bodies), its wire
//! models, the fast page decoder, the cursor walk as a pure state machine, and the typed errors
//! whose variants become the `kind` label of the error counters.

pub(crate) mod client;
pub mod decode;
pub(crate) mod error;
pub mod models;
pub mod pagination;
