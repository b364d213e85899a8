//! [`plugin_yaml_with_sha256`]: writing the `sha256:` line into a
//! `plugin.yaml` while keeping every other byte the author wrote.

use serde_norway::Value as Yaml;

use super::parse::parse_yaml;

/// Returns `original_yaml` with a top-level `sha256: <sha256>` line: an
/// existing top-level `sha256:` line (and any indented continuation of its
/// value) is replaced in place, otherwise the line is appended at the end.
/// Every other byte is kept, so comments and formatting the plugin author
/// wrote survive the download, and the SDK finds the hash it verifies against.
///
/// Each edit is checked by parsing the result and comparing it with the
/// original document plus the new field. When a plain line edit would change
/// the meaning (a file whose last value is a `|` block scalar without a final
/// newline, where appending a newline would change that value; a flow-style
/// `{…}` document; a `...` end marker; a hash text YAML would read as a
/// number), the line is inserted at the top instead, the value is quoted, or,
/// as a last resort, the document is re-serialized with the field set
/// (formatting and comments are then lost, the content is not). Input that is
/// not a YAML mapping at all gets the line-edited text back.
pub fn plugin_yaml_with_sha256(original_yaml: &str, sha256: &str) -> String {
    let expected = match parse_yaml(original_yaml) {
        Ok(Yaml::Mapping(mut mapping)) => {
            mapping.insert(Yaml::from("sha256"), Yaml::from(sha256));
            Some(Yaml::Mapping(mapping))
        }
        _ => None,
    };
    let acceptable = |text: &str| match (&expected, parse_yaml(text)) {
        (Some(expected), Ok(actual)) => actual == *expected,
        // The original did not parse (say, duplicate sha256 keys): settle for
        // a document that now carries the hash.
        (None, Ok(Yaml::Mapping(mapping))) => mapping.get("sha256").and_then(Yaml::as_str) == Some(sha256),
        _ => false,
    };
    let quoted = serde_json::to_string(sha256).unwrap_or_else(|_| format!("\"{}\"", sha256.escape_default()));
    let plain_is_safe = !sha256.is_empty() && sha256.bytes().all(|b| b.is_ascii_alphanumeric());

    let mut first_attempt = None;
    for value in [plain_is_safe.then_some(sha256), Some(quoted.as_str())].into_iter().flatten() {
        for placement in [Placement::End, Placement::Start] {
            let edited = set_sha256_line(original_yaml, value, placement);
            if acceptable(&edited) {
                return edited;
            }
            first_attempt.get_or_insert(edited);
        }
    }
    if let Some(Ok(text)) = expected.as_ref().map(serde_norway::to_string) {
        return text;
    }
    first_attempt.unwrap_or_else(|| set_sha256_line(original_yaml, &quoted, Placement::End))
}

/// Where [`set_sha256_line`] puts the line when the document has none yet.
#[derive(Clone, Copy)]
enum Placement {
    Start,
    End,
}

/// The line edit behind [`plugin_yaml_with_sha256`]; `value` is already in
/// YAML scalar form.
fn set_sha256_line(original: &str, value: &str, placement: Placement) -> String {
    let newline = if original.contains("\r\n") { "\r\n" } else { "\n" };
    let replacement = format!("sha256: {value}");
    let lines: Vec<&str> = original.split_inclusive('\n').collect();
    let mut out = String::with_capacity(original.len() + replacement.len() + 2);
    let mut replaced = false;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let (body, ending) = split_line_ending(line);
        let (bom, body) = match body.strip_prefix('\u{feff}') {
            Some(rest) if i == 0 => ("\u{feff}", rest),
            _ => ("", body),
        };
        i += 1;
        if !is_top_level_sha256(body) {
            out.push_str(line);
            continue;
        }
        // Keep only one sha256 line, even if the input had duplicates.
        if !replaced {
            out.push_str(bom);
            out.push_str(&replacement);
            out.push_str(ending);
            replaced = true;
        }
        // Skip the old value's continuation: following indented lines, and
        // blank lines between them, but not blank lines after the last one.
        let mut j = i;
        while j < lines.len() {
            let next = split_line_ending(lines[j]).0;
            if next.trim().is_empty() {
                j += 1;
            } else if next.starts_with([' ', '\t']) {
                j += 1;
                i = j;
            } else {
                break;
            }
        }
    }
    if replaced {
        return out;
    }
    match placement {
        Placement::End => {
            if !out.is_empty() && !out.ends_with('\n') {
                out.push_str(newline);
            }
            out.push_str(&replacement);
            out.push_str(newline);
            out
        }
        Placement::Start => {
            let (bom, rest) = match original.strip_prefix('\u{feff}') {
                Some(rest) => ("\u{feff}", rest),
                None => ("", original),
            };
            format!("{bom}{replacement}{newline}{rest}")
        }
    }
}

fn split_line_ending(line: &str) -> (&str, &str) {
    if let Some(body) = line.strip_suffix("\r\n") {
        (body, "\r\n")
    } else if let Some(body) = line.strip_suffix('\n') {
        (body, "\n")
    } else {
        (line, "")
    }
}

/// True for a line that starts a top-level `sha256` key: `sha256:`,
/// `"sha256":` or `'sha256':` at column 0, with optional spaces before the
/// colon and a space, tab or end of line after it (so `sha256sum: x` and the
/// plain scalar `sha256:x` do not match).
fn is_top_level_sha256(line: &str) -> bool {
    let rest = ["sha256", "\"sha256\"", "'sha256'"].iter().find_map(|key| line.strip_prefix(key));
    let Some(rest) = rest else { return false };
    let Some(after) = rest.trim_start_matches([' ', '\t']).strip_prefix(':') else { return false };
    after.is_empty() || after.starts_with([' ', '\t'])
}
