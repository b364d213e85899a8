//! What this binary is: version, commit, dirty flag, build time, compiler.

use chrono::{DateTime, Utc};

#[derive(Debug, Clone)]
pub struct Build {
    pub version: &'static str,
    pub git_sha: &'static str,
    pub git_dirty: bool,
    pub built_at: String,
    pub rustc: &'static str,
}

impl Build {
    pub fn current() -> Self {
        let built_at = env!("HEARTH_BUILT_AT")
            .parse::<i64>()
            .ok()
            .and_then(|secs| DateTime::<Utc>::from_timestamp(secs, 0))
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        Self {
            version: env!("CARGO_PKG_VERSION"),
            git_sha: env!("HEARTH_GIT_SHA"),
            git_dirty: env!("HEARTH_GIT_DIRTY") == "true",
            built_at,
            rustc: env!("HEARTH_RUSTC"),
        }
    }
}
