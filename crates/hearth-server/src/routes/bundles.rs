//! Templates and plugins: what their uploads share (decoded in `uploads.rs`).

use hearth_core::bundle_path::BundlePath;
use hearth_core::digest::sha256_hex;
use hearth_store::NewFile;

/// Most files one template or plugin may hold.
pub const MAX_FILES: usize = 10_000;

/// Content-addressed files for the store (each file's bytes are moved, not
/// copied: an upload holds one copy of its files).
pub fn to_new_files(files: Vec<(BundlePath, Vec<u8>)>) -> Vec<NewFile> {
    files
        .into_iter()
        .map(|(path, bytes)| NewFile { path: path.to_string(), sha256: sha256_hex(&bytes), content: bytes })
        .collect()
}
