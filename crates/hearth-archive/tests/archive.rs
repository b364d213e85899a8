//! Round trips, determinism, and hostile archives built byte by byte.
//!
//! The evil archives are written with the `tar` crate's low-level `Header`
//! API (bypassing its own path checks), because a safe writer would refuse to
//! produce them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failed step should panic

use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;
use hearth_archive::{pack, read_files, unpack, ArchiveError, BundlePath, Limits};
use tar::{EntryType, Header};

fn bp(path: &str) -> BundlePath {
    BundlePath::new(path).unwrap()
}

fn sample_files() -> Vec<(BundlePath, Vec<u8>)> {
    let long_dir = "d".repeat(90);
    vec![
        (bp("plugin.yaml"), b"name: demo\nversion: 1\n".to_vec()),
        (bp("skills/search/SKILL.md"), b"# Search\n".to_vec()),
        (bp("skills/search/run.sh"), b"#!/bin/sh\necho hi\n".to_vec()),
        (bp("empty.txt"), Vec::new()),
        (bp("café/😀.md"), "non-ASCII names".as_bytes().to_vec()),
        // Over 100 bytes: needs the GNU long-name extension.
        (bp(&format!("{long_dir}/{long_dir}/long.txt")), b"long path".to_vec()),
        (bp("bin/data.bin"), (0..=255u8).cycle().take(100_000).collect()),
    ]
}

fn sorted(mut files: Vec<(BundlePath, Vec<u8>)>) -> Vec<(BundlePath, Vec<u8>)> {
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files
}

#[cfg(unix)]
fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Lists everything under `root`, relative, sorted.
fn tree(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            out.push(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            if entry.file_type().unwrap().is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

// ---------------------------------------------------------------- pack

#[test]
fn pack_is_deterministic() {
    let files = sample_files();
    let first = pack(&files).unwrap();
    let second = pack(&files).unwrap();
    assert_eq!(first, second);
    let mut shuffled = files.clone();
    shuffled.reverse();
    assert_eq!(pack(&shuffled).unwrap(), first, "input order must not matter");
}

#[test]
fn pack_layout_dirs_first_fixed_metadata() {
    let bytes = pack(&sample_files()).unwrap();
    // gzip header: no mtime (bytes 4..8), OS byte "unknown".
    assert_eq!(&bytes[..3], &[0x1f, 0x8b, 8]);
    assert_eq!(&bytes[4..8], &[0, 0, 0, 0]);
    assert_eq!(bytes[9], 255);

    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
    let mut seen: Vec<(String, EntryType)> = Vec::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let header = entry.header();
        let name = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
        let kind = header.entry_type();
        assert_eq!(header.mtime().unwrap(), 0, "{name}");
        assert_eq!(header.uid().unwrap(), 0, "{name}");
        assert_eq!(header.gid().unwrap(), 0, "{name}");
        let expected_mode = if kind.is_dir() { 0o755 } else { 0o644 };
        assert_eq!(header.mode().unwrap(), expected_mode, "{name}");
        assert!(kind == EntryType::Regular || kind == EntryType::Directory, "{name}: {kind:?}");
        seen.push((name, kind));
    }
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    let long_dir = "d".repeat(90);
    let long_inner = format!("{long_dir}/{long_dir}/");
    let long_file = format!("{long_dir}/{long_dir}/long.txt");
    assert_eq!(
        names,
        [
            "bin/",
            "bin/data.bin",
            "café/",
            "café/😀.md",
            &format!("{long_dir}/"),
            &long_inner,
            &long_file,
            "empty.txt",
            "plugin.yaml",
            "skills/",
            "skills/search/",
            "skills/search/SKILL.md",
            "skills/search/run.sh",
        ]
    );
}

#[test]
fn pack_refuses_duplicates_and_clashes() {
    let dup = [(bp("a"), vec![1]), (bp("a"), vec![2])];
    assert!(matches!(pack(&dup), Err(ArchiveError::Duplicate { .. })));
    let clash = [(bp("a"), vec![1]), (bp("a/b"), vec![2])];
    let err = pack(&clash).unwrap_err();
    assert!(matches!(err, ArchiveError::Conflict { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "archive entry \"a/b\" conflicts with \"a\": one path cannot be both a file and a directory"
    );
}

#[test]
fn pack_empty_is_a_valid_archive() {
    let bytes = pack(&[]).unwrap();
    assert!(read_files(&bytes, &Limits::default()).unwrap().is_empty());
}

// ---------------------------------------------------------------- round trips

#[test]
fn round_trip_in_memory() {
    let files = sample_files();
    let bytes = pack(&files).unwrap();
    assert_eq!(read_files(&bytes, &Limits::default()).unwrap(), sorted(files));
}

#[test]
fn round_trip_to_disk_with_fixed_modes() {
    let files = sample_files();
    let bytes = pack(&files).unwrap();
    let parent = tempfile::tempdir().unwrap();
    let dest = parent.path().join("nested/out");
    let written = unpack(&bytes, &dest, &Limits::default()).unwrap();
    let expected: Vec<(BundlePath, u64)> =
        sorted(files.clone()).into_iter().map(|(p, data)| (p, data.len() as u64)).collect();
    assert_eq!(written, expected);
    for (path, data) in &files {
        let full = dest.join(path.as_str());
        assert_eq!(&fs::read(&full).unwrap(), data, "{path}");
        #[cfg(unix)]
        assert_eq!(mode_of(&full), 0o644, "{path}");
    }
    #[cfg(unix)]
    {
        assert_eq!(mode_of(&dest), 0o755);
        assert_eq!(mode_of(&dest.join("skills/search")), 0o755);
    }
    // No staging directory is left behind next to dest.
    let siblings: Vec<_> =
        fs::read_dir(parent.path().join("nested")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(siblings, ["out"]);
}

#[test]
fn unpack_into_existing_empty_directory() {
    let bytes = pack(&[(bp("a/b.txt"), b"x".to_vec())]).unwrap();
    let dest = tempfile::tempdir().unwrap();
    unpack(&bytes, dest.path(), &Limits::default()).unwrap();
    assert_eq!(fs::read(dest.path().join("a/b.txt")).unwrap(), b"x");
}

#[test]
fn unpack_refuses_bad_destinations() {
    let bytes = pack(&[(bp("a"), b"x".to_vec())]).unwrap();
    let parent = tempfile::tempdir().unwrap();

    let full = parent.path().join("full");
    fs::create_dir(&full).unwrap();
    fs::write(full.join("keep.txt"), b"mine").unwrap();
    let err = unpack(&bytes, &full, &Limits::default()).unwrap_err();
    assert!(matches!(err, ArchiveError::InvalidDestination { .. }), "{err}");
    assert!(err.to_string().ends_with(": the directory is not empty"), "{err}");
    assert_eq!(tree(&full), ["keep.txt"]);

    let file = parent.path().join("file");
    fs::write(&file, b"").unwrap();
    let err = unpack(&bytes, &file, &Limits::default()).unwrap_err();
    assert!(err.to_string().ends_with(": it exists and is not a directory"), "{err}");

    #[cfg(unix)]
    {
        let target = parent.path().join("target");
        fs::create_dir(&target).unwrap();
        let link = parent.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = unpack(&bytes, &link, &Limits::default()).unwrap_err();
        assert!(err.to_string().ends_with(": it is a symbolic link"), "{err}");
        assert!(tree(&target).is_empty());
    }
}

// ---------------------------------------------------------------- evil archives

/// A header with a raw name written straight into the name field, so paths
/// the `tar` crate's safe setters refuse (`..`, absolute) can be produced.
fn raw_header(name: &str, kind: EntryType, size: u64) -> Header {
    let mut header = Header::new_gnu();
    let field = &mut header.as_old_mut().name;
    assert!(name.len() < field.len(), "test name too long for the raw field");
    field[..name.len()].copy_from_slice(name.as_bytes());
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    header
}

/// Gzips a tar stream of (header, data) pairs. `data` may disagree with the
/// header's size on purpose.
fn evil_tarball(entries: Vec<(Header, Vec<u8>)>) -> Vec<u8> {
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    for (header, data) in entries {
        builder.append(&header, data.as_slice()).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// One PAX extended-header record: `"<len> <key>=<value>\n"`, where `<len>`
/// counts the whole record including its own digits.
fn pax_record(key: &str, value: &str) -> String {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while len != body.len() + len.to_string().len() {
        len = body.len() + len.to_string().len();
    }
    format!("{len}{body}")
}

fn file(name: &str, data: &[u8]) -> (Header, Vec<u8>) {
    (raw_header(name, EntryType::Regular, data.len() as u64), data.to_vec())
}

fn link(name: &str, kind: EntryType, target: &str) -> (Header, Vec<u8>) {
    let mut header = raw_header(name, kind, 0);
    header.set_link_name(target).unwrap();
    header.set_cksum();
    (header, Vec::new())
}

/// Asserts `tarball` is refused both in memory and on disk, that nothing at
/// all is left behind (neither `dest` nor a staging directory), and that an
/// existing empty `dest` stays empty. Returns the error for inspection.
fn refused(tarball: &[u8], limits: &Limits) -> ArchiveError {
    let in_memory = read_files(tarball, limits).expect_err("read_files accepted an evil archive");

    let parent = tempfile::tempdir().unwrap();
    let dest = parent.path().join("out");
    let on_disk = unpack(tarball, &dest, limits).expect_err("unpack accepted an evil archive");
    assert!(!dest.exists(), "dest was created despite {on_disk}");
    assert!(tree(parent.path()).is_empty(), "left behind: {:?}", tree(parent.path()));

    let existing = tempfile::tempdir().unwrap();
    let again = unpack(tarball, existing.path(), limits).expect_err("unpack accepted an evil archive");
    assert!(tree(existing.path()).is_empty(), "dest not empty after {again}");

    assert_eq!(in_memory.to_string(), on_disk.to_string(), "memory and disk disagree");
    on_disk
}

#[test]
fn refuses_tar_slip_parent() {
    for name in ["../x", "a/../../x", "./../x", "a/..", "..\\x"] {
        let err = refused(&evil_tarball(vec![file(name, b"pwned")]), &Limits::default());
        assert!(matches!(err, ArchiveError::ParentComponent { .. }), "{name}: {err}");
    }
    let err = refused(&evil_tarball(vec![file("../x", b"pwned")]), &Limits::default());
    assert_eq!(err.to_string(), "archive entry \"../x\" contains a '..' component, which could escape the destination");
}

#[test]
fn refuses_absolute_paths() {
    for name in ["/etc/x", "//etc/x", "\\etc\\x"] {
        let err = refused(&evil_tarball(vec![file(name, b"pwned")]), &Limits::default());
        assert!(matches!(err, ArchiveError::AbsolutePath { .. }), "{name}: {err}");
    }
    let err = refused(&evil_tarball(vec![file("/etc/x", b"pwned")]), &Limits::default());
    assert_eq!(
        err.to_string(),
        "archive entry \"/etc/x\" has an absolute path; entries must be relative to the bundle root"
    );
}

#[test]
fn refuses_other_invalid_paths() {
    for name in ["C:/x", "a\\b", "a//b", "a/./b", "tab\there", "."] {
        let err = refused(&evil_tarball(vec![file(name, b"x")]), &Limits::default());
        assert!(matches!(err, ArchiveError::InvalidPath { .. }), "{name}: {err}");
    }
    // Not UTF-8.
    let mut header = Header::new_gnu();
    header.as_old_mut().name[..3].copy_from_slice(&[b'a', 0xff, b'b']);
    header.set_entry_type(EntryType::Regular);
    header.set_size(0);
    header.set_cksum();
    let err = refused(&evil_tarball(vec![(header, Vec::new())]), &Limits::default());
    assert!(matches!(err, ArchiveError::NonUtf8Path { .. }), "{err}");
}

#[test]
fn refuses_symlinks() {
    let tarball = evil_tarball(vec![file("ok.txt", b"fine"), link("evil", EntryType::Symlink, "/etc/passwd")]);
    let err = refused(&tarball, &Limits::default());
    assert!(matches!(err, ArchiveError::Symlink { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "archive entry \"evil\" is a symbolic link (to \"/etc/passwd\"); links are not allowed"
    );
    // The classic two-step escape: a symlinked directory, then a file through it.
    let tarball = evil_tarball(vec![link("dir", EntryType::Symlink, "/tmp"), file("dir/x", b"pwned")]);
    assert!(matches!(refused(&tarball, &Limits::default()), ArchiveError::Symlink { .. }));
}

#[test]
fn refuses_hard_links() {
    let tarball = evil_tarball(vec![link("hard", EntryType::Link, "../../etc/shadow")]);
    let err = refused(&tarball, &Limits::default());
    assert!(matches!(err, ArchiveError::HardLink { .. }), "{err}");
    assert!(err.to_string().contains("\"hard\" is a hard link (to \"../../etc/shadow\")"), "{err}");
}

#[test]
fn refuses_devices_and_fifos() {
    for (kind, word) in
        [(EntryType::Char, "character device"), (EntryType::Block, "block device"), (EntryType::Fifo, "FIFO")]
    {
        let mut header = raw_header("dev", kind, 0);
        header.set_device_major(1).unwrap();
        header.set_device_minor(3).unwrap();
        header.set_cksum();
        let err = refused(&evil_tarball(vec![(header, Vec::new())]), &Limits::default());
        assert!(matches!(err, ArchiveError::SpecialFile { .. }), "{err}");
        assert!(err.to_string().starts_with(&format!("archive entry \"dev\" is a {word}")), "{err}");
    }
}

#[test]
fn refuses_other_entry_types() {
    // (GNU sparse entries are refused too; the tar reader already rejects a
    // malformed one as corrupt, see `refuses_truncated_or_garbled_data`.)
    for kind in [EntryType::Continuous, EntryType::new(b'V'), EntryType::new(b'Z'), EntryType::new(b'D')] {
        let err = refused(&evil_tarball(vec![(raw_header("odd", kind, 0), Vec::new())]), &Limits::default());
        assert!(matches!(err, ArchiveError::UnsupportedType { .. }), "{kind:?}: {err}");
    }
}

#[test]
fn refuses_file_whose_header_is_over_the_cap() {
    let limits = Limits { max_file_bytes: 1024, ..Limits::default() };
    // The header claims 10 MiB; only a few bytes follow. Refused before reading.
    let tarball = evil_tarball(vec![(raw_header("big", EntryType::Regular, 10 << 20), b"tiny".to_vec())]);
    let err = refused(&tarball, &limits);
    assert!(matches!(err, ArchiveError::FileTooLarge { limit: 1024, .. }), "{err}");
    assert_eq!(err.to_string(), "archive entry \"big\" is larger than the limit of 1024 bytes per file");
    // An honest file one byte over the cap.
    let err = refused(&evil_tarball(vec![file("big", &[7u8; 1025])]), &limits);
    assert!(matches!(err, ArchiveError::FileTooLarge { .. }), "{err}");
    // Exactly at the cap is fine.
    let ok = evil_tarball(vec![file("big", &[7u8; 1024])]);
    assert_eq!(read_files(&ok, &limits).unwrap()[0].1.len(), 1024);
}

#[test]
fn refuses_lying_header_via_pax_size() {
    // The ustar size field says 4 bytes, a PAX record says 2 MiB, and 2 MiB of
    // data really follow. Readers that trust the ustar field see a tiny file
    // and then garbage; the limit must apply to what is really read.
    let real = vec![b'A'; 2 << 20];
    let record = pax_record("size", &real.len().to_string());
    let pax = (raw_header("pax", EntryType::XHeader, record.len() as u64), record.into_bytes());
    let mut header = raw_header("liar", EntryType::Regular, 4);
    header.set_cksum();
    let tarball = evil_tarball(vec![pax, (header, real)]);
    let limits = Limits { max_file_bytes: 1 << 20, ..Limits::default() };
    let err = refused(&tarball, &limits);
    assert!(matches!(err, ArchiveError::FileTooLarge { .. }), "{err}");
}

#[test]
fn refuses_truncated_or_garbled_data() {
    // The header says 10 bytes but 2000 follow: the rest is read as headers.
    let mut data = vec![b'x'; 2000];
    data[600] = b'!';
    let tarball = evil_tarball(vec![(raw_header("short", EntryType::Regular, 10), data)]);
    let err = refused(&tarball, &Limits::default());
    assert!(matches!(err, ArchiveError::Corrupt { .. }), "{err}");
    // A GNU sparse header is never accepted.
    let sparse =
        refused(&evil_tarball(vec![(raw_header("sparse", EntryType::GNUSparse, 0), Vec::new())]), &Limits::default());
    assert!(matches!(sparse, ArchiveError::Corrupt { .. } | ArchiveError::UnsupportedType { .. }), "{sparse}");
    // Not gzip at all.
    let err = refused(b"definitely not a tarball", &Limits::default());
    assert!(matches!(err, ArchiveError::Corrupt { .. }), "{err}");
    assert!(err.to_string().starts_with("the archive is not a valid gzip-compressed tar file: "), "{err}");
    // A valid archive cut short.
    let good = pack(&[(bp("a"), vec![1u8; 5000])]).unwrap();
    let err = refused(&good[..good.len() / 2], &Limits::default());
    assert!(matches!(err, ArchiveError::Corrupt { .. }), "{err}");
}

#[test]
fn refuses_too_many_entries() {
    let limits = Limits { max_entries: 10, ..Limits::default() };
    let entries = (0..11).map(|i| file(&format!("f{i}"), b"x")).collect();
    let err = refused(&evil_tarball(entries), &limits);
    assert!(matches!(err, ArchiveError::TooManyEntries { limit: 10 }), "{err}");
    assert_eq!(err.to_string(), "the archive has more than 10 entries, which is the limit");
    // Ten is fine.
    let entries = (0..10).map(|i| file(&format!("f{i}"), b"x")).collect();
    assert_eq!(read_files(&evil_tarball(entries), &limits).unwrap().len(), 10);
}

#[test]
fn refuses_gzip_bomb_over_the_total() {
    // 16 MiB of zeros compresses to a few dozen KiB.
    let limits = Limits { max_file_bytes: 1 << 30, max_total_bytes: 4 << 20, max_entries: 100 };
    let zeros = vec![0u8; 16 << 20];
    let tarball = evil_tarball(vec![file("bomb", &zeros)]);
    assert!(tarball.len() < 256 << 10, "test archive is {} bytes", tarball.len());
    let err = refused(&tarball, &limits);
    assert!(matches!(err, ArchiveError::TotalTooLarge { .. }), "{err}");
    assert_eq!(err.to_string(), "archive entry \"bomb\" takes the archive over the limit of 4194304 bytes in total");
    // The total is cumulative: three 1.5 MiB files against a 4 MiB total.
    let three = vec![1u8; 3 << 19];
    let tarball = evil_tarball(vec![file("a", &three), file("b", &three), file("c", &three)]);
    let err = refused(&tarball, &limits);
    assert!(matches!(err, ArchiveError::TotalTooLarge { ref entry, .. } if entry == "\"c\""), "{err}");
}

#[test]
fn refuses_huge_metadata_stream() {
    // No file data at all, just an 8 MiB GNU long-name record, which the tar
    // reader would buffer whole. The stream budget stops it first.
    let limits = Limits { max_file_bytes: 1 << 20, max_total_bytes: 1 << 20, max_entries: 10 };
    let name = vec![b'n'; 8 << 20];
    let long = (raw_header("././@LongLink", EntryType::GNULongName, name.len() as u64), name);
    let tarball = evil_tarball(vec![long, file("x", b"x")]);
    let err = refused(&tarball, &limits);
    assert!(matches!(err, ArchiveError::StreamTooLarge { .. }), "{err}");
}

#[test]
fn refuses_duplicates_and_clashes() {
    let err = refused(&evil_tarball(vec![file("a", b"1"), file("a", b"2")]), &Limits::default());
    assert!(matches!(err, ArchiveError::Duplicate { .. }), "{err}");
    assert_eq!(err.to_string(), "archive entry \"a\" appears more than once");
    let err = refused(&evil_tarball(vec![file("a", b"1"), file("a/b", b"2")]), &Limits::default());
    assert!(matches!(err, ArchiveError::Conflict { .. }), "{err}");
    let dir = (raw_header("a/", EntryType::Directory, 0), Vec::new());
    let err = refused(&evil_tarball(vec![dir.clone(), file("a", b"1")]), &Limits::default());
    assert!(matches!(err, ArchiveError::Conflict { .. }), "{err}");
    let err = refused(&evil_tarball(vec![file("a", b"1"), dir]), &Limits::default());
    assert!(matches!(err, ArchiveError::Conflict { .. }), "{err}");
}

// ---------------------------------------------------------------- tolerated input

#[test]
fn accepts_dot_slash_prefix_and_repeated_dirs() {
    // What `tar -C plugin -czf x.tar.gz .` produces.
    let dir = |name: &str| (raw_header(name, EntryType::Directory, 0), Vec::new());
    let tarball = evil_tarball(vec![
        dir("./"),
        dir("./sub/"),
        file("./plugin.yaml", b"name: p\n"),
        file("./sub/a.txt", b"a"),
        dir("sub"),
        dir("empty/"),
    ]);
    let files = read_files(&tarball, &Limits::default()).unwrap();
    assert_eq!(files, vec![(bp("plugin.yaml"), b"name: p\n".to_vec()), (bp("sub/a.txt"), b"a".to_vec())]);
    let dest = tempfile::tempdir().unwrap();
    unpack(&tarball, dest.path(), &Limits::default()).unwrap();
    assert_eq!(tree(dest.path()), ["empty", "plugin.yaml", "sub", "sub/a.txt"]);
}

#[test]
fn ignores_pax_global_header() {
    // `git archive` starts with one carrying the commit id.
    let record = pax_record("comment", "0123456789012345678901234567890123456789");
    let global = (raw_header("pax_global_header", EntryType::XGlobalHeader, record.len() as u64), record.into_bytes());
    let tarball = evil_tarball(vec![global, file("a.txt", b"a")]);
    assert_eq!(read_files(&tarball, &Limits::default()).unwrap(), vec![(bp("a.txt"), b"a".to_vec())]);
}

#[cfg(unix)]
#[test]
fn never_honours_header_modes() {
    let mut exec = raw_header("suid", EntryType::Regular, 2);
    exec.set_mode(0o4777);
    exec.set_cksum();
    let mut dir = raw_header("sticky/", EntryType::Directory, 0);
    dir.set_mode(0o1777);
    dir.set_cksum();
    let tarball = evil_tarball(vec![(exec, b"#!".to_vec()), (dir, Vec::new())]);
    let dest = tempfile::tempdir().unwrap();
    unpack(&tarball, dest.path(), &Limits::default()).unwrap();
    assert_eq!(mode_of(&dest.path().join("suid")), 0o644);
    assert_eq!(mode_of(&dest.path().join("sticky")), 0o755);
}

#[test]
fn python_style_long_names_are_read() {
    // A PAX `path` record, as Python's tarfile and bsdtar write for long names.
    let long = format!("{}/{}.txt", "p".repeat(150), "q".repeat(150));
    let record = pax_record("path", &long);
    let pax = (raw_header("PaxHeader", EntryType::XHeader, record.len() as u64), record.into_bytes());
    let tarball = evil_tarball(vec![pax, file("truncated", b"body")]);
    let files = read_files(&tarball, &Limits::default()).unwrap();
    assert_eq!(files, vec![(bp(&long), b"body".to_vec())]);
}

#[test]
fn decompressed_reader_round_trip_via_flate2() {
    // Sanity: the packed bytes are a plain gzip stream any reader accepts.
    let bytes = pack(&[(bp("a.txt"), b"hello".to_vec())]).unwrap();
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(bytes.as_slice()).read_to_end(&mut raw).unwrap();
    assert_eq!(raw.len() % 512, 0);
    let mut sink = Vec::new();
    sink.write_all(&raw).unwrap();
    assert!(sink.windows(5).any(|w| w == b"hello"));
}
