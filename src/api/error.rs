//! Typed errors at the API and sweep boundaries. Each variant maps to the `kind` label of the
//! error counters, so what is logged and what is counted cannot disagree.

use std::path::PathBuf;
use std::time::Duration;

use crate::telemetry::CountedError;
pub use crate::telemetry::ErrorKind;

/// A failed API request (after any retries). Messages never contain the API key.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// Non-success status.
    #[error("{endpoint}: HTTP {status}{}{}{}", code.map(|c| format!(", Linq error code {c}")).unwrap_or_default(), message.as_ref().map(|m| format!(": {m}")).unwrap_or_default(), trace_id.as_ref().map(|t| format!(" (trace_id {t})")).unwrap_or_default())]
    Http {
        /// Endpoint label, e.g. `/v3/chats`.
        endpoint: &'static str,
        /// HTTP status.
        status: u16,
        /// Linq error code from the body, if any.
        code: Option<i64>,
        /// Linq error message from the body, if any.
        message: Option<String>,
        /// Linq's trace id, for support requests.
        trace_id: Option<String>,
    },
    /// The request timed out.
    #[error("{endpoint}: request timed out after {timeout:?}")]
    Timeout {
        /// Endpoint label.
        endpoint: &'static str,
        /// The bound that was exceeded.
        timeout: Duration,
    },
    /// Connecting failed or the connection dropped.
    #[error("{endpoint}: connection failed: {reason}")]
    Connect {
        /// Endpoint label.
        endpoint: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// The response body was larger than `--linq.max-response-size` (a broken upstream or proxy
    /// streaming without end, say). Not retried.
    #[error(
        "{endpoint}: response body exceeds --linq.max-response-size ({limit} bytes); abandoned"
    )]
    TooLarge {
        /// Endpoint label.
        endpoint: &'static str,
        /// The bound, in bytes.
        limit: u64,
    },
    /// The body did not decode.
    #[error("{endpoint}: response did not decode: {reason}")]
    Decode {
        /// Endpoint label.
        endpoint: &'static str,
        /// The decoder's message.
        reason: String,
    },
}

impl ApiError {
    /// The error's kind label.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ApiError::Http { .. } => ErrorKind::Http,
            ApiError::Timeout { .. } => ErrorKind::Timeout,
            ApiError::Connect { .. } => ErrorKind::Connect,
            ApiError::Decode { .. } => ErrorKind::Decode,
            ApiError::TooLarge { .. } => ErrorKind::TooLarge,
        }
    }

    /// HTTP status, when there was a response.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Linq error code, when the body carried one.
    pub fn code(&self) -> Option<i64> {
        match self {
            ApiError::Http { code, .. } => *code,
            _ => None,
        }
    }
}

impl CountedError for ApiError {
    fn kind(&self) -> ErrorKind {
        ApiError::kind(self)
    }
    fn status(&self) -> Option<u16> {
        ApiError::status(self)
    }
    fn code(&self) -> Option<i64> {
        ApiError::code(self)
    }
}

/// Why a sweep failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SweepError {
    /// A request failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The API handed back a cursor already seen in this walk.
    #[error("pagination loop: cursor {cursor:?} repeated after {pages} pages of the walk {walk}")]
    Pagination {
        /// The walk (`all` or the `from` number).
        walk: String,
        /// The repeated cursor.
        cursor: String,
        /// Pages fetched in the walk before the repeat.
        pages: u64,
    },
    /// The key file could not be used.
    #[error("API key file {path:?}: {reason}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Why (never the contents).
        reason: String,
    },
    /// The sweep ran past its deadline.
    #[error("sweep exceeded its deadline of {0:?}")]
    Deadline(Duration),
}

impl SweepError {
    /// The error's kind label.
    pub fn kind(&self) -> ErrorKind {
        match self {
            SweepError::Api(e) => e.kind(),
            SweepError::Pagination { .. } => ErrorKind::Pagination,
            SweepError::KeyFile { .. } => ErrorKind::KeyFile,
            SweepError::Deadline(_) => ErrorKind::Timeout,
        }
    }
}
