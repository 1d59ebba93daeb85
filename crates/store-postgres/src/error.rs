//! Mapping of PostgreSQL and pool errors onto [`StoreError`].

use std::error::Error as _;

use deadpool_postgres::PoolError;
use tessera_store::StoreError;
use tokio_postgres::error::SqlState;

/// Maps a driver error; a unique violation becomes a conflict on `what`.
///
/// A foreign key violation is not special here: the callers that expect one turn
/// it into [`StoreError::NotFound`] ([`is_foreign_key_violation`]).
pub(crate) fn map(e: tokio_postgres::Error, what: &'static str) -> StoreError {
    if let Some(code) = e.code() {
        return if *code == SqlState::UNIQUE_VIOLATION {
            StoreError::Conflict(what)
        } else if is_transient_code(code) {
            StoreError::Unavailable(Box::new(e))
        } else {
            StoreError::Backend(Box::new(e))
        };
    }
    if is_connection_failure(&e) {
        StoreError::Unavailable(Box::new(e))
    } else {
        StoreError::Backend(Box::new(e))
    }
}

/// Maps an error of the pool: no connection could be had in time, or a new one
/// could not be made, is [`StoreError::Unavailable`].
pub(crate) fn map_pool(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => map(e, "database"),
        PoolError::Timeout(_) | PoolError::Closed => StoreError::Unavailable(Box::new(e)),
        PoolError::NoRuntimeSpecified | PoolError::PostCreateHook(_) => {
            StoreError::Backend(Box::new(e))
        }
    }
}

/// Whether `e` is a FOREIGN KEY violation.
pub(crate) fn is_foreign_key_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION)
}

/// Whether the server refused a statement for what it was asked to write (a
/// violated constraint, a bad value), rather than the connection or the
/// transaction failing: the same rows written one by one may each get a result of
/// their own.
pub(crate) fn is_refused_statement(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|code| !is_transient_code(code))
}

/// A copy of `e`, of the same kind, for each further operation that one failure
/// ended (the records of a group commit): the driver's errors cannot be cloned, so
/// a copy holds the message of the original and of its causes.
pub(crate) fn copy(e: &StoreError) -> StoreError {
    let message = || {
        let mut parts = Vec::new();
        let mut source = e.source();
        while let Some(cause) = source {
            parts.push(cause.to_string());
            source = cause.source();
        }
        let message = if parts.is_empty() { e.to_string() } else { parts.join(": ") };
        Box::new(std::io::Error::other(message))
    };
    match e {
        StoreError::NotFound(what) => StoreError::NotFound(what),
        StoreError::Conflict(what) => StoreError::Conflict(what),
        StoreError::Corrupt(detail) => StoreError::Corrupt(detail.clone()),
        StoreError::Unavailable(_) => StoreError::Unavailable(message()),
        _ => StoreError::Backend(message()),
    }
}

/// Server errors after which the same operation may succeed later: the connection
/// broke or was refused, the server is shutting down, starting up or out of
/// connections, the database is read-only (a standby during a failover), or the
/// transaction lost a serialization or deadlock race.
fn is_transient_code(code: &SqlState) -> bool {
    // Class 08: connection exception.
    code.code().starts_with("08")
        || [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::LOCK_NOT_AVAILABLE,
            SqlState::QUERY_CANCELED,
            SqlState::READ_ONLY_SQL_TRANSACTION,
        ]
        .contains(code)
}

/// Whether a driver error without a server error code means that the connection
/// failed: it is closed, could not be opened in time, or its socket failed.
fn is_connection_failure(e: &tokio_postgres::Error) -> bool {
    // tokio-postgres exposes no error kind beyond `is_closed`; the others are told
    // apart by their cause (an I/O error) or, for the connect timeout, which has
    // no cause, by its message.
    e.is_closed()
        || e.source().is_some_and(|s| s.is::<std::io::Error>())
        || (e.source().is_none() && e.to_string().contains("timeout"))
}

#[cfg(test)]
mod tests {
    use deadpool_postgres::TimeoutType;

    use super::*;

    #[test]
    fn transient_codes() {
        for code in [
            SqlState::CONNECTION_FAILURE,
            SqlState::CONNECTION_EXCEPTION,
            SqlState::SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::READ_ONLY_SQL_TRANSACTION,
        ] {
            assert!(is_transient_code(&code), "{code:?}");
        }
        for code in [
            SqlState::UNIQUE_VIOLATION,
            SqlState::FOREIGN_KEY_VIOLATION,
            SqlState::UNDEFINED_TABLE,
            SqlState::INVALID_PASSWORD,
            SqlState::SYNTAX_ERROR,
        ] {
            assert!(!is_transient_code(&code), "{code:?}");
        }
    }

    #[test]
    fn pool_errors() {
        for timeout in [TimeoutType::Wait, TimeoutType::Create, TimeoutType::Recycle] {
            assert!(map_pool(PoolError::Timeout(timeout)).is_transient());
        }
        assert!(map_pool(PoolError::Closed).is_transient());
        assert!(matches!(map_pool(PoolError::NoRuntimeSpecified), StoreError::Backend(_)));
    }
}
