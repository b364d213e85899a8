//! The dependency invariants of ARCHITECTURE.md, checked over `cargo
//! metadata` so that a change cannot break them silently.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a failed step should panic

use std::collections::BTreeMap;

use serde_json::Value;

/// sqlx features that compile a database driver in.
const SQLX_DRIVERS: &[&str] = &["postgres", "sqlite", "sqlite-unbundled", "mysql", "any"];

/// sqlx features that compile a TLS stack in: a connection concern of the
/// engine that speaks TLS to its server (Postgres), like the driver itself.
fn is_sqlx_tls(feature: &str) -> bool {
    feature.starts_with("tls-") || feature.starts_with("runtime-tokio-") || feature.starts_with("runtime-async-std-")
}

/// package name → its dependencies (name, kind, features), every kind.
fn workspace() -> BTreeMap<String, Vec<(String, String, Vec<String>)>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml");
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline", "--manifest-path", manifest])
        .output()
        .expect("run cargo metadata");
    assert!(output.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata JSON");
    let mut packages = BTreeMap::new();
    for package in metadata["packages"].as_array().expect("packages") {
        let deps = package["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .map(|d| {
                let features = d["features"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_owned());
                (
                    d["name"].as_str().unwrap().to_owned(),
                    d["kind"].as_str().unwrap_or("normal").to_owned(),
                    features.collect(),
                )
            })
            .collect();
        packages.insert(package["name"].as_str().unwrap().to_owned(), deps);
    }
    assert!(packages.len() >= 10, "the workspace's crates: {:?}", packages.keys());
    packages
}

#[test]
fn only_the_engine_crates_enable_a_sqlx_driver_even_in_dev_dependencies() {
    for (package, deps) in workspace() {
        for (name, kind, features) in deps.iter().filter(|(name, ..)| name == "sqlx") {
            let drivers: Vec<&String> = features.iter().filter(|f| SQLX_DRIVERS.contains(&f.as_str())).collect();
            let engine = package == "hearth-store-pg" || package == "hearth-store-sqlite";
            assert!(
                engine || drivers.is_empty(),
                "{package} enables sqlx driver(s) {drivers:?} ({kind} dependency {name})"
            );
        }
    }
}

#[test]
fn only_the_postgres_engine_enables_sqlx_tls() {
    for (package, deps) in workspace() {
        for (name, kind, features) in deps.iter().filter(|(name, ..)| name == "sqlx") {
            let tls: Vec<&String> = features.iter().filter(|f| is_sqlx_tls(f)).collect();
            assert!(
                package == "hearth-store-pg" || tls.is_empty(),
                "{package} enables sqlx TLS feature(s) {tls:?} ({kind} dependency {name}); only hearth-store-pg may"
            );
        }
    }
}

#[test]
fn the_layers_depend_only_downwards() {
    let packages = workspace();
    let hearth_deps = |package: &str| -> Vec<String> {
        packages[package]
            .iter()
            .filter(|(n, k, _)| n.starts_with("hearth") && k == "normal")
            .map(|(n, ..)| n.clone())
            .collect()
    };
    assert!(hearth_deps("hearth-core").is_empty(), "hearth-core depends on no workspace crate");
    assert_eq!(hearth_deps("hearth-api"), ["hearth-core"], "hearth-api sits on core only");
    for forbidden in ["hearth-server", "hearth-store", "hearth-store-sql", "hearth-store-pg", "hearth-store-sqlite"] {
        assert!(
            !hearth_deps("hearth-client").iter().any(|d| d == forbidden),
            "hearth-client must not depend on {forbidden}"
        );
    }
    assert!(
        !packages["hearth-store"].iter().any(|(n, ..)| n == "sqlx"),
        "hearth-store (the trait and the conformance suite) has no sqlx at all"
    );
    for engine in ["hearth-store-pg", "hearth-store-sqlite"] {
        let deps = hearth_deps(engine);
        assert!(deps.contains(&"hearth-store-sql".to_owned()), "{engine} uses the one SQL store");
        assert!(!deps.iter().any(|d| d == "hearth-core"), "{engine} holds no domain logic: {deps:?}");
    }
}

/// Every `.rs` file under `crates/*/src` of the workspace, with its crate's
/// name, sorted.
fn sources() -> Vec<(String, std::path::PathBuf)> {
    fn walk(dir: &std::path::Path, files: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, files);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut sources = Vec::new();
    for entry in std::fs::read_dir(&crates).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let mut files = Vec::new();
        if dir.join("src").is_dir() {
            walk(&dir.join("src"), &mut files);
        }
        sources.extend(files.into_iter().map(|file| (name.clone(), file)));
    }
    sources.sort();
    assert!(sources.len() > 50, "the workspace's sources: {}", sources.len());
    sources
}

/// The lines of a source file that are not in its unit tests (a file's
/// `#[cfg(test)]` module comes last) and are not comments.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .take_while(|(_, line)| line.trim() != "#[cfg(test)]")
        .filter(|(_, line)| !line.trim_start().starts_with("//"))
        .map(|(index, line)| (index + 1, line))
}

/// Invariant 19: libraries do not print; the binary decides what goes to
/// stdout and stderr. (The engines' `testing` modules, test support behind a
/// feature, warn on stderr about a test database they could not drop.)
#[test]
fn libraries_do_not_print() {
    const PRINTING: &[&str] = &["println!", "print!(", "eprintln!", "eprint!(", "dbg!(", "io::stdout(", "io::stderr("];
    let mut found = Vec::new();
    for (krate, file) in sources() {
        if krate == "hearth" || file.file_name().is_some_and(|name| name == "testing.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (number, line) in code_lines(&text) {
            if PRINTING.iter().any(|call| line.contains(call)) {
                found.push(format!("{}:{number}: {}", file.display(), line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "a library prints (return it, and let crates/hearth print):\n{}", found.join("\n"));
}

/// Invariant 18: commands do not import each other; what two commands
/// share lives in `cli.rs` (flags and value parsers), `output.rs` or a
/// library. A command that reached into another (`hearth bench` took
/// `--heartbeat-ack`'s type from `serve`) ties their changes together.
#[test]
fn commands_do_not_import_each_other() {
    let commands = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/commands");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&commands).unwrap() {
        let file = entry.unwrap().path();
        let Some(own) = file.file_stem().map(|stem| stem.to_string_lossy().into_owned()) else { continue };
        if own == "mod" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (number, line) in code_lines(&text) {
            for reach in ["crate::commands::", "super::"] {
                if let Some(at) = line.find(reach) {
                    let other: String = line[at + reach.len()..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if other != own {
                        found.push(format!("{}:{number}: {}", file.display(), line.trim()));
                    }
                }
            }
        }
    }
    assert!(found.is_empty(), "a command imports another (move what they share to cli.rs):\n{}", found.join("\n"));
}

/// ARCHITECTURE "Errors": `anyhow` only where an error is reported and never
/// matched: the binary, hearth-server's `startup` (and `serve`/`migrate`,
/// which run it for the binary) and hearth-harness (whose entry points are
/// whole commands). Every other library returns a typed error, so its
/// callers branch on a variant, never on a downcast or a sentence. Tests
/// may use it.
#[test]
fn only_the_binary_startup_and_the_harness_use_anyhow() {
    const ALLOWED: &[&str] = &["hearth", "hearth-server", "hearth-harness"];
    for (package, deps) in workspace() {
        let normal = deps.iter().any(|(name, kind, _)| name == "anyhow" && kind == "normal");
        assert!(
            !normal || ALLOWED.contains(&package.as_str()),
            "{package} depends on anyhow; give it a typed error (thiserror) and leave anyhow to the binary"
        );
    }
}

/// `text` with comments, string literals and char literals blanked out
/// (newlines kept, so line numbers stay), leaving only code to count
/// braces in.
fn blank_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            loop {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !chars[..i].last().is_some_and(|p| p.is_alphanumeric() || *p == '_')
        {
            // A raw string: r"…", r#"…"#, …
            let mut hashes = 0;
            let mut j = i + 1;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let closing: Vec<char> = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
            let end = (j + 1..chars.len())
                .find(|&k| chars[k..].starts_with(&closing))
                .map_or(chars.len(), |k| k + closing.len());
            out.extend(chars[i..end].iter().map(|c| blank(*c)));
            i = end;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < chars.len() {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{7f}') or a lifetime ('a).
            let end = if next == Some('\\') {
                (i + 2..chars.len()).find(|&k| chars[k] == '\'').map(|k| k + 1)
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 3)
            } else {
                None
            };
            match end {
                Some(end) => {
                    for _ in i..end {
                        out.push(' ');
                    }
                    i = end;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// `(name, first line, lines)` of every function with a body in `text`,
/// nested ones included.
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let code = blank_literals(text);
    let bytes = code.as_bytes();
    let line_of = |at: usize| code[..at].matches('\n').count() + 1;
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(offset) = code[at..].find("fn ") {
        let start = at + offset;
        at = start + 3;
        let word_start = start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        if !word_start {
            continue;
        }
        let name: String = code[at..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if name.is_empty() {
            continue;
        }
        // The body's `{`, unless a `;` ends a declaration first.
        let Some(open) = code[at..].find(['{', ';']).map(|o| at + o) else { break };
        if bytes[open] == b';' {
            continue;
        }
        let mut depth = 0usize;
        let mut close = None;
        for (k, byte) in bytes.iter().enumerate().skip(open) {
            match byte {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        close = Some(k);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(close) = close else { break };
        let first = line_of(start);
        found.push((name, first, line_of(close) - first + 1));
    }
    found
}

/// No non-test function is 80 lines or longer: a long one is split into
/// functions a reader can hold. The ones not yet split are listed, and go
/// from the list with their split.
#[test]
fn no_function_is_80_lines_or_longer() {
    const LONGEST: usize = 79;
    /// (crate, function): the review's other long functions (and one that
    /// came later), each another branch's to split.
    const NOT_YET_SPLIT: &[(&str, &str)] = &[("hearth-core", "evaluate"), ("hearth-store-sql", "compact_events")];
    let mut long = Vec::new();
    for (krate, file) in sources() {
        let is_test_code = file.components().any(|c| c.as_os_str() == "tests")
            || file
                .file_name()
                .is_some_and(|name| name == "tests.rs" || name == "testing.rs" || name == "conformance.rs");
        if is_test_code {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        // A file's unit tests come last.
        let code = text.split("\n#[cfg(test)]").next().unwrap_or_default();
        for (name, line, lines) in functions(code) {
            if lines > LONGEST && !NOT_YET_SPLIT.contains(&(krate.as_str(), name.as_str())) {
                long.push(format!("{krate}: {}:{line}: {name} ({lines} lines)", file.display()));
            }
        }
    }
    assert!(long.is_empty(), "functions of 80 lines or more:\n{}", long.join("\n"));
}

/// The scan above sees braces only where they are code.
#[test]
fn the_function_scan_counts_lines_from_fn_to_its_closing_brace() {
    let text = r##"
trait T {
    fn declared(&self);
}

fn outer() {
    let s = "}}} not the end";
    let c = '}';
    let r = r#"} "} still not"#;
    // } nor this
    /* } nor /* nested } */ this */
    fn inner<'a>(x: &'a str) -> &'a str {
        x
    }
}
"##;
    assert_eq!(functions(text), [("outer".to_owned(), 6, 10), ("inner".to_owned(), 12, 3)]);
}
