//! Secret files (the admin token, the secret key, a runtime's token):
//! created with mode 0600, never overwritten, and a warning when one is
//! readable by others.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context};

/// Reads a secret file, or creates it with mode 0600 from `generate`.
/// Returns the value and whether it was created.
pub(crate) fn read_or_create_secret(path: &Path, generate: impl FnOnce() -> String) -> anyhow::Result<(String, bool)> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "secret file is readable by others; chmod 600 it");
            }
            let value = text.trim().to_owned();
            if value.is_empty() {
                bail!("{} is empty; delete it to generate a new one", path.display());
            }
            Ok((value, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let value = generate();
            write_secret_file(path, &value)?;
            Ok((value, true))
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Creates `path` (which must not exist) with mode 0600 — never readable by
/// others, not even briefly — and writes `value` and a newline.
pub fn write_secret_file(path: &Path, value: &str) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    writeln!(file, "{value}").with_context(|| format!("cannot write {}", path.display()))
}
