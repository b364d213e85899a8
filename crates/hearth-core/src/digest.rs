//! Content digests for template assets and plugins.
//!
//! Two different hashes exist because they serve two different readers:
//!
//! - [`assets_digest`] is Hearth's own digest of a template's files (PROTOCOL.md,
//!   "Assets"). Runtimes compare it with what they last fetched to decide
//!   whether to download again, so it only has to be stable and cheap.
//! - [`plugin_content_hash`] must match, bit for bit, the hash the agent SDK
//!   computes in Python when it verifies a downloaded plugin. Its exact byte
//!   layout (Python's `json.dumps`) is therefore part of the wire protocol.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

/// Name of the plugin manifest, excluded from the content hash because it
/// carries the hash itself.
pub const PLUGIN_MANIFEST: &str = "plugin.yaml";

/// Lowercase hex SHA-256 of `bytes`: the form used in every `sha256` field and
/// `ETag` of the protocol.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The template assets digest: `"sha256:"` + hex SHA-256 over the lines
/// `<path>\0<sha256-hex>\n`, sorted by path (byte order).
///
/// `files` pairs each path with the hex SHA-256 of its content (as produced by
/// [`sha256_hex`]; the hex is used as given, so pass it lowercase). The input
/// order does not matter. Paths are expected to be unique; the NUL separator
/// cannot occur in a valid [`BundlePath`](crate::bundle_path::BundlePath), so
/// distinct file lists give distinct inputs to the hash.
pub fn assets_digest<P: AsRef<str>, H: AsRef<str>>(files: &[(P, H)]) -> String {
    let mut lines: Vec<(&str, &str)> = files.iter().map(|(p, h)| (p.as_ref(), h.as_ref())).collect();
    lines.sort_unstable();
    let mut hasher = Sha256::new();
    for (path, sha) in lines {
        hasher.update(path.as_bytes());
        hasher.update([0u8]);
        hasher.update(sha.as_bytes());
        hasher.update(b"\n");
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// The SDK-compatible plugin content-manifest hash (PROTOCOL.md, "Plugins").
///
/// `files` is every regular file of the plugin as (POSIX path relative to the
/// plugin root, content). The top-level `plugin.yaml` is dropped (it carries
/// this very hash); a nested `sub/plugin.yaml` is kept, as in the SDK. The rest
/// is sorted by path and hashed as the SDK does in Python:
///
/// ```text
/// sha256(json.dumps([[relpath, sha256_hex(bytes)], ...], sort_keys=True).encode()).hexdigest()
/// ```
pub fn plugin_content_hash<P: AsRef<str>, B: AsRef<[u8]>>(files: &[(P, B)]) -> String {
    let mut entries: Vec<(&str, String)> = files
        .iter()
        .filter(|(path, _)| path.as_ref() != PLUGIN_MANIFEST)
        .map(|(path, bytes)| (path.as_ref(), sha256_hex(bytes.as_ref())))
        .collect();
    // Python sorts `str` by code point; Rust `str` ordering is UTF-8 byte order,
    // which is the same order.
    entries.sort_unstable();
    sha256_hex(python_json_manifest(&entries).as_bytes())
}

/// Serializes `[[path, sha], …]` exactly as Python's
/// `json.dumps(list, sort_keys=True)` does with its defaults: `", "` between
/// items, `ensure_ascii=True`. (`sort_keys` has no effect: there are no
/// objects.)
fn python_json_manifest(entries: &[(&str, String)]) -> String {
    let mut out = String::from("[");
    for (i, (path, sha)) in entries.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push('[');
        push_python_json_string(&mut out, path);
        out.push_str(", ");
        push_python_json_string(&mut out, sha);
        out.push(']');
    }
    out.push(']');
    out
}

/// Appends `s` as a JSON string literal the way CPython's `json` encoder does
/// with `ensure_ascii=True`: printable ASCII (space to `~`) as is, except `"`
/// and `\`; the short escapes `\n \r \t \b \f`; everything else (other control
/// characters, DEL and all non-ASCII) as lowercase `\uxxxx`, with characters
/// beyond U+FFFF written as a UTF-16 surrogate pair.
fn push_python_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    // Writing to a String cannot fail.
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle_path::BundlePath;

    #[test]
    fn sha256_hex_matches_known_vectors() {
        assert_eq!(sha256_hex(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    // python3 -c 'import hashlib; h=lambda b: hashlib.sha256(b).hexdigest();
    //   fs={"config.yaml": b"name: demo\n", "prompts/system.md": b"You are helpful.\n"};
    //   print("sha256:"+hashlib.sha256(b"".join(p.encode()+b"\0"+h(fs[p]).encode()+b"\n" for p in sorted(fs))).hexdigest())'
    const ASSETS_VECTOR: &str = "sha256:e4d1aa7fa3ad843a7155942b67e5ff063f27330f2e291aa1dc6859a6bfaece40";

    #[test]
    fn assets_digest_vector_and_order_independence() {
        let config = sha256_hex(b"name: demo\n");
        let prompt = sha256_hex(b"You are helpful.\n");
        let forward = [("config.yaml", config.as_str()), ("prompts/system.md", prompt.as_str())];
        let backward = [("prompts/system.md", prompt.as_str()), ("config.yaml", config.as_str())];
        assert_eq!(assets_digest(&forward), ASSETS_VECTOR);
        assert_eq!(assets_digest(&backward), ASSETS_VECTOR);
        // BundlePath works as the path type too.
        let typed = [
            (BundlePath::new("prompts/system.md").unwrap(), prompt.clone()),
            (BundlePath::new("config.yaml").unwrap(), config.clone()),
        ];
        assert_eq!(assets_digest(&typed), ASSETS_VECTOR);
    }

    #[test]
    fn assets_digest_edge_cases() {
        // python3 -c 'import hashlib; print("sha256:"+hashlib.sha256(b"").hexdigest())'
        let empty: [(&str, &str); 0] = [];
        assert_eq!(assets_digest(&empty), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        // Content and path both matter.
        let a = assets_digest(&[("a", sha256_hex(b"1"))]);
        assert_ne!(a, assets_digest(&[("a", sha256_hex(b"2"))]));
        assert_ne!(a, assets_digest(&[("b", sha256_hex(b"1"))]));
        // Sorting is by bytes: "a-b" (0x2d) sorts before "a/b" (0x2f).
        let h = sha256_hex(b"x");
        let expected = {
            let mut hasher = Sha256::new();
            hasher.update(format!("a-b\0{h}\na/b\0{h}\n"));
            format!("sha256:{}", hex::encode(hasher.finalize()))
        };
        assert_eq!(assets_digest(&[("a/b", h.as_str()), ("a-b", h.as_str())]), expected);
    }

    /// Shorthand for building a plugin file list.
    fn files<'a>(list: &[(&'a str, &'a [u8])]) -> Vec<(&'a str, &'a [u8])> {
        list.to_vec()
    }

    // Each vector below was computed with the SDK's algorithm in Python:
    //
    // python3 -c 'import json,hashlib; h=lambda b: hashlib.sha256(b).hexdigest(); fs=FILES;
    //   m=[[p, h(fs[p])] for p in sorted(fs) if p != "plugin.yaml"];
    //   print(hashlib.sha256(json.dumps(m, sort_keys=True).encode()).hexdigest())'
    //
    // with FILES replaced by the dict shown above each test.

    // FILES = {"plugin.yaml": b"name: demo\nversion: 1.0.0\n", "README.md": b"# Demo\n",
    //          "main.py": b"print(\"hi\")\n"}
    #[test]
    fn vector_simple_plugin() {
        let list = files(&[
            ("plugin.yaml", b"name: demo\nversion: 1.0.0\n"),
            ("README.md", b"# Demo\n"),
            ("main.py", b"print(\"hi\")\n"),
        ]);
        assert_eq!(plugin_content_hash(&list), "9f14d6c05e90d8c0bfa6b88f9ae5f7ad5663e67e9019e54d0d1a1953de6bd99f");
        // The top-level plugin.yaml does not take part: changing it (e.g. to
        // write the hash into it) leaves the hash unchanged.
        let mut changed = list.clone();
        changed[0].1 = b"name: demo\nversion: 1.0.0\nsha256: abc\n";
        assert_eq!(plugin_content_hash(&changed), "9f14d6c05e90d8c0bfa6b88f9ae5f7ad5663e67e9019e54d0d1a1953de6bd99f");
        // Input order does not matter.
        let mut reversed = list.clone();
        reversed.reverse();
        assert_eq!(plugin_content_hash(&reversed), "9f14d6c05e90d8c0bfa6b88f9ae5f7ad5663e67e9019e54d0d1a1953de6bd99f");
    }

    // FILES = {"plugin.yaml": b"name: nested\nversion: 2\n", "skills/a/SKILL.md": b"# A\n",
    //          "skills/b/run.sh": b"#!/bin/sh\necho b\n", "lib/util.py": b"",
    //          "sub/plugin.yaml": b"kept: true\n", "a-b": b"dash\n"}
    #[test]
    fn vector_nested_paths() {
        let list = files(&[
            ("plugin.yaml", b"name: nested\nversion: 2\n"),
            ("skills/a/SKILL.md", b"# A\n"),
            ("skills/b/run.sh", b"#!/bin/sh\necho b\n"),
            ("lib/util.py", b""),
            ("sub/plugin.yaml", b"kept: true\n"),
            ("a-b", b"dash\n"),
        ]);
        assert_eq!(plugin_content_hash(&list), "8316edbdd012a7b799c4699c92a9c6b821c2ca08cd1772ad18398ab9769521d7");
    }

    // FILES = {"plugin.yaml": b"name: intl\nversion: 1\n", "caf\u00e9.md": b"accent\n",
    //          "emoji/\U0001F600.txt": b"grin\n", "\u65e5\u672c/\u8a9e.txt": b"cjk\n"}
    #[test]
    fn vector_non_ascii_names() {
        let list = files(&[
            ("plugin.yaml", b"name: intl\nversion: 1\n"),
            ("café.md", b"accent\n"),
            ("emoji/😀.txt", b"grin\n"),
            ("日本/語.txt", b"cjk\n"),
        ]);
        assert_eq!(plugin_content_hash(&list), "60ffc9f54d297de8e10e3397398b572765d3e1c674617dce707a8ee9037806a0");
    }

    // FILES = {"plugin.yaml": b"name: bare\nversion: 1\n"}   (json.dumps([]) == "[]")
    #[test]
    fn vector_only_manifest() {
        let list = files(&[("plugin.yaml", b"name: bare\nversion: 1\n")]);
        assert_eq!(plugin_content_hash(&list), "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945");
        assert_eq!(plugin_content_hash(&list), sha256_hex(b"[]"));
        let none: [(&str, &[u8]); 0] = [];
        assert_eq!(plugin_content_hash(&none), sha256_hex(b"[]"));
    }

    // FILES = {"q\"uote": b"1", "back\\slash": b"2", "ctl\n\r\t\b\f\x01\x1f\x7f": b"3",
    //          "sep\u2028\u00a0\uffff": b"4", "tilde~ space": b"5"}
    #[test]
    fn vector_escapes() {
        let list = files(&[
            ("q\"uote", b"1"),
            ("back\\slash", b"2"),
            ("ctl\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f}", b"3"),
            ("sep\u{2028}\u{a0}\u{ffff}", b"4"),
            ("tilde~ space", b"5"),
        ]);
        assert_eq!(plugin_content_hash(&list), "b37b517ae715ff6ea4a5794fbbe38ce49a6dc35d2a05d86cb834f9b5c99eba0f");
    }

    #[test]
    fn json_layout_matches_python() {
        // python3 -c 'import json; print(json.dumps([["caf\u00e9/\U0001F600", "ab"], ["x", "cd"]], sort_keys=True))'
        let entries = [("café/😀", "ab".to_string()), ("x", "cd".to_string())];
        assert_eq!(python_json_manifest(&entries), r#"[["caf\u00e9/\ud83d\ude00", "ab"], ["x", "cd"]]"#);
        assert_eq!(python_json_manifest(&[]), "[]");
        // python3 -c 'import json; print(json.dumps("q\"b\\n\n\r\t\b\f\x00\x1f\x7f~ "))'
        let mut out = String::new();
        push_python_json_string(&mut out, "q\"b\\n\n\r\t\u{8}\u{c}\u{0}\u{1f}\u{7f}~ ");
        assert_eq!(out, r#""q\"b\\n\n\r\t\b\f\u0000\u001f\u007f~ ""#);
    }
}
