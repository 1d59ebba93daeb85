//! Mapping of SQLite errors onto [`StoreError`].

use rusqlite::ErrorCode;
use rusqlite::ffi;
use tessera_store::StoreError;

/// Maps a SQLite error; a UNIQUE or PRIMARY KEY violation becomes a conflict on `what`.
pub(crate) fn map(e: rusqlite::Error, what: &'static str) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(failure, _) => match failure.code {
            ErrorCode::ConstraintViolation
                if matches!(
                    failure.extended_code,
                    ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                ) =>
            {
                StoreError::Conflict(what)
            }
            // Faults of the machine an operator can fix (a busy or locked file, a full
            // disk, a file made read-only, an I/O error): the request may succeed later,
            // so it is answered 503 with Retry-After.
            code if is_fault(code) => StoreError::Unavailable(Box::new(e)),
            ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt => {
                StoreError::Corrupt(format!("the database file is unreadable: {e}"))
            }
            _ => StoreError::Backend(Box::new(e)),
        },
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::IntegralValueOutOfRange(..) => {
            StoreError::Corrupt(format!("a stored {what} cannot be read: {e}"))
        }
        _ => StoreError::Backend(Box::new(e)),
    }
}

/// Whether `code` is a fault of the machine an operator can fix (a busy or locked
/// file, a full disk, a file made read-only, an I/O error).
fn is_fault(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::CannotOpen
            | ErrorCode::DiskFull
            | ErrorCode::ReadOnly
            | ErrorCode::SystemIoFailure
            | ErrorCode::PermissionDenied
            | ErrorCode::OutOfMemory
    )
}

/// Whether `e` is a fault an operator can fix, worth answering 503 ([`map`] makes
/// it [`StoreError::Unavailable`]).
pub(crate) fn is_transient(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code().is_some_and(is_fault)
}

/// Whether `e` is a FOREIGN KEY violation.
pub(crate) fn is_foreign_key_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(failure, _)
            if failure.extended_code == ffi::SQLITE_CONSTRAINT_FOREIGNKEY
    )
}

/// Whether `e` says the database is busy or locked (worth retrying).
pub(crate) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(code), None)
    }

    #[test]
    fn codes_map_to_store_errors() {
        assert!(matches!(
            map(failure(ffi::SQLITE_CONSTRAINT_UNIQUE), "token"),
            StoreError::Conflict("token")
        ));
        assert!(matches!(
            map(failure(ffi::SQLITE_CONSTRAINT_PRIMARYKEY), "service user"),
            StoreError::Conflict("service user")
        ));
        assert!(matches!(
            map(failure(ffi::SQLITE_CONSTRAINT_NOTNULL), "token"),
            StoreError::Backend(_)
        ));
        for code in [
            ffi::SQLITE_BUSY,
            ffi::SQLITE_LOCKED,
            ffi::SQLITE_CANTOPEN,
            ffi::SQLITE_FULL,
            ffi::SQLITE_READONLY,
            ffi::SQLITE_IOERR,
            ffi::SQLITE_PERM,
        ] {
            let e = map(failure(code), "token");
            assert!(e.is_transient(), "{code}: {e:?}");
        }
        assert!(matches!(map(failure(ffi::SQLITE_NOTADB), "token"), StoreError::Corrupt(_)));
        assert!(matches!(map(failure(ffi::SQLITE_MISUSE), "token"), StoreError::Backend(_)));
        assert!(is_foreign_key_violation(&failure(ffi::SQLITE_CONSTRAINT_FOREIGNKEY)));
        assert!(is_busy(&failure(ffi::SQLITE_BUSY)));
        assert!(!is_busy(&failure(ffi::SQLITE_IOERR)));
    }
}
