use tessera_mint::KeyError;
use tessera_store::{RandomError, StoreError};

/// Why a management operation failed. Nothing was written, unless the variant says
/// otherwise ([`AdminError::Store`] during a multi-step write).
///
/// The messages are written for operators: the reference server prints them as they
/// are.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The record to read, change or delete does not exist.
    #[error("{what} {id} not found")]
    NotFound {
        /// The kind of record: `service user`, `project`, `API app`, `key`.
        what: &'static str,
        /// Its identifier as given.
        id: String,
    },
    /// A record with this identifier exists already.
    #[error("{what} {id} already exists")]
    AlreadyExists {
        /// The kind of record: `service user`, `project`, or `client ID` (taken by an
        /// API app or a service user).
        what: &'static str,
        /// The identifier.
        id: String,
    },
    /// An argument is out of its allowed range.
    #[error("{field}: {reason}")]
    Invalid {
        /// The argument.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An entry of a bootstrap document is invalid or refers to something that does
    /// not exist; the document was not applied.
    #[error("bootstrap: {entry}: {reason}")]
    Bootstrap {
        /// The entry, as `service_users[1] (billing-job)`.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A generated key pair could not be encoded for its key file.
    #[error("the generated key could not be encoded")]
    KeyEncoding,
    /// A key pair could not be generated.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The operating system's random number generator failed.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AdminError {
    /// Whether retrying later may succeed (the store was unreachable or busy).
    pub fn is_transient(&self) -> bool {
        matches!(self, AdminError::Store(e) if e.is_transient())
    }

    /// A [`StoreError::NotFound`] as [`AdminError::NotFound`] of `what` `id`; any other
    /// error unchanged.
    pub(crate) fn not_found(
        what: &'static str,
        id: &impl ToString,
    ) -> impl FnOnce(StoreError) -> Self {
        let id = id.to_string();
        move |e| match e {
            StoreError::NotFound(_) => AdminError::NotFound { what, id },
            other => other.into(),
        }
    }

    /// A [`StoreError::Conflict`] as [`AdminError::AlreadyExists`] of `what` `id`; any
    /// other error unchanged.
    pub(crate) fn exists(
        what: &'static str,
        id: &impl ToString,
    ) -> impl FnOnce(StoreError) -> Self {
        let id = id.to_string();
        move |e| match e {
            StoreError::Conflict(_) => AdminError::AlreadyExists { what, id },
            other => other.into(),
        }
    }
}
