//! The one error type of glmhal, with enough context to act on.

use thiserror::Error;

/// Result alias used across glmhal.
pub type Result<T, E = HalError> = std::result::Result<T, E>;

/// Everything that can go wrong in the HAL, the op catalogue and the backends.
#[derive(Debug, Error)]
pub enum HalError {
    /// A device allocation failed for lack of memory. Kept apart so callers can
    /// shrink a batch or a cache instead of giving up.
    #[error("{backend}: out of device memory allocating {requested} bytes{}", available.map(|a| format!(" ({a} bytes free)")).unwrap_or_default())]
    OutOfMemory {
        /// Backend (and device) that ran out.
        backend: String,
        /// Bytes asked for.
        requested: usize,
        /// Bytes free, where the device says.
        available: Option<usize>,
    },

    /// A backend cannot be used on this machine.
    #[error("backend {backend} is unavailable: {reason}")]
    Unavailable {
        /// Backend name.
        backend: String,
        /// Why: library missing, no device, driver too old, ...
        reason: String,
    },

    /// An op (or an op with these dtypes or shapes) is not supported by a backend.
    #[error("{backend}: op {op} is not supported: {reason}")]
    Unsupported {
        /// Backend name.
        backend: String,
        /// Op name.
        op: String,
        /// Why.
        reason: String,
    },

    /// Shapes that do not fit the op.
    #[error("op {op}: shape mismatch: {detail}")]
    Shape {
        /// Op name.
        op: String,
        /// What does not fit.
        detail: String,
    },

    /// A dtype the op cannot take.
    #[error("op {op}: dtype mismatch: {detail}")]
    DType {
        /// Op name.
        op: String,
        /// What does not fit.
        detail: String,
    },

    /// A tensor descriptor that does not describe valid memory.
    #[error("invalid tensor layout: {0}")]
    Layout(String),

    /// An argument a user or caller gave that cannot be used.
    #[error("{context}: {message}")]
    InvalidArgument {
        /// Where the argument was given.
        context: String,
        /// What is wrong with it.
        message: String,
    },

    /// A failure reported by a backend or its vendor runtime.
    #[error("{backend}: {context}: {message}")]
    Backend {
        /// Backend name.
        backend: String,
        /// What the backend was doing.
        context: String,
        /// The runtime's own words.
        message: String,
    },

    /// A NaN or an infinity where an op needs finite values (the logits
    /// argmax picks from). Kept apart so the executor can find the node that
    /// produced it.
    #[error("{backend}: {op}: row {row} holds a NaN or an infinity")]
    NonFinite {
        /// Backend (and device) that met it.
        backend: String,
        /// Op that met it.
        op: String,
        /// A row it was seen in.
        row: usize,
    },

    /// An I/O failure with the path or stream it happened on.
    #[error("{context}: {source}")]
    Io {
        /// What was being read or written.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl HalError {
    /// Shorthand for [`HalError::Shape`].
    pub fn shape(op: impl Into<String>, detail: impl Into<String>) -> Self {
        HalError::Shape {
            op: op.into(),
            detail: detail.into(),
        }
    }

    /// Shorthand for [`HalError::DType`].
    pub fn dtype(op: impl Into<String>, detail: impl Into<String>) -> Self {
        HalError::DType {
            op: op.into(),
            detail: detail.into(),
        }
    }

    /// Shorthand for [`HalError::InvalidArgument`].
    pub fn invalid(context: impl Into<String>, message: impl Into<String>) -> Self {
        HalError::InvalidArgument {
            context: context.into(),
            message: message.into(),
        }
    }

    /// Shorthand for [`HalError::Backend`].
    pub fn backend(
        backend: impl Into<String>,
        context: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        HalError::Backend {
            backend: backend.into(),
            context: context.into(),
            message: message.into(),
        }
    }

    /// Shorthand for [`HalError::Io`].
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        HalError::Io {
            context: context.into(),
            source,
        }
    }
}
