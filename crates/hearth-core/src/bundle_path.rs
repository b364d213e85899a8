//! [`BundlePath`]: the path of one file inside a template or plugin bundle.
//!
//! Bundles arrive from operators (JSON imports, tarball uploads) and are later
//! written to disk by runtimes and served over HTTP. A path that is absolute,
//! climbs with `..`, hides a Windows drive or carries control characters can
//! escape the bundle root or confuse a log line, so every path is checked once,
//! here, and only the validated newtype travels further. The rules are
//! deliberately stricter than any one filesystem so the same bundle extracts the
//! same way on every platform.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest path segment (one file or directory name), in bytes. Matches
/// `NAME_MAX` on common filesystems, so a valid path can always be created.
pub const MAX_SEGMENT_BYTES: usize = 255;
/// Longest whole path, in bytes. Well under `PATH_MAX` so the path still fits
/// after being joined onto a destination directory.
pub const MAX_PATH_BYTES: usize = 1024;

/// How much of an offending path an error message quotes. Error messages end
/// up in HTTP responses and logs; a megabyte-long path must not.
const QUOTE_CHARS: usize = 120;

/// A validated, `/`-separated path relative to a bundle root.
///
/// Invariants (checked by [`BundlePath::new`]): non-empty; no leading `/`; no
/// `\`; no NUL or other control characters; no empty, `.` or `..` segments
/// (so no trailing `/` and no `//`); no Windows drive prefix such as `C:`; at
/// most [`MAX_SEGMENT_BYTES`] bytes per segment and [`MAX_PATH_BYTES`] in total.
///
/// Ordering is byte-wise on the UTF-8 text, which equals Unicode code-point
/// order. Digests sort by this order, and so does Python's `sorted()` on `str`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BundlePath(String);

/// Why a string is not a valid [`BundlePath`]. Each message quotes the path and
/// names the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundlePathError {
    #[error("invalid bundle path \"\": a path must not be empty")]
    Empty,
    #[error("invalid bundle path {path}: it must be relative, not start with '/'")]
    Absolute { path: String },
    #[error("invalid bundle path {path}: it must use '/' as separator, not '\\'")]
    Backslash { path: String },
    #[error("invalid bundle path {path}: it must not contain NUL or other control characters")]
    ControlCharacter { path: String },
    #[error("invalid bundle path {path}: it must not start with a Windows drive prefix such as 'C:'")]
    DrivePrefix { path: String },
    #[error("invalid bundle path {path}: it must not contain empty segments ('//' or a trailing '/')")]
    EmptySegment { path: String },
    #[error("invalid bundle path {path}: it must not contain '.' segments")]
    CurrentDirSegment { path: String },
    #[error("invalid bundle path {path}: it must not contain '..' segments")]
    ParentDirSegment { path: String },
    #[error("invalid bundle path {path}: a segment is {len} bytes long, the limit is {MAX_SEGMENT_BYTES}")]
    SegmentTooLong { path: String, len: usize },
    #[error("invalid bundle path {path}: it is {len} bytes long, the limit is {MAX_PATH_BYTES}")]
    TooLong { path: String, len: usize },
}

/// Quotes `path` for an error message: Rust debug escaping (so control
/// characters show as `\u{…}` instead of corrupting the log line), truncated to
/// [`QUOTE_CHARS`] characters.
fn quote(path: &str) -> String {
    if path.chars().count() <= QUOTE_CHARS {
        format!("{path:?}")
    } else {
        let head: String = path.chars().take(QUOTE_CHARS).collect();
        format!("{head:?}…")
    }
}

impl BundlePath {
    /// Validates `path` and wraps it. See the type's documentation for the rules.
    pub fn new(path: impl Into<String>) -> Result<Self, BundlePathError> {
        let path = path.into();
        validate(&path)?;
        Ok(BundlePath(path))
    }

    /// The path as text, `/`-separated.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Unwraps the validated text.
    pub fn into_string(self) -> String {
        self.0
    }

    /// The path's segments, outermost first. Never empty.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The last segment: the file name.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The enclosing directories, outermost first: `a/b/c` yields `a`, `a/b`.
    /// Archive writers emit these as directory entries before the file, and
    /// extractors create them.
    pub fn ancestors(&self) -> impl Iterator<Item = &str> {
        self.0.match_indices('/').map(|(at, _)| &self.0[..at])
    }

    /// True when the file sits at the bundle root (no `/`).
    pub fn is_top_level(&self) -> bool {
        !self.0.contains('/')
    }
}

fn validate(path: &str) -> Result<(), BundlePathError> {
    if path.is_empty() {
        return Err(BundlePathError::Empty);
    }
    let quoted = || quote(path);
    // Character-level rules first: they explain the path as a whole, and a
    // control character must be reported even if the path is also too long.
    if path.chars().any(char::is_control) {
        return Err(BundlePathError::ControlCharacter { path: quoted() });
    }
    if path.contains('\\') {
        return Err(BundlePathError::Backslash { path: quoted() });
    }
    if path.starts_with('/') {
        return Err(BundlePathError::Absolute { path: quoted() });
    }
    let bytes = path.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        return Err(BundlePathError::DrivePrefix { path: quoted() });
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(BundlePathError::TooLong { path: quoted(), len: path.len() });
    }
    for segment in path.split('/') {
        match segment {
            "" => return Err(BundlePathError::EmptySegment { path: quoted() }),
            "." => return Err(BundlePathError::CurrentDirSegment { path: quoted() }),
            ".." => return Err(BundlePathError::ParentDirSegment { path: quoted() }),
            s if s.len() > MAX_SEGMENT_BYTES => {
                return Err(BundlePathError::SegmentTooLong { path: quoted(), len: s.len() })
            }
            _ => {}
        }
    }
    Ok(())
}

impl fmt::Display for BundlePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for BundlePath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for BundlePath {
    type Err = BundlePathError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BundlePath::new(s)
    }
}

impl TryFrom<String> for BundlePath {
    type Error = BundlePathError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        BundlePath::new(value)
    }
}

impl TryFrom<&str> for BundlePath {
    type Error = BundlePathError;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        BundlePath::new(value)
    }
}

impl From<BundlePath> for String {
    fn from(value: BundlePath) -> Self {
        value.0
    }
}

impl Serialize for BundlePath {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// Deserializing validates, so a `BundlePath` inside any wire or stored type
/// is always valid.
impl<'de> Deserialize<'de> for BundlePath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        BundlePath::new(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks that an error is the expected variant.
    type IsExpected = fn(&BundlePathError) -> bool;

    #[test]
    fn accepts_ordinary_relative_paths() {
        let ok = [
            "config.yaml",
            "prompts/system.md",
            "a/b/c/d.txt",
            ".hidden",
            "..dots-in-name",
            "name..with..dots",
            "...",
            "dir.d/file",
            "with space/file name.txt",
            "café/naïve.md",
            "emoji/😀.txt",
            "ab:c",      // a colon is fine when it is not a drive prefix
            "1:/x",      // a digit then ':' is not a drive letter
            "x/C:/y",    // only the first segment can be a drive
            "trailing.", // dots inside a name are fine
        ];
        for path in ok {
            let parsed = BundlePath::new(path).unwrap_or_else(|e| panic!("{path:?} rejected: {e}"));
            assert_eq!(parsed.as_str(), path);
        }
    }

    #[test]
    fn limits_are_inclusive() {
        let segment = "s".repeat(MAX_SEGMENT_BYTES);
        assert!(BundlePath::new(segment.as_str()).is_ok());
        // Four 200-byte segments, one of 220 and four slashes: exactly 1024 bytes.
        let exact = format!("{}/{}", vec!["s".repeat(200); 4].join("/"), "s".repeat(220));
        assert_eq!(exact.len(), MAX_PATH_BYTES);
        assert!(BundlePath::new(exact.clone()).is_ok());
        assert!(matches!(BundlePath::new(format!("{exact}s")), Err(BundlePathError::TooLong { len: 1025, .. })));
        // Multi-byte characters count in bytes, not characters.
        let accented = "é".repeat(MAX_SEGMENT_BYTES / 2); // 254 bytes
        assert!(BundlePath::new(accented.clone()).is_ok());
        assert!(matches!(
            BundlePath::new(format!("{accented}é")),
            Err(BundlePathError::SegmentTooLong { len: 256, .. })
        ));
    }

    #[test]
    fn rejects_each_rule() {
        use BundlePathError as E;
        let long_segment = "s".repeat(MAX_SEGMENT_BYTES + 1);
        let long_path = vec!["s".repeat(200); 6].join("/");
        let cases: Vec<(String, IsExpected)> = vec![
            ("".into(), |e| matches!(e, E::Empty)),
            ("/etc/passwd".into(), |e| matches!(e, E::Absolute { .. })),
            ("/".into(), |e| matches!(e, E::Absolute { .. })),
            ("a\\b".into(), |e| matches!(e, E::Backslash { .. })),
            ("\\\\server\\share".into(), |e| matches!(e, E::Backslash { .. })),
            ("a\0b".into(), |e| matches!(e, E::ControlCharacter { .. })),
            ("a\nb".into(), |e| matches!(e, E::ControlCharacter { .. })),
            ("tab\there".into(), |e| matches!(e, E::ControlCharacter { .. })),
            ("del\u{7f}".into(), |e| matches!(e, E::ControlCharacter { .. })),
            ("c1\u{85}".into(), |e| matches!(e, E::ControlCharacter { .. })),
            ("C:".into(), |e| matches!(e, E::DrivePrefix { .. })),
            ("C:/Windows".into(), |e| matches!(e, E::DrivePrefix { .. })),
            ("c:relative".into(), |e| matches!(e, E::DrivePrefix { .. })),
            ("a//b".into(), |e| matches!(e, E::EmptySegment { .. })),
            ("a/".into(), |e| matches!(e, E::EmptySegment { .. })),
            (".".into(), |e| matches!(e, E::CurrentDirSegment { .. })),
            ("./a".into(), |e| matches!(e, E::CurrentDirSegment { .. })),
            ("a/./b".into(), |e| matches!(e, E::CurrentDirSegment { .. })),
            ("..".into(), |e| matches!(e, E::ParentDirSegment { .. })),
            ("../x".into(), |e| matches!(e, E::ParentDirSegment { .. })),
            ("a/../../x".into(), |e| matches!(e, E::ParentDirSegment { .. })),
            ("a/..".into(), |e| matches!(e, E::ParentDirSegment { .. })),
            (long_segment.clone(), |e| matches!(e, E::SegmentTooLong { len: 256, .. })),
            (format!("ok/{long_segment}"), |e| matches!(e, E::SegmentTooLong { .. })),
            (long_path, |e| matches!(e, E::TooLong { len: 1205, .. })),
        ];
        for (path, expected) in cases {
            let err = BundlePath::new(path.as_str()).expect_err(&format!("{path:?} accepted"));
            assert!(expected(&err), "{path:?} gave the wrong error: {err:?}");
        }
    }

    #[test]
    fn messages_name_the_path_and_the_rule() {
        let msg = |p: &str| BundlePath::new(p).map(|_| ()).expect_err(p).to_string();
        assert_eq!(msg("../x"), "invalid bundle path \"../x\": it must not contain '..' segments");
        assert_eq!(msg("/etc/x"), "invalid bundle path \"/etc/x\": it must be relative, not start with '/'");
        assert_eq!(msg(""), "invalid bundle path \"\": a path must not be empty");
        // Control characters are escaped, never printed raw.
        assert_eq!(msg("a\nb"), "invalid bundle path \"a\\nb\": it must not contain NUL or other control characters");
        // Huge paths are truncated in the message.
        let huge = msg(&"x".repeat(100_000));
        assert!(huge.len() < 300, "{huge}");
        assert!(huge.contains("the limit is 1024"), "{huge}");
    }

    #[test]
    fn helpers() {
        let p = BundlePath::new("a/b/c.txt").unwrap();
        assert_eq!(p.segments().collect::<Vec<_>>(), ["a", "b", "c.txt"]);
        assert_eq!(p.ancestors().collect::<Vec<_>>(), ["a", "a/b"]);
        assert_eq!(p.file_name(), "c.txt");
        assert!(!p.is_top_level());
        let top = BundlePath::new("plugin.yaml").unwrap();
        assert_eq!(top.ancestors().count(), 0);
        assert_eq!(top.file_name(), "plugin.yaml");
        assert!(top.is_top_level());
        assert_eq!(top.to_string(), "plugin.yaml");
        assert_eq!("x/y".parse::<BundlePath>().unwrap().as_str(), "x/y");
        assert_eq!(String::from(top.clone()), "plugin.yaml");
    }

    #[test]
    fn orders_by_bytes() {
        let mut paths: Vec<BundlePath> =
            ["b", "a/b", "a-c", "é", "Z", "a"].into_iter().map(|p| BundlePath::new(p).unwrap()).collect();
        paths.sort();
        let sorted: Vec<&str> = paths.iter().map(BundlePath::as_str).collect();
        assert_eq!(sorted, ["Z", "a", "a-c", "a/b", "b", "é"]);
    }

    #[test]
    fn serde_validates() {
        let ok: BundlePath = serde_json::from_str("\"prompts/a.md\"").unwrap();
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"prompts/a.md\"");
        let err = serde_json::from_str::<BundlePath>("\"../etc/passwd\"").unwrap_err();
        assert!(err.to_string().contains("'..' segments"), "{err}");
    }

    proptest::proptest! {
        /// Validation never panics, and whatever it accepts obeys the rules.
        #[test]
        fn accepted_paths_obey_the_rules(text in "\\PC{0,40}|[a./\\\\:C-]{0,12}") {
            if let Ok(path) = BundlePath::new(text.as_str()) {
                proptest::prop_assert!(!path.as_str().starts_with('/'));
                proptest::prop_assert!(!path.as_str().contains('\\'));
                proptest::prop_assert!(path.segments().all(|s| !s.is_empty() && s != "." && s != ".."));
                proptest::prop_assert!(!path.as_str().chars().any(char::is_control));
            }
        }
    }
}
