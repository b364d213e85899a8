//! The workspace token: where it comes from and how it is kept.
//!
//! Precedence: `--token`, else `--token-file`, else `<dir>/.auth_token`.
//! Without any, the first registration is the bootstrap and the token it
//! mints is saved to `<dir>/.auth_token` with mode 0600, so a restarted agent
//! (or the process provisioner's next start) reuses it instead of needing an
//! operator to issue a new one.

use std::io;
use std::path::{Path, PathBuf};

use crate::error::AgentError;
use crate::{fsutil, AgentConfig, TOKEN_FILE};

/// Mode of the saved token: readable and writable by its owner only.
pub(crate) const TOKEN_MODE: u32 = 0o600;

/// The token this agent starts with, if any.
pub(crate) fn load(config: &AgentConfig) -> Result<Option<String>, AgentError> {
    if let Some(token) = &config.token {
        let token = token.trim();
        if token.is_empty() {
            return Err(AgentError::Config("the token given with --token is empty".into()));
        }
        return Ok(Some(token.to_owned()));
    }
    if let Some(path) = &config.token_file {
        // An explicitly named file must be there: silently falling back to a
        // bootstrap would hide a misconfiguration.
        return read(path, config).map(Some);
    }
    let default = config.dir.join(TOKEN_FILE);
    match std::fs::symlink_metadata(&default) {
        Ok(_) => read(&default, config).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AgentError::io("inspect the token file", default, e)),
    }
}

fn read(path: &Path, config: &AgentConfig) -> Result<String, AgentError> {
    let text = std::fs::read_to_string(path).map_err(|e| AgentError::io("read the token file", path, e))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(AgentError::Config(format!("the token file {} is empty", path.display())));
    }
    warn_if_exposed(path, config);
    Ok(token.to_owned())
}

/// A token others can read is worth a warning, not a refusal: the agent
/// still works, and the operator may have reasons.
fn warn_if_exposed(path: &Path, config: &AgentConfig) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(workspace_id = %config.workspace, path = %path.display(), mode = format!("{mode:o}"),
                    "the token file is readable by other users; chmod 600 it");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (path, config);
}

/// Saves a freshly minted token to `<dir>/.auth_token` (mode 0600 from the
/// moment the file exists, replaced atomically) and returns the path.
pub(crate) fn save(dir: &Path, token: &str) -> Result<PathBuf, AgentError> {
    let path = dir.join(TOKEN_FILE);
    fsutil::write_atomically(&path, format!("{token}\n").as_bytes(), TOKEN_MODE)
        .map_err(|e| AgentError::io("save the token to", &path, e))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_core::WorkspaceId;

    fn config(dir: &Path) -> AgentConfig {
        AgentConfig::new("http://127.0.0.1:1", WorkspaceId::new_random(), dir)
    }

    #[test]
    fn the_flag_wins_then_the_named_file_then_the_dir_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path());
        assert_eq!(load(&config).unwrap(), None);
        save(dir.path(), "from-dir").unwrap();
        assert_eq!(load(&config).unwrap().as_deref(), Some("from-dir"));
        let named = dir.path().join("named");
        std::fs::write(&named, "  from-file\n").unwrap();
        config.token_file = Some(named);
        assert_eq!(load(&config).unwrap().as_deref(), Some("from-file"));
        config.token = Some("from-flag".into());
        assert_eq!(load(&config).unwrap().as_deref(), Some("from-flag"));
    }

    #[test]
    fn missing_or_empty_named_tokens_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path());
        config.token_file = Some(dir.path().join("absent"));
        let err = load(&config).unwrap_err();
        assert!(err.to_string().contains("cannot read the token file"), "{err}");
        std::fs::write(dir.path().join("absent"), "\n").unwrap();
        assert!(load(&config).unwrap_err().to_string().contains("is empty"));
        config.token = Some(" ".into());
        assert!(load(&config).unwrap_err().to_string().contains("--token is empty"));
    }

    #[cfg(unix)]
    #[test]
    fn saved_tokens_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = save(dir.path(), "secret").unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "secret\n");
    }
}
