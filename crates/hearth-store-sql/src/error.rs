//! sqlx errors onto the store's error kinds.

use hearth_store::{Conflict, StoreError};

use crate::{Dialect, Failure};

/// What the constraint violations of one write mean, said by the operation
/// that runs it ([`map_write_err`]): the operation knows what it inserted,
/// where the database's text would only name a table and a constraint (and
/// in each engine's own words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Violations {
    /// A row with the same key exists (`None`: the write cannot meet one,
    /// so meeting one is a `Database` error, a bug).
    pub unique: Option<Conflict>,
    /// A row the write refers to does not exist (`None`: likewise).
    pub foreign_key: Option<Conflict>,
}

/// Maps a sqlx error onto the store's error kinds. Connection problems become
/// `Unavailable` (the API answers 503 with `Retry-After`) and the dialect
/// names what its own codes mean. A constraint violation here is a
/// `Database` error: a statement that can meet one runs with
/// [`map_write_err`], which says what it means.
pub fn map_err<D: Dialect>(operation: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |error| classify::<D>(operation, None, error)
}

/// [`map_err`] for a write whose uniqueness and foreign-key violations are
/// the caller's conflict: `StoreError::Conflict` with what `means` names.
pub fn map_write_err<D: Dialect>(operation: &'static str, means: Violations) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |error| classify::<D>(operation, Some(means), error)
}

fn classify<D: Dialect>(operation: &'static str, means: Option<Violations>, error: sqlx::Error) -> StoreError {
    match &error {
        // A protocol error is the conversation with the database breaking,
        // not the client's fault: a server that drops connections while
        // starting up leaves the TLS negotiation (SSLRequest) without an
        // answer, which sqlx reports as a protocol error, not as I/O.
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => StoreError::Unavailable { operation, message: error.to_string() },
        sqlx::Error::Database(db) => {
            let conflict = means.and_then(|means| {
                if db.is_unique_violation() {
                    means.unique
                } else if db.is_foreign_key_violation() {
                    means.foreign_key
                } else {
                    None
                }
            });
            match (conflict, D::classify(db.as_ref())) {
                (Some(what), _) => StoreError::Conflict { what },
                (None, Some(Failure::Unavailable)) => StoreError::Unavailable { operation, message: error.to_string() },
                (None, Some(Failure::InvalidInput)) => StoreError::InvalidInput(db.message().to_owned()),
                (None, None) => StoreError::Database { operation, source: Box::new(error) },
            }
        }
        _ => StoreError::Database { operation, source: Box::new(error) },
    }
}

/// Removes a password from anything that looks like a URL with credentials.
pub fn redact(text: &str) -> String {
    match (text.find("://"), text.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &text[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!("{}{}:***{}", &text[..scheme + 3], &creds[..colon], &text[at..]),
                None => text.to_owned(),
            }
        }
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("no url here"), "no url here");
    }
}
