//! The assets channel, runtime side: `<dir>/assets/` holds exactly the files
//! of the workspace's template, and `<dir>/assets.manifest.json` records the
//! manifest they were delivered from.
//!
//! A sync builds the complete new tree in `<dir>/.assets.staging-*` (reusing
//! local files whose sha256 already matches, downloading the rest and
//! verifying every byte), checks the whole against the desired digest, and
//! only then swaps it in. A reader of `<dir>/assets/` therefore sees the old
//! delivery or the new one, never a mix, and a failed sync changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use hearth_api::{AssetFile, AssetsManifest};
use hearth_client::Client;
use hearth_core::bundle_path::BundlePath;
use hearth_core::digest::{assets_digest, sha256_hex};
use hearth_core::WorkspaceId;

use crate::error::{Context, DeliveryError};
use crate::fsutil::{self, blocking, Staging};
use crate::{ASSETS_DIR, ASSETS_STATE};

/// Prefix of the directory a sync builds in, inside the agent directory.
pub(crate) const STAGING_PREFIX: &str = ".assets.staging-";
/// Prefix the previous tree is renamed to while the new one moves in.
pub(crate) const OLD_PREFIX: &str = ".assets.old-";

/// Reads `<dir>/assets.manifest.json` and checks that `<dir>/assets/` still
/// holds exactly those files with those hashes.
///
/// `Ok(None)`: nothing was ever delivered. `Err`: the record or the files do
/// not add up (the sentence says what); the caller reports no digest, so
/// Hearth asks for a new delivery.
pub(crate) fn load_verified(dir: &Path) -> Result<Option<AssetsManifest>, DeliveryError> {
    let state_path = dir.join(ASSETS_STATE);
    let text = match fs::read_to_string(&state_path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).context(|| format!("cannot read {}", state_path.display())),
    };
    let manifest: AssetsManifest =
        serde_json::from_str(&text).context(|| format!("{} is not a valid record", state_path.display()))?;
    if digest_of(&manifest.files) != manifest.digest {
        return Err(DeliveryError::Refused(format!(
            "{} records digest {} but its file list does not add up to it",
            state_path.display(),
            manifest.digest
        )));
    }
    let root = dir.join(ASSETS_DIR);
    let on_disk = fsutil::list_files(&root).context(|| format!("cannot list {}", root.display()))?;
    let expected: BTreeMap<&str, &str> = manifest.files.iter().map(|f| (f.path.as_str(), f.sha256.as_str())).collect();
    let present: BTreeSet<&str> = on_disk.iter().map(|(relative, _)| relative.as_str()).collect();
    if let Some(extra) = present.iter().find(|p| !expected.contains_key(*p)) {
        return Err(DeliveryError::Refused(format!(
            "{} holds {extra}, which the delivered manifest does not list",
            root.display()
        )));
    }
    if let Some(missing) = expected.keys().find(|p| !present.contains(*p)) {
        return Err(DeliveryError::Refused(format!("{missing} is missing from {}", root.display())));
    }
    for (relative, full) in &on_disk {
        let bytes = fs::read(full).context(|| format!("cannot read {}", full.display()))?;
        let actual = sha256_hex(&bytes);
        let want = expected.get(relative.as_str()).copied().unwrap_or_default();
        if !actual.eq_ignore_ascii_case(want) {
            return Err(DeliveryError::Refused(format!(
                "{} has sha256 {actual}, but {want} was delivered",
                full.display()
            )));
        }
    }
    Ok(Some(manifest))
}

/// A cheap per-heartbeat check that the delivered files are all still
/// there, with their sizes; hashing every file (models can be large) is left
/// to start-up. Returns the first discrepancy.
pub(crate) fn quick_check(dir: &Path, manifest: &AssetsManifest) -> Option<String> {
    let root = dir.join(ASSETS_DIR);
    for file in &manifest.files {
        let Ok(path) = BundlePath::new(file.path.clone()) else {
            return Some(format!("the record lists an invalid path {:?}", file.path));
        };
        let full = join(&root, &path);
        match fs::symlink_metadata(&full) {
            Ok(meta) if meta.is_file() && i64::try_from(meta.len()).ok() == Some(file.size) => {}
            Ok(_) => return Some(format!("{} is no longer the delivered file", full.display())),
            Err(e) => return Some(format!("{}: {e}", full.display())),
        }
    }
    None
}

/// Brings `<dir>/assets/` to the manifest whose digest is `desired` and
/// returns that manifest (now also recorded in `<dir>/assets.manifest.json`).
pub(crate) async fn sync(
    client: &Client,
    workspace: WorkspaceId,
    dir: &Path,
    desired: &str,
) -> Result<AssetsManifest, DeliveryError> {
    let manifest = client.assets_manifest(workspace).await.context(|| "cannot fetch the assets manifest".into())?;
    let files = validate(&manifest, desired)?;

    let staging_path = dir.join(format!("{STAGING_PREFIX}{}", fsutil::random_suffix()));
    fs::create_dir(&staging_path).context(|| format!("cannot create {}", staging_path.display()))?;
    let staging = Staging::new(staging_path, workspace);
    let current = dir.join(ASSETS_DIR);
    let mut downloaded = 0usize;
    for (path, file) in &files {
        let local = join(&current, path);
        let want = file.sha256.clone();
        let reused = blocking(move || Ok(read_if_matches(&local, &want))).await?;
        let bytes = match reused {
            Some(bytes) => bytes,
            None => {
                let bytes = client
                    .asset_bytes(workspace, path.as_str())
                    .await
                    .context(|| format!("cannot download asset {path}"))?;
                let actual = sha256_hex(&bytes);
                if !actual.eq_ignore_ascii_case(&file.sha256) {
                    return Err(DeliveryError::Refused(format!(
                        "asset {path}: the downloaded bytes have sha256 {actual}, but the manifest says {}",
                        file.sha256
                    )));
                }
                downloaded += 1;
                bytes
            }
        };
        let target = join(staging.path(), path);
        blocking(move || write_new(&target, &bytes)).await?;
    }

    let root = dir.to_path_buf();
    let record = serde_json::to_vec_pretty(&manifest).context(|| "cannot encode the assets record".into())?;
    let old = dir.join(format!("{OLD_PREFIX}{}", fsutil::random_suffix()));
    // The staging guard moves into the closure: if the swap fails there, it
    // is dropped there and the half-built tree goes with it.
    let moved_away = blocking(move || {
        let target = root.join(ASSETS_DIR);
        let moved = fsutil::replace_dir(staging.path(), &target, &old)
            .context(|| format!("cannot move the new assets into {}", target.display()))?;
        staging.keep();
        // Recorded only after the swap: a crash in between leaves an old
        // record, which start-up verification rejects, so the next run
        // redelivers (reusing every file that already matches).
        let state = root.join(ASSETS_STATE);
        fsutil::write_atomically(&state, &record, fsutil::FILE_MODE)
            .context(|| format!("cannot record the delivered assets in {}", state.display()))?;
        Ok(moved)
    })
    .await?;
    if let Some(old) = moved_away {
        if let Err(error) = fsutil::remove_path(&old) {
            tracing::warn!(workspace_id = %workspace, path = %old.display(), %error,
                "could not delete the previous assets; the agent's next start removes them");
        }
    }
    tracing::info!(workspace_id = %workspace, digest = %manifest.digest, files = files.len(), downloaded,
        "assets delivered");
    Ok(manifest)
}

/// Checks a manifest from the server before anything is written: valid,
/// unique paths; hashes that look like hashes; and a file list that adds up
/// to the digest the heartbeat asked for (a template changed in between is
/// picked up at the next heartbeat instead).
fn validate<'a>(
    manifest: &'a AssetsManifest,
    desired: &str,
) -> Result<Vec<(BundlePath, &'a AssetFile)>, DeliveryError> {
    let mut files = Vec::with_capacity(manifest.files.len());
    let mut seen = BTreeSet::new();
    for file in &manifest.files {
        let path = BundlePath::new(file.path.clone())
            .map_err(|e| DeliveryError::Refused(format!("the assets manifest is unusable: {e}")))?;
        if !is_sha256_hex(&file.sha256) {
            return Err(DeliveryError::Refused(format!(
                "the assets manifest gives asset {path} the sha256 {:?}, which is not a sha256",
                file.sha256
            )));
        }
        if !seen.insert(path.clone()) {
            return Err(DeliveryError::Refused(format!("the assets manifest lists {path} twice")));
        }
        files.push((path, file));
    }
    let computed = digest_of(&manifest.files);
    if computed != desired || manifest.digest != desired {
        return Err(DeliveryError::Refused(format!(
            "the assets manifest (digest {}, files adding up to {computed}) is not the desired {desired}; \
             the template probably changed, so the next heartbeat brings the new digest",
            manifest.digest
        )));
    }
    Ok(files)
}

fn digest_of(files: &[AssetFile]) -> String {
    let pairs: Vec<(&str, &str)> = files.iter().map(|f| (f.path.as_str(), f.sha256.as_str())).collect();
    assets_digest(&pairs)
}

pub(crate) fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `root` joined with a validated bundle path, segment by segment.
fn join(root: &Path, path: &BundlePath) -> PathBuf {
    let mut full = root.to_path_buf();
    full.extend(path.segments());
    full
}

/// The local copy's bytes when it is a regular file with the wanted hash.
/// Anything else (missing, a link, unreadable, different) means "download
/// it", so errors here are not failures.
fn read_if_matches(path: &Path, sha256: &str) -> Option<Vec<u8>> {
    let meta = fs::symlink_metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let bytes = fs::read(path).ok()?;
    sha256_hex(&bytes).eq_ignore_ascii_case(sha256).then_some(bytes)
}

/// Writes a file into the staging tree, creating its directories.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), DeliveryError> {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        fsutil::create_dirs(parent).context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut file =
        fsutil::create_new_file(path, fsutil::FILE_MODE).context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes).context(|| format!("cannot write {}", path.display()))?;
    file.sync_all().context(|| format!("cannot flush {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(files: &[(&str, &[u8])]) -> AssetsManifest {
        let files: Vec<AssetFile> = files
            .iter()
            .map(|(p, b)| AssetFile { path: (*p).into(), sha256: sha256_hex(b), size: b.len() as i64 })
            .collect();
        AssetsManifest { digest: digest_of(&files), files }
    }

    fn deliver(dir: &Path, files: &[(&str, &[u8])]) -> AssetsManifest {
        let m = manifest(files);
        for (p, b) in files {
            let full = dir.join(ASSETS_DIR).join(p);
            fs::create_dir_all(full.parent().unwrap()).unwrap();
            fs::write(full, b).unwrap();
        }
        fs::write(dir.join(ASSETS_STATE), serde_json::to_vec(&m).unwrap()).unwrap();
        m
    }

    #[test]
    fn a_delivery_that_is_intact_verifies() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_verified(dir.path()).unwrap(), None, "nothing delivered yet");
        let m = deliver(dir.path(), &[("config.yaml", b"name: a\n"), ("prompts/system.md", b"hi\n")]);
        assert_eq!(load_verified(dir.path()).unwrap(), Some(m.clone()));
        assert_eq!(quick_check(dir.path(), &m), None);
    }

    #[test]
    fn changed_missing_or_extra_files_fail_verification() {
        let dir = tempfile::tempdir().unwrap();
        let m = deliver(dir.path(), &[("config.yaml", b"name: a\n"), ("prompts/system.md", b"hi\n")]);
        fs::write(dir.path().join("assets/config.yaml"), "name: b\n").unwrap();
        let err = load_verified(dir.path()).unwrap_err().to_string();
        assert!(err.contains("config.yaml has sha256"), "{err}");

        deliver(dir.path(), &[("config.yaml", b"name: a\n"), ("prompts/system.md", b"hi\n")]);
        fs::write(dir.path().join("assets/stray.txt"), "x").unwrap();
        assert!(load_verified(dir.path()).unwrap_err().to_string().contains("stray.txt"));
        fs::remove_file(dir.path().join("assets/stray.txt")).unwrap();

        fs::remove_file(dir.path().join("assets/prompts/system.md")).unwrap();
        assert!(load_verified(dir.path()).unwrap_err().to_string().contains("prompts/system.md is missing"));
        assert!(quick_check(dir.path(), &m).is_some());

        fs::write(dir.path().join(ASSETS_STATE), "{not json").unwrap();
        assert!(load_verified(dir.path()).unwrap_err().to_string().contains("not a valid record"));
    }

    #[test]
    fn manifests_are_validated_before_anything_is_written() {
        let good = manifest(&[("config.yaml", b"a")]);
        assert!(validate(&good, &good.digest).is_ok());
        let err = validate(&good, "sha256:other").unwrap_err().to_string();
        assert!(err.contains("is not the desired sha256:other"), "{err}");

        let mut evil = good.clone();
        evil.files[0].path = "../escape".into();
        evil.digest = digest_of(&evil.files);
        assert!(validate(&evil, &evil.digest).unwrap_err().to_string().contains(".."));

        let mut bad_hash = good.clone();
        bad_hash.files[0].sha256 = "zz".into();
        bad_hash.digest = digest_of(&bad_hash.files);
        assert!(validate(&bad_hash, &bad_hash.digest).unwrap_err().to_string().contains("not a sha256"));

        let mut twice = good.clone();
        twice.files.push(twice.files[0].clone());
        twice.digest = digest_of(&twice.files);
        assert!(validate(&twice, &twice.digest).unwrap_err().to_string().contains("twice"));
    }
}
