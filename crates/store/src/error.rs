/// A boxed error from a storage backend's driver.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error with its sources, on one line ("storage backend unavailable: database or
/// disk is full"), for logs and command-line messages.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The record to change or delete does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A record with the same unique key already exists.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The backend cannot be reached right now; the operation may succeed later.
    #[error("storage backend unavailable")]
    Unavailable(#[source] BoxError),
    /// The backend holds data this version cannot read.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// Any other backend failure.
    #[error("storage backend failed")]
    Backend(#[source] BoxError),
}

impl StoreError {
    /// Whether retrying later may succeed (the backend was unreachable or busy).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}
