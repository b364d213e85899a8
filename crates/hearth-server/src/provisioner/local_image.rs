//! A runtime image built on this machine from its own files, for where no
//! registry is reachable (`hearth up --provisioner docker`): `FROM
//! scratch` with the host's `/bin/sh` and a few tools, and the C library
//! that they and the `hearth` binary link. The binary itself is not in it:
//! the Docker backend mounts it into every container, whatever the image.
//! Good for running the agent and shell commands; a template whose program
//! needs more names an image of its own (`image:`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use bollard::query_parameters::CreateImageOptionsBuilder;
use bollard::Docker;
use futures_util::StreamExt;

/// The host's programs the image holds (those that exist here).
pub const TOOLS: &[&str] =
    &["/bin/sh", "/bin/cat", "/bin/ls", "/bin/echo", "/bin/sleep", "/bin/mkdir", "/bin/rm", "/usr/bin/env"];

/// Empty directories the image holds: the agent directory, the binary's
/// mount point and what programs expect.
const DIRS: &[&str] = &["tmp", "workspace", "opt/hearth", "etc", "root"];

/// Makes sure image `tag` is on the daemon (`DOCKER_HOST`, else the local
/// socket), building it from this machine's files (what `agent_binary`
/// and [`TOOLS`] link) when it is not. True when it was built now.
pub async fn ensure(tag: &str, agent_binary: &Path) -> std::io::Result<bool> {
    let docker = Docker::connect_with_local_defaults()
        .map_err(std::io::Error::other)?
        .negotiate_version()
        .await
        .map_err(|error| std::io::Error::other(format!("cannot reach the Docker daemon: {error}")))?;
    match docker.inspect_image(tag).await {
        Ok(_) => return Ok(false),
        Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {}
        Err(error) => return Err(std::io::Error::other(format!("cannot look for image {tag}: {error}"))),
    }
    let mut files: BTreeSet<PathBuf> = TOOLS.iter().map(PathBuf::from).filter(|tool| tool.exists()).collect();
    let programs: Vec<PathBuf> = std::iter::once(agent_binary.to_owned()).chain(files.iter().cloned()).collect();
    for program in &programs {
        files.extend(linked_by(program).await?);
    }
    let archive = tokio::task::spawn_blocking(move || root_archive(&files)).await.map_err(std::io::Error::other)??;
    let (repo, version) = tag.rsplit_once(':').filter(|(_, v)| !v.contains('/')).unwrap_or((tag, "latest"));
    let options = CreateImageOptionsBuilder::default().from_src("-").repo(repo).tag(version).build();
    let mut progress = docker.create_image(Some(options), Some(bollard::body_full(archive.into())), None);
    while let Some(step) = progress.next().await {
        let step = step.map_err(|error| std::io::Error::other(format!("cannot import image {tag}: {error}")))?;
        if let Some(error) = step.error_detail.and_then(|detail| detail.message) {
            return Err(std::io::Error::other(format!("cannot import image {tag}: {error}")));
        }
    }
    tracing::info!(image = tag, "built the local runtime image from this machine's files");
    Ok(true)
}

/// The shared libraries and loader `program` links, as `ldd` lists them.
async fn linked_by(program: &Path) -> std::io::Result<Vec<PathBuf>> {
    let output = tokio::process::Command::new("ldd").arg(program).output().await.map_err(|error| {
        std::io::Error::new(
            error.kind(),
            format!("cannot run ldd (Debian's libc-bin) on {}: {error}", program.display()),
        )
    })?;
    // A static program: ldd says so and fails; it links nothing.
    Ok(linked_files(&String::from_utf8_lossy(&output.stdout)))
}

/// The absolute paths in `ldd`'s output (`libc.so.6 => /lib/…/libc.so.6
/// (0x…)`, `/lib64/ld-linux-x86-64.so.2 (0x…)`); `linux-vdso.so.1` has none.
fn linked_files(ldd: &str) -> Vec<PathBuf> {
    ldd.lines()
        .filter_map(|line| line.split_whitespace().find(|word| word.starts_with('/')))
        .map(PathBuf::from)
        .collect()
}

/// A tar of the root file system: each file (symbolic links followed) at
/// its own path, with its mode, and [`DIRS`].
fn root_archive(files: &BTreeSet<PathBuf>) -> std::io::Result<Vec<u8>> {
    let mut archive = tar::Builder::new(Vec::new());
    archive.follow_symlinks(true);
    for dir in DIRS {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(if *dir == "tmp" { 0o1777 } else { 0o755 });
        header.set_size(0);
        header.set_mtime(0);
        header.set_cksum();
        archive.append_data(&mut header, format!("{dir}/"), std::io::empty())?;
    }
    for file in files {
        let inside = file.strip_prefix("/").unwrap_or(file);
        archive.append_path_with_name(file, inside).map_err(|error| {
            std::io::Error::new(error.kind(), format!("cannot add {} to the image: {error}", file.display()))
        })?;
    }
    archive.into_inner()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test: a failed step should panic

    use super::*;

    #[test]
    fn the_files_a_program_links_are_read_from_ldd() {
        let ldd = "\tlinux-vdso.so.1 (0x00007ffd3a5f2000)\n\
                   \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f1c)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f1b)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f1d)\n";
        assert_eq!(
            linked_files(ldd),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
        assert!(linked_files("\tnot a dynamic executable\n").is_empty(), "a static program links nothing");
    }

    #[test]
    fn the_root_archive_holds_the_files_at_their_paths_and_the_directories() {
        let files = BTreeSet::from([PathBuf::from("/bin/sh")]);
        let archive = root_archive(&files).unwrap();
        let mut reader = tar::Archive::new(archive.as_slice());
        let mut names = Vec::new();
        for entry in reader.entries().unwrap() {
            let entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            if path == "bin/sh" {
                assert!(entry.header().entry_type().is_file(), "a link is followed to its file");
                assert_eq!(entry.header().mode().unwrap() & 0o111, 0o111, "executable");
            }
            names.push(path);
        }
        for expected in ["bin/sh", "tmp/", "workspace/", "opt/hearth/"] {
            assert!(names.iter().any(|name| name == expected), "{expected} in {names:?}");
        }
    }
}
