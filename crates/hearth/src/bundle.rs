//! Template and plugin directories as upload bodies: every regular file
//! under the directory, keyed by its `/`-separated relative path, sent as
//! text when it is UTF-8 and as `{"base64": …}` otherwise
//! ([`hearth_api::FileContent::files`]).
//!
//! Dot-files and dot-directories (`.git`, `.DS_Store`) are skipped: they are
//! never part of what an agent should receive. Symbolic links are refused
//! rather than followed, so what is pushed is exactly what the directory
//! holds, with no surprise from outside it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// The files under `root`, by relative path (`prompts/system.md`), sorted.
pub fn read_dir(root: &Path) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let meta = std::fs::metadata(root).with_context(|| format!("cannot read {}", root.display()))?;
    if !meta.is_dir() {
        bail!("{} is not a directory", root.display());
    }
    let mut files = BTreeMap::new();
    // (directory on disk, its relative path)
    let mut pending: Vec<(PathBuf, String)> = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = pending.pop() {
        let entries = std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                bail!("{} has a name that is not UTF-8; rename it", path.display());
            };
            if name.starts_with('.') {
                continue;
            }
            let relative = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
            let kind = entry.file_type().with_context(|| format!("cannot inspect {}", path.display()))?;
            if kind.is_symlink() {
                bail!(
                    "{} is a symbolic link; only regular files can be pushed, so replace the link with the file \
                     it points to or remove it",
                    path.display()
                );
            } else if kind.is_dir() {
                pending.push((path, relative));
            } else if kind.is_file() {
                let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
                files.insert(relative, bytes);
            } else {
                bail!("{} is not a regular file (a socket, pipe or device); remove it", path.display());
            }
        }
    }
    if files.is_empty() {
        bail!("{} holds no files to push", root.display());
    }
    Ok(files)
}

/// The name a directory gives a template: its last component, resolving
/// `.` and `..` first.
pub fn dir_name(dir: &Path) -> anyhow::Result<String> {
    let resolved = std::fs::canonicalize(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    match resolved.file_name().and_then(|name| name.to_str()) {
        Some(name) => Ok(name.to_owned()),
        None => bail!("cannot take a name from {}; pass --name", dir.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_files_are_read_by_relative_path_and_dot_entries_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("prompts/tasks")).unwrap();
        std::fs::create_dir_all(dir.path().join(".git/objects")).unwrap();
        std::fs::write(dir.path().join("config.yaml"), "name: x\n").unwrap();
        std::fs::write(dir.path().join("prompts/tasks/audit.md"), "audit").unwrap();
        std::fs::write(dir.path().join(".git/objects/ab"), "x").unwrap();
        std::fs::write(dir.path().join(".env"), "SECRET=1").unwrap();
        let files = read_dir(dir.path()).unwrap();
        let paths: Vec<&str> = files.keys().map(String::as_str).collect();
        assert_eq!(paths, ["config.yaml", "prompts/tasks/audit.md"]);
        assert_eq!(files["prompts/tasks/audit.md"], b"audit");
    }

    #[test]
    fn a_symbolic_link_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.yaml"), "name: x\n").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("passwd")).unwrap();
        let err = read_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("passwd is a symbolic link"), "{err}");
    }

    #[test]
    fn an_empty_or_missing_directory_is_an_error_that_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("holds no files"), "{err}");
        let missing = dir.path().join("nope");
        let err = format!("{:#}", read_dir(&missing).unwrap_err());
        assert!(err.contains("nope"), "{err}");
    }

    /// What `hearth up` and `hearth e2e` push is exactly what pushing the
    /// repository's `examples/` directories would send.
    #[test]
    fn the_embedded_examples_are_exactly_the_examples_directory() {
        use hearth_harness::examples::{PLUGINS, SEO_AGENT_TEMPLATE};
        let examples_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let plugins = PLUGINS.iter().map(|plugin| (format!("plugins/{}", plugin.name), plugin));
        for (dir, example) in plugins.chain([("templates/seo-agent".to_owned(), &SEO_AGENT_TEMPLATE)]) {
            let on_disk = read_dir(&examples_dir.join(&dir)).unwrap();
            assert_eq!(example.files(), on_disk, "examples/{dir} and its embedded copy differ");
        }
        // Nothing in examples/ is left out of the table.
        let kinds: Vec<String> = std::fs::read_dir(&examples_dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        for kind in kinds {
            let count = std::fs::read_dir(examples_dir.join(&kind)).unwrap().count();
            let embedded = if kind == "plugins" { PLUGINS.len() } else { 1 };
            assert_eq!(count, embedded, "examples/{kind} has entries that are not embedded");
        }
    }

    #[test]
    fn the_name_of_dot_is_the_directory_name() {
        let dir = tempfile::tempdir().unwrap();
        let named = dir.path().join("seo-agent");
        std::fs::create_dir(&named).unwrap();
        assert_eq!(dir_name(&named.join(".")).unwrap(), "seo-agent");
    }
}
