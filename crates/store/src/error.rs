/// A boxed error from a storage backend's driver.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error with its sources, on one line ("storage backend unavailable: database or
/// disk is full"), for logs and command-line messages. A source that repeats the
/// message before it (an error that prints its source, a driver's code and text
/// under the same text) is not repeated.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut last = out.clone();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.ends_with(&text) && !text.ends_with(&last) {
            out.push_str(": ");
            out.push_str(&text);
        }
        last = text;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("storage: {0}")]
        Prints(#[source] StoreError),
        #[error("start-up failed")]
        Hides(#[source] StoreError),
        #[error("attempt to write a readonly database")]
        Driver(#[source] Coded),
    }

    #[derive(Debug, thiserror::Error)]
    #[error("Error code 8: attempt to write a readonly database")]
    struct Coded;

    fn disk_full() -> StoreError {
        StoreError::Unavailable(Box::new(std::io::Error::other("database or disk is full")))
    }

    #[test]
    fn a_chain_names_every_cause_once() {
        assert_eq!(
            error_chain(&Outer::Prints(disk_full())),
            "storage: storage backend unavailable: database or disk is full"
        );
        assert_eq!(
            error_chain(&Outer::Hides(disk_full())),
            "start-up failed: storage backend unavailable: database or disk is full"
        );
        assert_eq!(
            error_chain(&StoreError::Unavailable(Box::new(Outer::Driver(Coded)))),
            "storage backend unavailable: attempt to write a readonly database"
        );
    }
}
