//! The fuzz targets' bodies. Each takes arbitrary bytes and must never
//! panic, whatever it is given; where a property holds for every input
//! that is accepted (a round trip, a stable hash), it is asserted. The
//! cargo-fuzz targets in `fuzz/` call these; `tests/corpus.rs` replays the
//! committed corpus through them on stable, in the normal test suite.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a broken property must crash the fuzzer

use hearth_archive::{BundlePath, Limits};
use hearth_core::digest::plugin_content_hash;
use hearth_core::manifest::{plugin_yaml_with_sha256, PluginManifest, TemplateConfig};

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// Every target, by the name of its corpus directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("config_yaml", config_yaml),
    ("plugin_yaml", plugin_yaml),
    ("bundle_path", bundle_path),
    ("tar_extract", tar_extract),
    ("content_hash", content_hash),
    ("heartbeat_json", heartbeat_json),
];

/// `config.yaml` parsing: errors, never panics.
pub fn config_yaml(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        // Accepted or refused with a message: both are fine here.
        drop(TemplateConfig::parse(text));
    }
}

/// `plugin.yaml` parsing, and the SDK hash line Hearth writes into it: the
/// edited file still parses to the same manifest and carries the hash.
pub fn plugin_yaml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(manifest) = PluginManifest::parse(text) else { return };
    let hash = "0".repeat(64);
    let edited = plugin_yaml_with_sha256(text, &hash);
    assert!(edited.contains(&hash), "the hash line is written");
    let again = PluginManifest::parse(&edited).expect("an edited valid manifest stays valid");
    assert_eq!(again.name, manifest.name);
    assert_eq!(again.version, manifest.version);
}

/// Bundle paths: an accepted path is relative, normalised and safe.
pub fn bundle_path(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(path) = BundlePath::new(text) {
        let path = path.as_str();
        assert!(!path.starts_with('/') && !path.contains('\0'), "{path:?}");
        assert!(path.split('/').all(|segment| !segment.is_empty() && segment != ".." && segment != "."), "{path:?}");
    }
}

/// Tar extraction under small limits; what is accepted packs back to the
/// same files.
pub fn tar_extract(data: &[u8]) {
    let limits = Limits { max_file_bytes: 1 << 16, max_total_bytes: 1 << 18, max_entries: 256 };
    let Ok(files) = hearth_archive::read_files(data, &limits) else { return };
    let packed = hearth_archive::pack(&files).expect("accepted files pack");
    let again = hearth_archive::read_files(&packed, &limits).expect("a packed archive reads back");
    assert_eq!(again, files);
}

/// The SDK content hash over files cut from the input: deterministic and
/// independent of the order files are given in.
pub fn content_hash(data: &[u8]) {
    let files: Vec<(String, &[u8])> = data
        .split(|b| *b == 0)
        .filter_map(|chunk| {
            let cut = chunk.iter().position(|b| *b == b'=')?;
            let path = std::str::from_utf8(&chunk[..cut]).ok()?;
            Some((path.to_owned(), &chunk[cut + 1..]))
        })
        .collect();
    let forward = plugin_content_hash(&files);
    let mut reversed = files.clone();
    reversed.reverse();
    assert_eq!(forward, plugin_content_hash(&reversed), "order-independent");
    assert_eq!(forward.len(), 64);
}

/// A heartbeat body: parsed and validated the server's way, never a panic.
pub fn heartbeat_json(data: &[u8]) {
    let Ok(request) = serde_json::from_slice::<hearth_api::HeartbeatRequest>(data) else { return };
    if let Ok(heartbeat) = hearth_core::Heartbeat::validate(request.into()) {
        assert!((0.0..=1.0).contains(&heartbeat.error_rate));
        assert!(heartbeat.active_tasks.is_none_or(|n| n >= 0));
    }
}
