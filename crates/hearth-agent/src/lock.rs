//! One agent per directory: an exclusive lock on `<dir>/agent.lock`, held for
//! the whole run.
//!
//! The lock is advisory (`flock`), so it dies with the process, however the
//! process ends: a crashed agent never leaves a stale lock behind. The file
//! also carries the holder's pid, which the process provisioner uses to stop
//! an agent it adopted from an earlier server.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::Path;

use crate::error::AgentError;
use crate::LOCK_FILE;

/// The held lock; released when dropped (or when the process exits).
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

/// Takes the lock on `dir`, or fails at once with [`AgentError::Locked`].
pub(crate) fn acquire(dir: &Path) -> Result<DirLock, AgentError> {
    let path = dir.join(LOCK_FILE);
    // No truncation on open: until the lock is ours, the pid in the file
    // belongs to the running agent and must stay readable.
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o644);
    let mut file = options.open(&path).map_err(|e| AgentError::io("open the lock file", &path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Err(AgentError::Locked { dir: dir.to_path_buf() }),
        Err(TryLockError::Error(e)) => return Err(AgentError::io("lock", &path, e)),
    }
    file.set_len(0).map_err(|e| AgentError::io("write the pid into", &path, e))?;
    writeln!(file, "{}", std::process::id()).map_err(|e| AgentError::io("write the pid into", &path, e))?;
    Ok(DirLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_dir_fails_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire(dir.path()).unwrap();
        let pid = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(pid.trim(), std::process::id().to_string());
        let err = acquire(dir.path()).unwrap_err();
        assert!(matches!(err, AgentError::Locked { .. }), "{err:?}");
        assert!(err.to_string().contains("another agent is running for"), "{err}");
        assert_eq!(std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap(), pid, "the holder's pid is kept");
        drop(first);
        acquire(dir.path()).unwrap();
    }
}
