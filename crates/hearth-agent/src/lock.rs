//! One agent per directory: an exclusive lock on `<dir>/agent.lock`, held for
//! the whole run.
//!
//! The lock is advisory (`flock`), so it dies with the process, however the
//! process ends: a crashed agent never leaves a stale lock behind. The file
//! also carries the holder's pid, which the process provisioner uses to stop
//! an agent it adopted from an earlier server.
//!
//! Both sides of the protocol are here: [`acquire`] (the agent) and
//! [`holder`] (a supervisor asking whether an agent runs, and which).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::AgentError;
use crate::LOCK_FILE;

/// The held lock; released when dropped (or when the process exits).
#[derive(Debug)]
pub(crate) struct DirLock {
    file: File,
    path: PathBuf,
}

impl DirLock {
    /// Whether `<dir>/agent.lock` is still the file this lock holds. It is
    /// not once the directory (or the file) was removed or replaced: then
    /// the lock no longer keeps a second agent out of the directory, since
    /// that agent locks the new file. A failure to look is an error, not an
    /// answer.
    pub(crate) fn is_current(&self) -> io::Result<bool> {
        let on_disk = match std::fs::symlink_metadata(&self.path) {
            Ok(meta) => meta,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(err) => return Err(err),
        };
        let held = self.file.metadata()?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Ok(on_disk.dev() == held.dev() && on_disk.ino() == held.ino())
        }
        #[cfg(not(unix))]
        {
            Ok(on_disk.is_file() && held.is_file())
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
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
    Ok(DirLock { file, path })
}

/// The agent holding a directory's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    /// Its process id; `None` in the instant between taking the lock and
    /// writing the pid (or if the file holds something else).
    pub pid: Option<u32>,
}

/// Which agent, if any, holds the lock on `dir`. No lock file means no
/// holder; any other failure to open, test or read the lock is an error,
/// since the answer is then unknown.
///
/// Testing takes the lock for an instant when it is free, so an agent
/// starting in that very instant fails with [`AgentError::Locked`].
pub fn holder(dir: &Path) -> io::Result<Option<Holder>> {
    // Opened for writing too, as the agent opens it: an exclusive lock is
    // what is tested.
    let mut file = match OpenOptions::new().read(true).write(true).open(dir.join(LOCK_FILE)) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    };
    match file.try_lock() {
        // Free: closing the file (dropping it) releases the test lock.
        Ok(()) => Ok(None),
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            file.read_to_string(&mut text)?;
            Ok(Some(Holder { pid: text.trim().parse().ok() }))
        }
        Err(TryLockError::Error(err)) => Err(err),
    }
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

    #[test]
    fn a_lock_whose_file_was_removed_or_replaced_is_no_longer_current() {
        let dir = tempfile::tempdir().unwrap();
        let held = acquire(dir.path()).unwrap();
        assert!(held.is_current().unwrap());
        std::fs::remove_file(dir.path().join(LOCK_FILE)).unwrap();
        assert!(!held.is_current().unwrap(), "removed");
        let second = acquire(dir.path()).expect("a new file is not locked");
        assert!(!held.is_current().unwrap(), "replaced by another agent's");
        assert!(second.is_current().unwrap());
    }

    #[test]
    fn a_held_lock_is_seen_and_a_free_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(holder(dir.path()).unwrap(), None, "no lock file");
        let file = File::create(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(holder(dir.path()).unwrap(), None);
        file.lock().unwrap();
        assert_eq!(holder(dir.path()).unwrap(), Some(Holder { pid: None }), "locked, no pid written yet");
        file.unlock().unwrap();
        assert_eq!(holder(dir.path()).unwrap(), None);
    }

    #[test]
    fn the_holder_is_named_by_the_pid_it_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let held = acquire(dir.path()).unwrap();
        assert_eq!(holder(dir.path()).unwrap(), Some(Holder { pid: Some(std::process::id()) }));
        drop(held);
        assert_eq!(holder(dir.path()).unwrap(), None, "released when dropped");
    }

    #[test]
    fn a_lock_that_cannot_be_read_is_an_error_not_a_free_lock() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be: opening it for writing fails.
        std::fs::create_dir(dir.path().join(LOCK_FILE)).unwrap();
        let err = holder(dir.path()).unwrap_err();
        assert_ne!(err.kind(), io::ErrorKind::NotFound, "{err}");
    }
}
