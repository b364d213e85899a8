//! Small filesystem helpers with the guarantees the agent relies on: files
//! that appear whole or not at all, directory trees swapped in with renames,
//! staging directories that do not outlive a failure, and tree listings that
//! never follow a symbolic link.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use hearth_core::WorkspaceId;

use crate::error::DeliveryError;

/// Mode of files the agent writes (assets); plugins get theirs from
/// `hearth_archive::unpack`.
pub(crate) const FILE_MODE: u32 = 0o644;
/// Mode of directories the agent creates inside its directory.
pub(crate) const DIR_MODE: u32 = 0o755;

/// A short random suffix for staging and temporary names, so two attempts
/// (or a leftover from a crash) never collide.
pub(crate) fn random_suffix() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Writes `bytes` to `path` so that readers see the old content or the new
/// one, never a part: a temporary file in the same directory, created with
/// `mode` from the start (so a secret is never readable by others, not even
/// briefly), flushed to disk, then renamed over `path`.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let parent = path.parent().ok_or_else(|| io::Error::other("the path has no parent directory"))?;
    let name = path.file_name().ok_or_else(|| io::Error::other("the path has no file name"))?;
    let temp = parent.join(format!(".{}.tmp-{}", name.to_string_lossy(), random_suffix()));
    let result = (|| {
        let mut file = create_new_file(&temp, mode)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if result.is_err() {
        // The temporary file is ours and useless now; if removing it fails
        // too, the startup sweep of the agent directory removes it later.
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Creates a file that must not exist yet (`O_CREAT | O_EXCL`, so it never
/// follows a symbolic link or opens someone else's file) with `mode`.
pub(crate) fn create_new_file(path: &Path, mode: u32) -> io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    options.open(path)
}

/// Creates `path` and missing parents with [`DIR_MODE`].
pub(crate) fn create_dirs(path: &Path) -> io::Result<()> {
    create_dirs_with_mode(path, DIR_MODE)
}

/// Creates `path` and missing parents; new directories get `mode` (the
/// umask may only remove bits).
pub(crate) fn create_dirs_with_mode(path: &Path, mode: u32) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, mode);
    #[cfg(not(unix))]
    let _ = mode;
    builder.create(path)
}

/// Removes whatever is at `path`: a directory tree, a file or a symbolic
/// link (the link itself, never its target). A missing path is fine.
pub(crate) fn remove_path(path: &Path) -> io::Result<()> {
    let result = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(err) => Err(err),
    };
    match result {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Moves the finished tree `staging` to `target`, replacing what is there.
///
/// POSIX `rename` cannot replace a non-empty directory, so this is two
/// renames: the current `target` (if any) to `old`, then `staging` to
/// `target`. If the second fails, the first is undone, so `target` is never
/// left missing because of this call. Returns `old` when something was moved
/// away; the caller deletes it (and decides how loudly to complain if that
/// fails, since the swap itself has succeeded).
pub(crate) fn replace_dir(staging: &Path, target: &Path, old: &Path) -> io::Result<Option<PathBuf>> {
    let moved_away = match fs::symlink_metadata(target) {
        Ok(_) => {
            fs::rename(target, old)?;
            true
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => false,
        Err(err) => return Err(err),
    };
    if let Err(err) = fs::rename(staging, target) {
        if moved_away {
            if let Err(undo) = fs::rename(old, target) {
                return Err(io::Error::other(format!(
                    "{err}; and putting the previous version back from {} failed too: {undo}",
                    old.display()
                )));
            }
        }
        return Err(err);
    }
    Ok(moved_away.then(|| old.to_path_buf()))
}

/// Every regular file under `root`, as (POSIX path relative to `root`,
/// full path), sorted by relative path.
///
/// Nothing is followed: a symbolic link or any other special file anywhere
/// in the tree is an error naming it, as is a name that is not UTF-8. The
/// callers (assets verification, plugin hashing) want an exact picture of
/// what they wrote, and anything else in the tree means it was changed
/// behind their back.
pub(crate) fn list_files(root: &Path) -> io::Result<Vec<(String, PathBuf)>> {
    let mut files = Vec::new();
    let mut pending: Vec<(String, PathBuf)> = vec![(String::new(), root.to_path_buf())];
    while let Some((prefix, dir)) = pending.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_str().ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} has a name that is not UTF-8", entry.path().display()),
                )
            })?;
            let relative = if prefix.is_empty() { name.to_owned() } else { format!("{prefix}/{name}") };
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push((relative, entry.path()));
            } else if kind.is_file() {
                files.push((relative, entry.path()));
            } else {
                let what = if kind.is_symlink() { "a symbolic link" } else { "not a regular file" };
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is {what}", entry.path().display()),
                ));
            }
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

/// A directory being built that is removed unless it is [`Staging::keep`]t:
/// a failed or cancelled attempt leaves nothing behind.
pub(crate) struct Staging {
    path: PathBuf,
    workspace: WorkspaceId,
    armed: bool,
}

impl Staging {
    pub(crate) fn new(path: PathBuf, workspace: WorkspaceId) -> Self {
        Self { path, workspace, armed: true }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The directory has been moved into place; do not remove it.
    pub(crate) fn keep(mut self) {
        self.armed = false;
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.armed {
            if let Err(error) = remove_path(&self.path) {
                tracing::warn!(workspace_id = %self.workspace, path = %self.path.display(), %error,
                    "could not remove a staging directory; the agent's next start removes it");
            }
        }
    }
}

/// Runs blocking filesystem work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, DeliveryError> + Send + 'static,
) -> Result<T, DeliveryError> {
    tokio::task::spawn_blocking(work).await?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_replace_whole_files_with_the_given_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomically(&path, b"one", 0o600).unwrap();
        write_atomically(&path, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["state.json"], "no temporary file left behind");
    }

    #[test]
    fn replace_dir_swaps_and_reports_the_old_tree() {
        let dir = tempfile::tempdir().unwrap();
        let (staging, target, old) = (dir.path().join("new"), dir.path().join("cur"), dir.path().join("old"));
        fs::create_dir(&staging).unwrap();
        fs::write(staging.join("a"), "new").unwrap();
        assert_eq!(replace_dir(&staging, &target, &old).unwrap(), None, "nothing to move away the first time");
        fs::create_dir(&staging).unwrap();
        fs::write(staging.join("b"), "newer").unwrap();
        assert_eq!(replace_dir(&staging, &target, &old).unwrap(), Some(old.clone()));
        assert_eq!(fs::read_to_string(target.join("b")).unwrap(), "newer");
        assert!(!target.join("a").exists());
        assert!(old.join("a").exists());
    }

    #[test]
    fn replace_dir_puts_the_old_tree_back_when_the_new_one_cannot_move_in() {
        let dir = tempfile::tempdir().unwrap();
        let (target, old) = (dir.path().join("cur"), dir.path().join("old"));
        fs::create_dir(&target).unwrap();
        fs::write(target.join("a"), "keep me").unwrap();
        let missing = dir.path().join("missing-staging");
        assert!(replace_dir(&missing, &target, &old).is_err());
        assert_eq!(fs::read_to_string(target.join("a")).unwrap(), "keep me");
        assert!(!old.exists());
    }

    #[test]
    fn listings_are_sorted_relative_and_refuse_links() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("b/c")).unwrap();
        fs::write(dir.path().join("b/c/d.txt"), "").unwrap();
        fs::write(dir.path().join("a.txt"), "").unwrap();
        fs::create_dir(dir.path().join("empty")).unwrap();
        let listed: Vec<String> = list_files(dir.path()).unwrap().into_iter().map(|(p, _)| p).collect();
        assert_eq!(listed, ["a.txt", "b/c/d.txt"]);
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/etc/passwd", dir.path().join("b/link")).unwrap();
            let err = list_files(dir.path()).unwrap_err();
            assert!(err.to_string().contains("is a symbolic link"), "{err}");
        }
    }

    #[test]
    fn staging_directories_vanish_unless_kept() {
        let dir = tempfile::tempdir().unwrap();
        let id = WorkspaceId::new_random();
        let dropped = Staging::new(dir.path().join("s1"), id);
        fs::create_dir(dropped.path()).unwrap();
        fs::write(dropped.path().join("f"), "x").unwrap();
        drop(dropped);
        assert!(!dir.path().join("s1").exists());
        let kept = Staging::new(dir.path().join("s2"), id);
        fs::create_dir(kept.path()).unwrap();
        kept.keep();
        assert!(dir.path().join("s2").exists());
    }
}
