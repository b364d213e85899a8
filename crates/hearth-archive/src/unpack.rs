//! Safe tarball reading: to memory ([`read_files`]) or to disk ([`unpack`]).
//!
//! Both share one scanner that enforces every rule; only where the bytes go
//! differs (a [`Sink`]). The scanner never trusts a header: paths are
//! validated as [`BundlePath`]s, only regular files and directories pass, and
//! limits are applied to the bytes actually read from the decompressed stream.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use hearth_core::bundle_path::BundlePath;
use tar::EntryType;

use crate::error::{entry_label, ArchiveError};
use crate::Limits;

/// Decompressed bytes allowed per entry beyond file contents: the 512-byte
/// header, up to 511 bytes of padding, and room for the GNU long-name or PAX
/// records that carry long paths.
const OVERHEAD_PER_ENTRY: u64 = 8 << 10;
/// Decompressed bytes allowed for the whole archive beyond the per-entry
/// overhead: end-of-archive blocks and record padding.
const OVERHEAD_FIXED: u64 = 64 << 10;

/// Reads every regular file of `tarball` into memory, sorted by path.
///
/// The same checks as [`unpack`] apply; directories are accepted but not
/// returned (they are implied by the file paths). This is how the server takes
/// plugin uploads: nothing touches the disk, and [`Limits`] bound the memory
/// used.
pub fn read_files(tarball: &[u8], limits: &Limits) -> crate::Result<Vec<(BundlePath, Vec<u8>)>> {
    read_files_from(tarball, limits)
}

/// [`read_files`] from a reader (a spooled upload), so the compressed
/// tarball need not be in memory too.
pub fn read_files_from(tarball: impl Read, limits: &Limits) -> crate::Result<Vec<(BundlePath, Vec<u8>)>> {
    let mut sink = MemorySink { files: Vec::new() };
    scan(tarball, limits, &mut sink)?;
    let mut files = sink.files;
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

/// Extracts `tarball` into `dest` and returns the files written with their
/// sizes, sorted by path.
///
/// `dest` must be an empty directory or not exist yet (missing parents are
/// created). Extraction happens in a fresh temporary directory next to `dest`,
/// which is renamed onto `dest` only once every entry has passed; on any error
/// the temporary directory is removed and `dest` is left exactly as it was.
/// Because nothing is ever written into an existing tree, no symlink planted
/// in `dest` can redirect a write.
///
/// Files are written with mode 0644 and directories with 0755 whatever the
/// headers say (no setuid, setgid, sticky or executable bits; no owners, no
/// times). Refused, with an error naming the entry: absolute paths, `..`
/// components, paths that are not valid [`BundlePath`]s, symlinks, hard links,
/// device nodes, FIFOs and every other entry type except regular files and
/// directories, duplicates, file/directory clashes, and anything over
/// `limits`.
pub fn unpack(tarball: &[u8], dest: &Path, limits: &Limits) -> crate::Result<Vec<(BundlePath, u64)>> {
    let dest_exists = check_destination(dest)?;
    let parent = match dest.parent() {
        Some(parent) if parent.as_os_str().is_empty() => Path::new("."),
        Some(parent) => parent,
        None => {
            return Err(ArchiveError::InvalidDestination { path: dest.into(), reason: "it has no parent directory" })
        }
    };
    fs::create_dir_all(parent).map_err(|source| ArchiveError::Io {
        action: "create the directory",
        path: parent.into(),
        source,
    })?;
    let prefix = format!(".{}.unpack-", dest.file_name().map(|n| n.to_string_lossy()).unwrap_or_default());
    let staging = tempfile::Builder::new().prefix(&prefix).tempdir_in(parent).map_err(|source| ArchiveError::Io {
        action: "create a temporary directory in",
        path: parent.into(),
        source,
    })?;

    let mut sink = DiskSink { root: staging.path().to_path_buf() };
    let mut files = scan(tarball, limits, &mut sink)?;
    set_mode(staging.path(), DIR_MODE)?;

    if let Err(first) = fs::rename(staging.path(), dest) {
        // POSIX rename replaces an empty directory; other platforms refuse,
        // so remove the (still empty) destination and try once more.
        let retried = dest_exists && fs::remove_dir(dest).is_ok() && fs::rename(staging.path(), dest).is_ok();
        if !retried {
            return Err(ArchiveError::Io { action: "move the extracted files to", path: dest.into(), source: first });
        }
    }
    // The directory now lives at `dest`; stop the guard from deleting it.
    let _ = staging.keep();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

/// Checks that `dest` is an empty directory (true) or absent (false). A
/// symlink is refused even if it points at an empty directory: the rename
/// would replace the link, not fill its target, which is never what the
/// caller meant.
fn check_destination(dest: &Path) -> crate::Result<bool> {
    let invalid = |reason| ArchiveError::InvalidDestination { path: dest.into(), reason };
    match fs::symlink_metadata(dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(ArchiveError::Io { action: "inspect", path: dest.into(), source }),
        Ok(meta) if meta.file_type().is_symlink() => Err(invalid("it is a symbolic link")),
        Ok(meta) if !meta.is_dir() => Err(invalid("it exists and is not a directory")),
        Ok(_) => {
            let mut entries =
                fs::read_dir(dest).map_err(|source| ArchiveError::Io { action: "list", path: dest.into(), source })?;
            if entries.next().is_some() {
                Err(invalid("the directory is not empty"))
            } else {
                Ok(true)
            }
        }
    }
}

/// Where accepted entries go. The scanner has already validated the path,
/// created (through `dir`) every enclosing directory, and bounded `data`.
trait Sink {
    fn dir(&mut self, path: &BundlePath) -> crate::Result<()>;
    /// Consumes `data` and returns how many bytes it held.
    fn file(&mut self, path: &BundlePath, data: &mut dyn Read) -> crate::Result<u64>;
}

struct MemorySink {
    files: Vec<(BundlePath, Vec<u8>)>,
}

impl Sink for MemorySink {
    fn dir(&mut self, _path: &BundlePath) -> crate::Result<()> {
        Ok(())
    }

    fn file(&mut self, path: &BundlePath, data: &mut dyn Read) -> crate::Result<u64> {
        let mut bytes = Vec::new();
        // A read error is reported by the scanner, which knows its cause.
        let _ = data.read_to_end(&mut bytes);
        let len = bytes.len() as u64;
        self.files.push((path.clone(), bytes));
        Ok(len)
    }
}

const FILE_MODE: u32 = 0o644;
const DIR_MODE: u32 = 0o755;

struct DiskSink {
    root: PathBuf,
}

impl DiskSink {
    fn full_path(&self, path: &BundlePath) -> PathBuf {
        let mut full = self.root.clone();
        full.extend(path.segments());
        full
    }
}

impl Sink for DiskSink {
    fn dir(&mut self, path: &BundlePath) -> crate::Result<()> {
        let full = self.full_path(path);
        let mut builder = fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
        // `create` (not `create_all`) fails on anything already there, a
        // symlink included, instead of following it.
        builder.create(&full).map_err(|source| ArchiveError::Io {
            action: "create the directory",
            path: full.clone(),
            source,
        })?;
        set_mode(&full, DIR_MODE)
    }

    fn file(&mut self, path: &BundlePath, data: &mut dyn Read) -> crate::Result<u64> {
        let full = self.full_path(path);
        let mut options = fs::OpenOptions::new();
        // `create_new` is O_CREAT|O_EXCL: it never opens an existing file and
        // never follows a symlink.
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
        let mut file = options.open(&full).map_err(|source| ArchiveError::Io {
            action: "create the file",
            path: full.clone(),
            source,
        })?;
        let written = io::copy(data, &mut file).map_err(|source| ArchiveError::Io {
            action: "write",
            path: full.clone(),
            source,
        })?;
        set_mode(&full, FILE_MODE)?;
        Ok(written)
    }
}

/// Sets exact permission bits: creation modes are filtered by the process
/// umask, and the promise is 0644/0755 regardless.
fn set_mode(path: &Path, mode: u32) -> crate::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|source| ArchiveError::Io {
            action: "set permissions on",
            path: path.into(),
            source,
        })?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// Bounds the total decompressed stream, headers and padding included. File
/// limits alone are not enough: the tar reader buffers GNU long names and PAX
/// records in memory and skips unread data by reading it, so a small gzip
/// could otherwise make it chew through gigabytes without a single file.
struct CappedReader<'a, R> {
    inner: R,
    remaining: u64,
    exceeded: &'a Cell<bool>,
}

impl<R: Read> Read for CappedReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.remaining == 0 {
            // Only an error if there is really more data.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => {
                    self.exceeded.set(true);
                    Err(io::Error::other("decompressed archive exceeds its size limit"))
                }
            };
        }
        let max = buf.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        self.remaining = self.remaining.saturating_sub(n as u64);
        Ok(n)
    }
}

/// Remembers whether reading an entry's data failed, so the scanner can tell
/// a corrupt archive from a failing destination when a sink reports an error.
struct ReadTap<R> {
    inner: R,
    error: Option<io::Error>,
}

impl<R: Read> Read for ReadTap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            self.error.get_or_insert_with(|| io::Error::new(e.kind(), e.to_string()));
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
}

/// The shared scanner. Returns the regular files seen, with their sizes, in
/// archive order.
fn scan(tarball: impl Read, limits: &Limits, sink: &mut dyn Sink) -> crate::Result<Vec<(BundlePath, u64)>> {
    let budget = limits
        .max_total_bytes
        .saturating_add(limits.max_entries.saturating_add(1).saturating_mul(OVERHEAD_PER_ENTRY))
        .saturating_add(OVERHEAD_FIXED);
    let exceeded = Cell::new(false);
    let stream_error = |e: io::Error| {
        if exceeded.get() {
            ArchiveError::StreamTooLarge { limit: budget }
        } else {
            ArchiveError::Corrupt { reason: e.to_string() }
        }
    };
    let reader = CappedReader { inner: GzDecoder::new(tarball), remaining: budget, exceeded: &exceeded };
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries().map_err(stream_error)?;

    let mut seen: BTreeMap<String, Kind> = BTreeMap::new();
    let mut files = Vec::new();
    let mut count: u64 = 0;
    let mut total: u64 = 0;
    for entry in entries {
        let mut entry = entry.map_err(stream_error)?;
        count += 1;
        if count > limits.max_entries {
            return Err(ArchiveError::TooManyEntries { limit: limits.max_entries });
        }
        let raw_path = entry.path_bytes().into_owned();
        let label = entry_label(&raw_path);
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            // Archive-wide metadata (`git archive` writes the commit id
            // here). It names no file; ignoring it is safe because no path
            // or type in it is ever applied.
            continue;
        }
        let path = entry_path(&raw_path, &label, kind.is_dir())?;
        match kind {
            EntryType::Directory => {
                // `None` is the root itself (`./`), which always exists.
                if let Some(path) = path {
                    record(&mut seen, &path, Kind::Dir, sink)?;
                }
            }
            EntryType::Regular => {
                let Some(path) = path else {
                    return Err(ArchiveError::InvalidPath {
                        entry: label,
                        source: hearth_core::bundle_path::BundlePathError::Empty,
                    });
                };
                record(&mut seen, &path, Kind::File, sink)?;
                let room = Room { file: limits.max_file_bytes, total: limits.max_total_bytes, used: total };
                let written = read_file(&mut entry, &path, label, room, sink, &stream_error)?;
                total += written;
                files.push((path, written));
            }
            other => return Err(refusal(&entry, label, other)),
        }
    }
    Ok(files)
}

/// The caps a regular file is read under: its own, and the total's, of
/// which `used` is taken by the files before it.
#[derive(Clone, Copy)]
struct Room {
    file: u64,
    total: u64,
    used: u64,
}

/// Writes a regular file's entry to `sink` and returns its size, refusing
/// it past the caps of `room`: at once on what its header claims, and on
/// what is actually read (one byte past the cap, to see an overflow).
fn read_file<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    path: &BundlePath,
    label: String,
    room: Room,
    sink: &mut dyn Sink,
    stream_error: &dyn Fn(io::Error) -> ArchiveError,
) -> crate::Result<u64> {
    let remaining_total = room.total.saturating_sub(room.used);
    let refuse = |size: u64, label: String| {
        if size > room.file {
            Err(ArchiveError::FileTooLarge { entry: label, limit: room.file })
        } else if size > remaining_total {
            Err(ArchiveError::TotalTooLarge { entry: label, limit: room.total })
        } else {
            Ok(label)
        }
    };
    // Fail fast on what the header claims...
    let label = refuse(entry.size(), label)?;
    // ...and enforce on what is actually read, one byte past the cap to
    // detect overflow.
    let cap = room.file.min(remaining_total);
    let mut tap = ReadTap { inner: Read::take(&mut *entry, cap.saturating_add(1)), error: None };
    let written = sink.file(path, &mut tap);
    if let Some(e) = tap.error {
        return Err(stream_error(e));
    }
    let written = written?;
    refuse(written, label)?;
    Ok(written)
}

/// Why an entry that is neither a directory nor a regular file is refused:
/// links and special files name what they are (and a link its target).
fn refusal<R: Read>(entry: &tar::Entry<'_, R>, label: String, kind: EntryType) -> ArchiveError {
    let target = || entry_label(&entry.link_name_bytes().unwrap_or_default());
    match kind {
        EntryType::Symlink => ArchiveError::Symlink { entry: label, target: target() },
        EntryType::Link => ArchiveError::HardLink { entry: label, target: target() },
        EntryType::Char => ArchiveError::SpecialFile { entry: label, kind: "character device" },
        EntryType::Block => ArchiveError::SpecialFile { entry: label, kind: "block device" },
        EntryType::Fifo => ArchiveError::SpecialFile { entry: label, kind: "FIFO (named pipe)" },
        other => ArchiveError::UnsupportedType { entry: label, kind: describe(other) },
    }
}

/// Turns an entry name into a bundle path. `Ok(None)` is the root directory
/// (`.` or `./`). A leading `./` (as written by `tar -C dir .`) is accepted
/// and dropped, as is the trailing `/` of a directory; absolute paths and `..`
/// get their own errors because they are the classic escape attempts.
fn entry_path(raw: &[u8], label: &str, is_dir: bool) -> crate::Result<Option<BundlePath>> {
    let text = std::str::from_utf8(raw).map_err(|_| ArchiveError::NonUtf8Path { entry: label.to_owned() })?;
    if text.starts_with('/') || text.starts_with('\\') {
        return Err(ArchiveError::AbsolutePath { entry: label.to_owned() });
    }
    if text.split(['/', '\\']).any(|segment| segment == "..") {
        return Err(ArchiveError::ParentComponent { entry: label.to_owned() });
    }
    let mut rest = text;
    while let Some(stripped) = rest.strip_prefix("./") {
        rest = stripped;
    }
    if is_dir {
        rest = rest.strip_suffix('/').unwrap_or(rest);
    }
    if rest.is_empty() || rest == "." {
        return if is_dir {
            Ok(None)
        } else {
            Err(ArchiveError::InvalidPath {
                entry: label.to_owned(),
                source: hearth_core::bundle_path::BundlePathError::Empty,
            })
        };
    }
    BundlePath::new(rest).map(Some).map_err(|source| ArchiveError::InvalidPath { entry: label.to_owned(), source })
}

/// Records `path` as `kind`, creating missing parent directories through the
/// sink, and refuses duplicates and file/directory clashes. A directory listed
/// again (or implied by an earlier file) is fine.
fn record(seen: &mut BTreeMap<String, Kind>, path: &BundlePath, kind: Kind, sink: &mut dyn Sink) -> crate::Result<()> {
    let label = || entry_label(path.as_str().as_bytes());
    for dir in path.ancestors() {
        match seen.get(dir) {
            Some(Kind::Dir) => {}
            Some(Kind::File) => {
                return Err(ArchiveError::Conflict { entry: label(), other: entry_label(dir.as_bytes()) });
            }
            None => {
                let dir_path =
                    BundlePath::new(dir).map_err(|source| ArchiveError::InvalidPath { entry: label(), source })?;
                sink.dir(&dir_path)?;
                seen.insert(dir.to_owned(), Kind::Dir);
            }
        }
    }
    match (seen.get(path.as_str()), kind) {
        (None, _) => {
            if kind == Kind::Dir {
                sink.dir(path)?;
            }
            seen.insert(path.as_str().to_owned(), kind);
            Ok(())
        }
        (Some(Kind::Dir), Kind::Dir) => Ok(()),
        (Some(Kind::File), Kind::File) => Err(ArchiveError::Duplicate { entry: label() }),
        (Some(_), _) => {
            Err(ArchiveError::Conflict { entry: label(), other: "an earlier entry of the same name".into() })
        }
    }
}

/// A readable name for an entry type byte.
fn describe(kind: EntryType) -> String {
    let name = match kind {
        EntryType::Continuous => "contiguous file",
        EntryType::GNULongName => "GNU long name",
        EntryType::GNULongLink => "GNU long link",
        EntryType::GNUSparse => "GNU sparse file",
        EntryType::XHeader => "PAX header",
        EntryType::XGlobalHeader => "PAX global header",
        _ => "unknown",
    };
    let byte = kind.as_byte();
    if byte.is_ascii_graphic() {
        format!("'{}' ({name})", byte as char)
    } else {
        format!("{byte:#04x} ({name})")
    }
}
