//! The sweep: the poller walks every chat through [`crate::api`], builds and renders a snapshot
//! on its CPU threads, and publishes it into the state the HTTP server reads.

pub(crate) mod cpu;
pub mod poller;
pub mod state;
