//! [`ArchiveError`]: every way packing or extracting can fail.
//!
//! Messages reach operators (upload responses) and logs, so each is one
//! sentence naming the entry at fault. Entry names come from untrusted input:
//! they are always shown escaped and truncated (see [`entry_label`]).

use std::io;
use std::path::PathBuf;

use hearth_core::bundle_path::BundlePathError;

/// Why an archive was refused, or could not be written or extracted.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("the archive is not a valid gzip-compressed tar file: {reason}")]
    Corrupt { reason: String },
    #[error("the archive decompresses to more than {limit} bytes, which its limits do not allow")]
    StreamTooLarge { limit: u64 },
    #[error("archive entry {entry} has a path that is not valid UTF-8")]
    NonUtf8Path { entry: String },
    #[error("archive entry {entry} has an absolute path; entries must be relative to the bundle root")]
    AbsolutePath { entry: String },
    #[error("archive entry {entry} contains a '..' component, which could escape the destination")]
    ParentComponent { entry: String },
    #[error("archive entry {entry} has an invalid path: {source}")]
    InvalidPath {
        entry: String,
        #[source]
        source: BundlePathError,
    },
    #[error("archive entry {entry} is a symbolic link (to {target}); links are not allowed")]
    Symlink { entry: String, target: String },
    #[error("archive entry {entry} is a hard link (to {target}); links are not allowed")]
    HardLink { entry: String, target: String },
    #[error("archive entry {entry} is a {kind}; only regular files and directories are allowed")]
    SpecialFile { entry: String, kind: &'static str },
    #[error("archive entry {entry} has unsupported type {kind}; only regular files and directories are allowed")]
    UnsupportedType { entry: String, kind: String },
    #[error("archive entry {entry} is larger than the limit of {limit} bytes per file")]
    FileTooLarge { entry: String, limit: u64 },
    #[error("archive entry {entry} takes the archive over the limit of {limit} bytes in total")]
    TotalTooLarge { entry: String, limit: u64 },
    #[error("the archive has more than {limit} entries, which is the limit")]
    TooManyEntries { limit: u64 },
    #[error("archive entry {entry} appears more than once")]
    Duplicate { entry: String },
    #[error("archive entry {entry} conflicts with {other}: one path cannot be both a file and a directory")]
    Conflict { entry: String, other: String },
    #[error("cannot write {what} into the archive: {source}")]
    Write {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot unpack into {}: {reason}", path.display())]
    InvalidDestination { path: PathBuf, reason: &'static str },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Shows an entry name from an untrusted archive: lossy UTF-8, escaped with
/// Rust debug quoting (so control characters cannot forge log lines) and cut
/// to a readable length.
pub(crate) fn entry_label(raw: &[u8]) -> String {
    const MAX_CHARS: usize = 120;
    let text = String::from_utf8_lossy(raw);
    if text.chars().count() <= MAX_CHARS {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(MAX_CHARS).collect();
        format!("{head:?}…")
    }
}
