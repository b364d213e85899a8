//! Templates and plugins: upload, validation, listing, and what runtimes
//! fetch (assets, plugin tarballs, install reports).

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hearth_api::{ErrorCode, FileContent};
use hearth_core::bundle_path::BundlePath;
use hearth_core::digest::sha256_hex;
use hearth_store::NewFile;

use crate::error::{ApiError, ApiResult};

/// Most files one template or plugin may hold.
pub const MAX_FILES: usize = 10_000;

/// Decodes an upload's `{"path": content}` map, refusing unsafe paths and
/// bad base64 with a message naming the file.
pub fn decode_files(files: BTreeMap<String, FileContent>) -> ApiResult<Vec<(BundlePath, Vec<u8>)>> {
    if files.is_empty() {
        return Err(ApiError::bad_request(ErrorCode::InvalidField, "files must not be empty"));
    }
    if files.len() > MAX_FILES {
        return Err(ApiError::bad_request(ErrorCode::InvalidField, format!("at most {MAX_FILES} files are accepted")));
    }
    files
        .into_iter()
        .map(|(path, content)| {
            let path = BundlePath::new(path.clone()).map_err(|e| {
                ApiError::bad_request(ErrorCode::InvalidPath, e.to_string()).field(format!("files.{path}"))
            })?;
            let bytes = match content {
                FileContent::Text(text) => text.into_bytes(),
                FileContent::Binary { base64 } => STANDARD.decode(base64.trim()).map_err(|e| {
                    ApiError::bad_request(ErrorCode::InvalidBase64, format!("{path}: content is not valid base64: {e}"))
                })?,
            };
            Ok((path, bytes))
        })
        .collect()
}

/// Content-addressed files for the store.
pub fn to_new_files(files: &[(BundlePath, Vec<u8>)]) -> Vec<NewFile> {
    files
        .iter()
        .map(|(path, bytes)| NewFile { path: path.to_string(), sha256: sha256_hex(bytes), content: bytes.clone() })
        .collect()
}
