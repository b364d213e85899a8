//! sqlx errors onto the store's error kinds.

use hearth_store::StoreError;

use crate::{Dialect, Failure};

/// Maps a sqlx error onto the store's error kinds. Connection problems become
/// `Unavailable` (the API answers 503 with `Retry-After`), constraint
/// violations `Conflict`, and the dialect names what its own codes mean.
pub fn map_err<D: Dialect>(operation: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |error| match &error {
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
            if db.is_unique_violation() || db.is_foreign_key_violation() {
                StoreError::Conflict(db.message().to_owned())
            } else {
                match D::classify(db.as_ref()) {
                    Some(Failure::Unavailable) => StoreError::Unavailable { operation, message: error.to_string() },
                    Some(Failure::InvalidInput) => StoreError::InvalidInput(db.message().to_owned()),
                    None => StoreError::Database { operation, source: Box::new(error) },
                }
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
