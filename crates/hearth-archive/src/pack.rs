//! Deterministic tarball writer.

use std::collections::BTreeSet;
use std::io;

use flate2::{Compression, GzBuilder};
use hearth_core::bundle_path::BundlePath;
use tar::{EntryType, Header};

use crate::error::{entry_label, ArchiveError};

/// Gzip header OS byte for "unknown", so the bytes do not depend on the
/// machine that packed them.
const GZIP_OS_UNKNOWN: u8 = 255;

/// Packs `files` into a gzip tarball whose entries are relative to the bundle
/// root.
///
/// The output is a pure function of the input set: entries are sorted by path
/// (input order does not matter); every enclosing directory gets its own entry
/// (mode 0755) right before the first file inside it; files are mode 0644; all
/// times, owners and owner names are zero or empty; the gzip header carries no
/// name, no time and an "unknown" OS. Paths longer than the classic 100-byte
/// tar field use the GNU long-name extension, which every common reader
/// (GNU tar, bsdtar, Python's `tarfile`) understands.
///
/// Refuses a path listed twice and a path used both as a file and as a
/// directory (`a` and `a/b`), since no extraction could honour both.
pub fn pack(files: &[(BundlePath, Vec<u8>)]) -> crate::Result<Vec<u8>> {
    let mut sorted: Vec<&(BundlePath, Vec<u8>)> = files.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));

    let file_paths: BTreeSet<&str> = sorted.iter().map(|(path, _)| path.as_str()).collect();
    if file_paths.len() != sorted.len() {
        let duplicate = sorted.windows(2).find(|pair| pair[0].0 == pair[1].0).map(|pair| pair[0].0.as_str());
        return Err(ArchiveError::Duplicate { entry: entry_label(duplicate.unwrap_or_default().as_bytes()) });
    }
    for (path, _) in &sorted {
        if let Some(dir) = path.ancestors().find(|dir| file_paths.contains(dir)) {
            return Err(ArchiveError::Conflict {
                entry: entry_label(path.as_str().as_bytes()),
                other: entry_label(dir.as_bytes()),
            });
        }
    }

    let gzip = GzBuilder::new().mtime(0).operating_system(GZIP_OS_UNKNOWN).write(Vec::new(), Compression::default());
    let mut builder = tar::Builder::new(gzip);
    let mut emitted_dirs: BTreeSet<&str> = BTreeSet::new();
    for (path, data) in sorted {
        for dir in path.ancestors() {
            if emitted_dirs.insert(dir) {
                let mut header = header(EntryType::Directory, 0o755, 0);
                builder.append_data(&mut header, format!("{dir}/"), io::empty()).map_err(|e| write_error(dir, e))?;
            }
        }
        let mut header = header(EntryType::Regular, 0o644, data.len() as u64);
        builder.append_data(&mut header, path.as_str(), data.as_slice()).map_err(|e| write_error(path.as_str(), e))?;
    }
    let gzip = builder.into_inner().map_err(|e| write_error("the end of the archive", e))?;
    gzip.finish().map_err(|e| write_error("the gzip trailer", e))
}

/// A GNU header with everything that could vary between machines zeroed.
fn header(kind: EntryType, mode: u32, size: u64) -> Header {
    let mut header = Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header
}

/// Writing to memory does not fail in practice; the tar writer can still
/// refuse a path it cannot encode, which is reported against the entry.
fn write_error(what: &str, source: io::Error) -> ArchiveError {
    ArchiveError::Write { what: what.to_owned(), source }
}
