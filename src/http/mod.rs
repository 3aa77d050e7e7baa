//! Serving: the router (`/metrics`, probes, status page), the connection loop with its bounds,
//! TLS and the `--web.config.file` it reloads.

pub mod conn;
pub mod router;
pub mod status_page;
pub(crate) mod tls;
pub mod web_config;
