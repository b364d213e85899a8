use hearth_core::Rejection;

pub type StoreResult<T> = Result<T, StoreError>;

/// Every way a store call can fail, each something the caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row does not exist (or is not visible to the caller's org).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A uniqueness or foreign-key rule was broken by the caller's input;
    /// `what` is named by the operation that met it, never taken from the
    /// database's text (which names tables and differs by engine).
    #[error("{what}")]
    Conflict { what: Conflict },
    /// The database refused a value of the caller's (for example text with a
    /// NUL character, which Postgres cannot store). The server refuses such
    /// input at the edge; this is the safety net that keeps it a 400.
    #[error("the database refused a value: {0}")]
    InvalidInput(String),
    /// The state machine refused the input; nothing was written.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// A register without a token may not mint one: the workspace has had a
    /// token (revoked or not), is no longer `provisioning`, or was created
    /// before the bootstrap window (or another bootstrap minted first).
    /// Nothing was written.
    #[error("this workspace cannot bootstrap: it needs a token issued by an operator")]
    BootstrapRefused,
    /// A cap on what an org may hold is reached (`limit` of `what`); nothing
    /// was written.
    #[error("at most {limit} {what} may be live at once")]
    LimitReached { what: &'static str, limit: u64 },
    /// An org's quota would be exceeded: `limit`, and `used` before the
    /// request. Nothing was written.
    #[error("the org's {} quota is {limit} and {used} are used", quota.as_str())]
    QuotaExceeded { quota: crate::Quota, limit: i64, used: i64 },
    /// The org still holds workspaces that are not removed (`live` of
    /// them): it cannot be deleted without them. Nothing was written.
    #[error("the org still has {live} workspaces")]
    OrgNotEmpty { live: i64 },
    /// The database cannot be reached; retry later.
    #[error("database unavailable during {operation}: {message}")]
    Unavailable { operation: &'static str, message: String },
    /// Anything else the database said; a bug or an operational problem.
    #[error("database error during {operation}: {source}")]
    Database {
        operation: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A stored value could not be decoded into its domain type.
    #[error("corrupt row during {operation}: {message}")]
    Corrupt { operation: &'static str, message: String },
}

/// What a write conflicted with. Each store operation says what its
/// statements' uniqueness and foreign-key violations mean, where it runs
/// them; the sentence is the same on every engine and is what a 409 says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    #[error("a workspace with this id already exists")]
    WorkspaceExists,
    #[error("the parent workspace does not exist")]
    ParentMissing,
    #[error("the org does not exist")]
    OrgMissing,
    #[error("a token with this secret already exists")]
    TokenExists,
    #[error("an org with this name already exists")]
    OrgExists,
    #[error("the token's workspace does not exist")]
    TokenWorkspaceMissing,
    #[error("two files have the same path")]
    DuplicatePath,
}

impl StoreError {
    /// The operation that failed, for the `database_errors_total` metric.
    pub fn operation(&self) -> Option<&'static str> {
        match self {
            StoreError::Unavailable { operation, .. }
            | StoreError::Database { operation, .. }
            | StoreError::Corrupt { operation, .. } => Some(operation),
            _ => None,
        }
    }
}
