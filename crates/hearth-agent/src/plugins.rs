//! Plugins, runtime side: what `<dir>/plugins/*/` holds, and installing a
//! plugin from its tarball.
//!
//! An install never touches `<dir>/plugins/<name>/` until the new version
//! has been unpacked safely (`hearth_archive::unpack`: no absolute paths, no
//! `..`, no links or device files, size caps) into a staging directory next
//! to `plugins/` and its content hash has been checked against the hash
//! Hearth asked for. Only then is it renamed into place, so a plugin is
//! either the old version, the new one, or absent — never half of one.

use std::fs;
use std::io;
use std::path::Path;

use hearth_archive::Limits;
use hearth_core::digest::plugin_content_hash;
use hearth_core::manifest::is_valid_plugin_name;
use hearth_core::WorkspaceId;

use crate::error::{Context, DeliveryError};
use crate::fsutil::{self, Staging};
use crate::PLUGINS_DIR;

/// Prefix of the directory a plugin is unpacked into, inside the agent
/// directory (next to `plugins/`, so the final rename stays on one
/// filesystem). `hearth_archive::unpack` builds its own temporary directory
/// next to that one, named `.` + this prefix + `….unpack-…`.
pub(crate) const STAGING_PREFIX: &str = ".plugin-staging-";
/// Prefix the previous version is renamed to while the new one moves in.
pub(crate) const OLD_PREFIX: &str = ".plugin-old-";

/// One directory under `<dir>/plugins/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LocalPlugin {
    pub(crate) name: String,
    /// The content-manifest hash, or why it could not be computed (the
    /// plugin is then not reported as installed, and reinstalled if it is
    /// desired).
    pub(crate) sha256: Result<String, String>,
}

/// Every plugin directory under `<dir>/plugins/`, sorted by name. Entries
/// whose names are not plugin names (hidden files, editor leftovers) and
/// entries that are not directories are not plugins and are skipped.
pub(crate) fn scan(dir: &Path) -> io::Result<Vec<LocalPlugin>> {
    let root = dir.join(PLUGINS_DIR);
    let entries = match fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut plugins = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
        if !is_valid_plugin_name(&name) || !entry.file_type()?.is_dir() {
            continue;
        }
        let sha256 = content_hash(&entry.path()).map_err(|e| e.to_string());
        plugins.push(LocalPlugin { name, sha256 });
    }
    plugins.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(plugins)
}

/// The SDK content-manifest hash of the plugin tree at `root`: every
/// regular file, the top-level `plugin.yaml` excluded (it carries the hash
/// itself), exactly as `hearth_core::digest::plugin_content_hash` defines.
pub(crate) fn content_hash(root: &Path) -> io::Result<String> {
    let mut files = Vec::new();
    for (relative, full) in fsutil::list_files(root)? {
        let bytes = fs::read(&full)?;
        files.push((relative, bytes));
    }
    Ok(plugin_content_hash(&files))
}

/// What an install needs besides the tarball.
pub(crate) struct Install<'a> {
    pub(crate) workspace: WorkspaceId,
    pub(crate) dir: &'a Path,
    pub(crate) name: &'a str,
    /// The hash the heartbeat's `desired` asked for.
    pub(crate) expected: &'a str,
    /// The `X-Plugin-Sha256` header of the download, when sent.
    pub(crate) served: Option<&'a str>,
    pub(crate) limits: &'a Limits,
}

/// Unpacks, verifies and moves a plugin into `<dir>/plugins/<name>/`.
/// Blocking; every error names the plugin and leaves no trace on disk.
pub(crate) fn install(install: &Install<'_>, tarball: &[u8]) -> Result<(), DeliveryError> {
    let Install { workspace, dir, name, expected, served, limits } = *install;
    // The name becomes a directory name: refuse anything that is not a
    // plugin name before it is used in a path, whatever the server sent.
    if !is_valid_plugin_name(name) {
        return Err(DeliveryError::Refused(format!(
            "plugin {name:?}: not a valid plugin name, so it is not installed"
        )));
    }
    if let Some(served) = served {
        if !served.eq_ignore_ascii_case(expected) {
            return Err(DeliveryError::Refused(format!(
                "plugin {name}: the server sent content hash {served}, but the expected hash is {expected}"
            )));
        }
    }
    let staging = Staging::new(dir.join(format!("{STAGING_PREFIX}{name}-{}", fsutil::random_suffix())), workspace);
    hearth_archive::unpack(tarball, staging.path(), limits)
        .map_err(|e| DeliveryError::Refused(format!("plugin {name}: the archive was refused: {e}")))?;
    let actual = content_hash(staging.path())
        .context(|| format!("plugin {name}: cannot hash the unpacked files in {}", staging.path().display()))?;
    if !actual.eq_ignore_ascii_case(expected) {
        return Err(DeliveryError::Refused(format!(
            "plugin {name}: content hash {actual} does not match the expected {expected}"
        )));
    }

    let plugins = dir.join(PLUGINS_DIR);
    fsutil::create_dirs(&plugins).context(|| format!("plugin {name}: cannot create {}", plugins.display()))?;
    let target = plugins.join(name);
    let old = dir.join(format!("{OLD_PREFIX}{name}-{}", fsutil::random_suffix()));
    let moved_away = fsutil::replace_dir(staging.path(), &target, &old)
        .context(|| format!("plugin {name}: cannot move it into {}", target.display()))?;
    staging.keep();
    if let Some(old) = moved_away {
        remove_old(workspace, &old);
    }
    Ok(())
}

fn remove_old(workspace: WorkspaceId, old: &Path) {
    if let Err(error) = fsutil::remove_path(old) {
        tracing::warn!(workspace_id = %workspace, path = %old.display(), %error,
            "could not delete a replaced plugin version; the agent's next start removes it");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_archive::BundlePath;
    use std::io::Write;

    const README: &[u8] = b"# Demo\n";
    const MAIN: &[u8] = b"print(\"hi\")\n";

    fn files() -> Vec<(BundlePath, Vec<u8>)> {
        vec![
            (BundlePath::new("plugin.yaml").unwrap(), b"name: demo\nversion: 1.0.0\n".to_vec()),
            (BundlePath::new("README.md").unwrap(), README.to_vec()),
            (BundlePath::new("main.py").unwrap(), MAIN.to_vec()),
        ]
    }

    /// The SDK vector from hearth-core for these files.
    const DEMO_HASH: &str = "9f14d6c05e90d8c0bfa6b88f9ae5f7ad5663e67e9019e54d0d1a1953de6bd99f";

    fn run(
        dir: &Path,
        tarball: &[u8],
        expected: &str,
        served: Option<&str>,
        limits: &Limits,
    ) -> Result<(), DeliveryError> {
        let request = Install { workspace: WorkspaceId::new_random(), dir, name: "demo", expected, served, limits };
        install(&request, tarball)
    }

    /// Only the expected entries: no staging, unpack or old directories.
    fn assert_clean(dir: &Path, expected: &[&str]) {
        let mut names: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, expected);
    }

    #[test]
    fn a_good_tarball_installs_replaces_and_hashes_like_the_sdk() {
        let dir = tempfile::tempdir().unwrap();
        let tarball = hearth_archive::pack(&files()).unwrap();
        run(dir.path(), &tarball, DEMO_HASH, Some(DEMO_HASH), &Limits::default()).unwrap();
        assert_eq!(fs::read(dir.path().join("plugins/demo/README.md")).unwrap(), README);
        let scanned = scan(dir.path()).unwrap();
        assert_eq!(scanned, [LocalPlugin { name: "demo".into(), sha256: Ok(DEMO_HASH.into()) }]);

        // A new version replaces the old one completely.
        let mut v2 = files();
        v2.pop();
        let tarball = hearth_archive::pack(&v2).unwrap();
        let v2_hash = {
            let list: Vec<(&str, &[u8])> = v2.iter().map(|(p, b)| (p.as_str(), b.as_slice())).collect();
            plugin_content_hash(&list)
        };
        run(dir.path(), &tarball, &v2_hash, None, &Limits::default()).unwrap();
        assert!(!dir.path().join("plugins/demo/main.py").exists());
        assert_clean(dir.path(), &["plugins"]);
    }

    #[test]
    fn a_content_hash_mismatch_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut tampered = files();
        tampered[2].1 = b"print(\"pwned\")\n".to_vec();
        let tarball = hearth_archive::pack(&tampered).unwrap();
        let err = run(dir.path(), &tarball, DEMO_HASH, Some(DEMO_HASH), &Limits::default()).unwrap_err();
        let message = format!("{err:#}");
        assert!(message.starts_with("plugin demo: content hash "), "{message}");
        assert!(message.ends_with(&format!("does not match the expected {DEMO_HASH}")), "{message}");
        assert_clean(dir.path(), &[]);

        let tarball = hearth_archive::pack(&files()).unwrap();
        let err = run(dir.path(), &tarball, DEMO_HASH, Some(&"0".repeat(64)), &Limits::default()).unwrap_err();
        assert!(err.to_string().contains("the server sent content hash 000"), "{err}");
        assert_clean(dir.path(), &[]);
    }

    #[test]
    fn a_failed_update_keeps_the_installed_version() {
        let dir = tempfile::tempdir().unwrap();
        let tarball = hearth_archive::pack(&files()).unwrap();
        run(dir.path(), &tarball, DEMO_HASH, None, &Limits::default()).unwrap();
        let err = run(dir.path(), &tarball, &"1".repeat(64), None, &Limits::default()).unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
        assert_eq!(scan(dir.path()).unwrap()[0].sha256, Ok(DEMO_HASH.into()));
        assert_clean(dir.path(), &["plugins"]);
    }

    /// A raw tar entry with any name, type and link target, gzipped.
    fn evil_tarball(name: &[u8], kind: tar::EntryType, link: Option<&str>, data: &[u8]) -> Vec<u8> {
        let mut header = tar::Header::new_gnu();
        {
            // Write the name bytes directly: the tar crate's setters refuse
            // `..` and absolute paths, which is exactly what is under test.
            let gnu = header.as_gnu_mut().unwrap();
            gnu.name[..name.len()].copy_from_slice(name);
        }
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        if let Some(link) = link {
            header.set_link_name(link).unwrap();
        }
        header.set_cksum();
        let mut builder = tar::Builder::new(Vec::new());
        builder.append(&header, data).unwrap();
        let tar = builder.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&tar).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn evil_archives_are_refused_with_a_clear_error_and_leave_nothing() {
        let cases: Vec<(&str, Vec<u8>, Limits, &str)> = vec![
            (
                "tar-slip",
                evil_tarball(b"../../escape.txt", tar::EntryType::Regular, None, b"x"),
                Limits::default(),
                "'..'",
            ),
            (
                "absolute path",
                evil_tarball(b"/etc/cron.d/evil", tar::EntryType::Regular, None, b"x"),
                Limits::default(),
                "absolute path",
            ),
            (
                "symlink",
                evil_tarball(b"link", tar::EntryType::Symlink, Some("/etc/passwd"), b""),
                Limits::default(),
                "symbolic link",
            ),
            (
                "hard link",
                evil_tarball(b"hard", tar::EntryType::Link, Some("/etc/passwd"), b""),
                Limits::default(),
                "hard link",
            ),
            ("device", evil_tarball(b"dev", tar::EntryType::Char, None, b""), Limits::default(), "character device"),
            (
                "huge file",
                hearth_archive::pack(&files()).unwrap(),
                Limits { max_file_bytes: 4, ..Limits::default() },
                "larger than the limit of 4 bytes",
            ),
        ];
        for (what, tarball, limits, needle) in cases {
            let dir = tempfile::tempdir().unwrap();
            let err = run(dir.path(), &tarball, DEMO_HASH, None, &limits).unwrap_err();
            let message = format!("{err:#}");
            assert!(message.starts_with("plugin demo: the archive was refused"), "{what}: {message}");
            assert!(message.contains(needle), "{what}: {message}");
            assert_clean(dir.path(), &[]);
            assert!(!dir.path().parent().unwrap().join("escape.txt").exists(), "{what}");
        }
    }

    #[test]
    fn unusable_names_and_trees_are_not_plugins() {
        let dir = tempfile::tempdir().unwrap();
        let tarball = hearth_archive::pack(&files()).unwrap();
        let request = Install {
            workspace: WorkspaceId::new_random(),
            dir: dir.path(),
            name: "../evil",
            expected: DEMO_HASH,
            served: None,
            limits: &Limits::default(),
        };
        assert!(install(&request, &tarball).unwrap_err().to_string().contains("not a valid plugin name"));
        fs::create_dir_all(dir.path().join("plugins/.hidden")).unwrap();
        fs::write(dir.path().join("plugins/notes.txt"), "x").unwrap();
        assert_eq!(scan(dir.path()).unwrap(), []);
        #[cfg(unix)]
        {
            fs::create_dir_all(dir.path().join("plugins/linked")).unwrap();
            std::os::unix::fs::symlink("/etc/passwd", dir.path().join("plugins/linked/x")).unwrap();
            let scanned = scan(dir.path()).unwrap();
            assert_eq!(scanned[0].name, "linked");
            assert!(scanned[0].sha256.as_ref().unwrap_err().contains("symbolic link"));
        }
    }
}
