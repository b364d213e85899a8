//! Gzip tarballs for template and plugin bundles.
//!
//! Hearth serves plugins as tarballs and accepts them as uploads, and the
//! reference runtime extracts them. Both directions are security boundaries:
//!
//! - [`pack`] is deterministic (sorted entries, fixed modes, zero times and
//!   owners), so the same files always give the same bytes and a tarball can be
//!   cached, compared and content-addressed.
//! - [`unpack`] and [`read_files`] trust nothing in the archive: no absolute
//!   paths, no `..`, no links or device nodes, no modes from the headers, and
//!   hard [`Limits`] on entry count and on the bytes actually decompressed, so
//!   a hostile upload can neither escape the destination nor exhaust memory or
//!   disk. Paths must be valid [`BundlePath`]s, the same rule every other
//!   bundle file obeys.

mod error;
mod pack;
mod unpack;

pub use error::ArchiveError;
pub use hearth_core::bundle_path::BundlePath;
pub use pack::pack;
pub use unpack::{read_files, read_files_from, unpack};

/// Caps applied while reading an archive. Every cap is checked against what is
/// actually read, not only against what headers claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest single file, in bytes.
    pub max_file_bytes: u64,
    /// Largest sum of all file sizes, in bytes.
    pub max_total_bytes: u64,
    /// Most entries (files, directories and any other header) in the archive.
    pub max_entries: u64,
}

impl Default for Limits {
    /// Generous for prompts, scripts and small models, small enough that a
    /// hostile upload cannot hurt: 16 MiB per file, 64 MiB in total, 10 000
    /// entries.
    fn default() -> Self {
        Limits { max_file_bytes: 16 << 20, max_total_bytes: 64 << 20, max_entries: 10_000 }
    }
}

/// Result alias for this crate.
pub type Result<T, E = ArchiveError> = std::result::Result<T, E>;
