use serde_json::{json, Value as Json};
use serde_norway::Value as Yaml;

use super::parse::parse_yaml;
use super::*;

/// (yaml, name, runtime, model, plugins, settings)
type AcceptCase<'a> = (&'a str, &'a str, Option<&'a str>, Option<&'a str>, &'a [&'a str], Json);

fn config(yaml: &str) -> Result<TemplateConfig, ManifestError> {
    TemplateConfig::parse(yaml)
}

fn plugin(yaml: &str) -> Result<PluginManifest, ManifestError> {
    PluginManifest::parse(yaml)
}

fn names(list: &[&str]) -> Vec<PluginName> {
    list.iter().map(|n| PluginName::new(*n).unwrap()).collect()
}

#[test]
fn plugin_names() {
    let long_ok = format!("a{}", "b".repeat(127));
    let long_bad = format!("a{}", "b".repeat(128));
    for ok in ["a", "0", "git", "my-plugin", "my_plugin", "v1.2", "a.", "a-", "9lives", "a..b", long_ok.as_str()] {
        assert!(is_valid_plugin_name(ok), "{ok:?} rejected");
        assert_eq!(PluginName::new(ok).unwrap().as_str(), ok);
    }
    for bad in
        ["", ".", "..", ".hidden", "-x", "_x", "A", "myPlugin", "a/b", "a b", "a\\b", "é", "a\n", "a:b", &long_bad]
    {
        assert!(!is_valid_plugin_name(bad), "{bad:?} accepted");
        assert!(PluginName::new(bad).is_err());
    }
    let msg = PluginName::new("Bad/Name").unwrap_err().to_string();
    assert!(msg.starts_with("invalid plugin name \"Bad/Name\": it must match ^[a-z0-9][a-z0-9._-]{0,127}$"), "{msg}");
    assert!(serde_json::from_str::<PluginName>("\"../x\"").is_err());
    assert_eq!(serde_json::from_str::<PluginName>("\"ok\"").unwrap().as_str(), "ok");
    assert_eq!(serde_json::to_string(&PluginName::new("ok").unwrap()).unwrap(), "\"ok\"");
}

#[test]
fn nul_characters_are_refused_with_their_field() {
    let err = TemplateConfig::parse("name: t\nmodel: \"a\\0b\"\n").unwrap_err();
    assert!(matches!(&err, ManifestError::NulCharacter { field, .. } if field == "model"), "{err:?}");
    assert!(err.to_string().contains("`model` holds a NUL character"), "{err}");
    let err = TemplateConfig::parse("name: t\nenv:\n  list: [ok, \"x\\0\"]\n").unwrap_err();
    assert!(matches!(&err, ManifestError::NulCharacter { field, .. } if field == "env.list[1]"), "{err:?}");
    let err = TemplateConfig::parse("name: t\n\"k\\0\": 1\n").unwrap_err();
    assert!(matches!(&err, ManifestError::NulCharacter { .. }), "{err:?}");
    let err = PluginManifest::parse("name: p\nversion: \"1\\0\"\n").unwrap_err();
    assert!(matches!(&err, ManifestError::NulCharacter { field, .. } if field == "version"), "{err:?}");
    assert!(PluginManifest::parse("name: p\nversion: \"1.0\"\ndescription: \"a\\tb\"\n").is_ok());
}

#[test]
fn config_full_example() {
    let yaml = "\
# A research agent
name: Researcher
runtime: hearth-agent
model: claude-sonnet
plugins:
  - web-search
  - notes.v2
temperature: 0.2
max_tokens: 4096
extra:
  HOME: /srv
  flags: [a, b]
  1: one
  true: yes-key
  ~: null-key
";
    let parsed = config(yaml).unwrap();
    assert_eq!(parsed.name, "Researcher");
    assert_eq!(parsed.runtime.as_deref(), Some("hearth-agent"));
    assert_eq!(parsed.model.as_deref(), Some("claude-sonnet"));
    assert_eq!(parsed.plugins, names(&["web-search", "notes.v2"]));
    assert_eq!(
        parsed.settings,
        json!({
            "temperature": 0.2,
            "max_tokens": 4096,
            "extra": {"HOME": "/srv", "flags": ["a", "b"], "1": "one", "true": "yes-key", "null": "null-key"},
        })
    );
}

#[test]
fn config_accepts() {
    let cases: &[AcceptCase] = &[
        ("name: x\n", "x", None, None, &[], json!({})),
        ("name: x", "x", None, None, &[], json!({})),
        ("name: 'quoted: yes'\n", "quoted: yes", None, None, &[], json!({})),
        ("{name: flow, plugins: [a, b]}", "flow", None, None, &["a", "b"], json!({})),
        ("---\nname: x\n...\n", "x", None, None, &[], json!({})),
        ("name: x\nruntime:\nmodel: ~\nplugins:\n", "x", None, None, &[], json!({})),
        ("name: x\nruntime: ''\nmodel: '  '\n", "x", None, None, &[], json!({})),
        ("name: x\nplugins: []\n", "x", None, None, &[], json!({})),
        ("name: x\nruntime: r\nmodel: m\n", "x", Some("r"), Some("m"), &[], json!({})),
        ("name: x\nextra: null\n", "x", None, None, &[], json!({"extra": null})),
        ("name: x\nbig: 18446744073709551615\n", "x", None, None, &[], json!({"big": u64::MAX})),
        ("name: x\nneg: -3\n", "x", None, None, &[], json!({"neg": -3})),
        ("name: x\ntagged: !secret abc\n", "x", None, None, &[], json!({"tagged": "abc"})),
        ("name: x\nmulti: |\n  a\n  b\n", "x", None, None, &[], json!({"multi": "a\nb\n"})),
        (
            "name: x\nbase: &b {k: 1}\nderived:\n  <<: *b\n  j: 2\n",
            "x",
            None,
            None,
            &[],
            json!({"base": {"k": 1}, "derived": {"k": 1, "j": 2}}),
        ),
        ("name: Ünïcode 😀\n", "Ünïcode 😀", None, None, &[], json!({})),
    ];
    for (yaml, name, runtime, model, plugins, settings) in cases {
        let parsed = config(yaml).unwrap_or_else(|e| panic!("{yaml:?} rejected: {e}"));
        assert_eq!(parsed.name, *name, "{yaml:?}");
        assert_eq!(parsed.runtime.as_deref(), *runtime, "{yaml:?}");
        assert_eq!(parsed.model.as_deref(), *model, "{yaml:?}");
        assert_eq!(parsed.plugins, names(plugins), "{yaml:?}");
        assert_eq!(parsed.settings, *settings, "{yaml:?}");
    }
    // Name length is counted in characters, like workspace names.
    assert!(config(&format!("name: {}\n", "é".repeat(255))).is_ok());
}

#[test]
fn config_rejects_with_clear_messages() {
    let too_long = format!("name: {}\n", "x".repeat(256));
    let cases: Vec<(&str, &str)> = vec![
        ("", "config.yaml: the document must be a mapping of fields to values, but it is empty"),
        ("# only a comment\n", "config.yaml: the document must be a mapping of fields to values, but it is empty"),
        ("- a\n- b\n", "config.yaml: the document must be a mapping of fields to values, but it is a list"),
        ("just text\n", "config.yaml: the document must be a mapping of fields to values, but it is a string"),
        ("runtime: r\n", "config.yaml: the required field `name` is missing"),
        ("name:\n", "config.yaml: the required field `name` is missing"),
        ("name: 42\n", "config.yaml: the field `name` must be a string, but it is a number"),
        ("name: [a]\n", "config.yaml: the field `name` must be a string, but it is a list"),
        ("name: '  '\n", "config.yaml: the field `name` must not be empty"),
        ("name: \"a\\nb\"\n", "config.yaml: the field `name` must not contain control characters"),
        (&too_long, "config.yaml: the field `name` must be at most 255 characters"),
        ("name: x\nruntime: 3\n", "config.yaml: the field `runtime` must be a string, but it is a number"),
        ("name: x\nmodel: {a: 1}\n", "config.yaml: the field `model` must be a string, but it is a mapping"),
        ("name: x\nplugins: web\n", "config.yaml: the field `plugins` must be a list of plugin names, but it is a string"),
        ("name: x\nplugins: [a, 3]\n", "config.yaml: the field `plugins[1]` must be a string, but it is a number"),
        (
            "name: x\nplugins: [ok, Bad]\n",
            "config.yaml: the field `plugins[1]` holds the plugin name \"Bad\", which does not match ^[a-z0-9][a-z0-9._-]{0,127}$",
        ),
        (
            "name: x\nplugins: ['../evil']\n",
            "config.yaml: the field `plugins[0]` holds the plugin name \"../evil\", which does not match ^[a-z0-9][a-z0-9._-]{0,127}$",
        ),
        ("name: x\nplugins: [a, b, a]\n", "config.yaml: the plugin \"a\" is listed more than once in `plugins`"),
        ("name: x\nf: .nan\n", "config.yaml: the field `f` holds .nan, which JSON cannot represent"),
        ("name: x\nextra:\n  l: [1, -.inf]\n", "config.yaml: the field `extra.l[1]` holds -.inf, which JSON cannot represent"),
        (
            "name: x\nextra:\n  ? [1, 2]\n  : v\n",
            "config.yaml: the key at `extra.?` must be a string, number, boolean or null, but it is a list",
        ),
        ("name: x\nextra:\n  1: a\n  '1': b\n", "config.yaml: the key `extra.1` appears twice once keys are converted to strings"),
    ];
    for (yaml, expected) in cases {
        let err = config(yaml).map(|_| ()).expect_err(yaml);
        assert_eq!(err.to_string(), expected, "{yaml:?}");
    }
}

#[test]
fn config_inf_nan_messages_use_yaml_spelling() {
    // Pin the exact spelling the YAML library uses for special floats, so the
    // table above documents reality.
    let err = config("name: x\nf: .inf\n").unwrap_err();
    assert!(matches!(err, ManifestError::NonFiniteNumber { ref field, .. } if field == "f"), "{err}");
}

#[test]
fn syntax_errors_carry_line_and_column() {
    let cases = [
        ("name: x\nplugins: [a\n", 3, 1),
        ("name: x\n  bad: indent\n", 2, 6),
        ("name: x\nname: y\n", 1, 1),
        ("name: x\n\tbad: tab\n", 2, 1),
        ("name: *missing\n", 1, 7),
        ("name: \"unterminated\n", 2, 1),
    ];
    for (yaml, line, column) in cases {
        let err = config(yaml).map(|_| ()).expect_err(yaml);
        match &err {
            ManifestError::Syntax { file, line: l, column: c, message } => {
                assert_eq!((*file, *l, *c), ("config.yaml", line, column), "{yaml:?}: {err}");
                assert!(!message.contains(&format!("at line {line} column {column}")), "{err}");
                assert!(!message.is_empty());
            }
            other => panic!("{yaml:?}: expected a syntax error, got {other:?}"),
        }
        let text = err.to_string();
        assert!(text.starts_with(&format!("config.yaml: invalid YAML at line {line} column {column}: ")), "{text}");
    }
    // The exact shape, once.
    assert_eq!(
        config("name: x\n  bad: indent\n").unwrap_err().to_string(),
        "config.yaml: invalid YAML at line 2 column 6: mapping values are not allowed in this context"
    );
    assert_eq!(
        config("name: x\nname: y\n").unwrap_err().to_string(),
        "config.yaml: invalid YAML at line 1 column 1: duplicate entry with key \"name\""
    );
    // Several documents: the library gives no position.
    assert_eq!(
        config("name: a\n---\nname: b\n").unwrap_err().to_string(),
        "config.yaml: invalid YAML: deserializing from YAML containing more than one document is not supported"
    );
}

#[test]
fn plugin_accepts() {
    let cases: &[(&str, &str, &str, Option<&str>)] = &[
        ("name: demo\nversion: 1.0.0\n", "demo", "1.0.0", None),
        ("name: demo\nversion: '2'\ndescription: Does things.\n", "demo", "2", Some("Does things.")),
        ("name: demo\nversion: 1.0\n", "demo", "1.0", None),
        ("name: demo\nversion: 1.10\n", "demo", "1.10", None),
        ("name: demo\nversion: 3\n", "demo", "3", None),
        ("name: demo\nversion: 2.5 # comment\n", "demo", "2.5", None),
        ("name: demo\nversion: 1e3\n", "demo", "1e3", None),
        ("name: demo\nversion: ' v1 '\n", "demo", "v1", None),
        ("name: demo\nversion: 1\ndescription:\n", "demo", "1", None),
        ("name: demo\nversion: 1\nsha256: deadbeef\n", "demo", "1", None),
        ("name: demo\nversion: 1\nsha256: 42\nauthor: me\ntags: [x]\n", "demo", "1", None),
        ("{name: flow, version: 0.1}", "flow", "0.1", None),
        ("\u{feff}sha256: x\nname: bom\nversion: 1.10\n", "bom", "1.10", None),
        ("name: demo\nversion: 1\n? [weird, key]\n: ignored\n", "demo", "1", None),
    ];
    for (yaml, name, version, description) in cases {
        let parsed = plugin(yaml).unwrap_or_else(|e| panic!("{yaml:?} rejected: {e}"));
        assert_eq!(parsed.name.as_str(), *name, "{yaml:?}");
        assert_eq!(parsed.version, *version, "{yaml:?}");
        assert_eq!(parsed.description.as_deref(), *description, "{yaml:?}");
    }
}

#[test]
fn plugin_rejects_with_clear_messages() {
    let cases = [
        ("", "plugin.yaml: the document must be a mapping of fields to values, but it is empty"),
        ("version: 1\n", "plugin.yaml: the required field `name` is missing"),
        ("name: demo\n", "plugin.yaml: the required field `version` is missing"),
        ("name: demo\nversion:\n", "plugin.yaml: the required field `version` is missing"),
        ("name: demo\nversion: ''\n", "plugin.yaml: the field `version` must not be empty"),
        (
            "name: demo\nversion: true\n",
            "plugin.yaml: the field `version` must be a string (or a number such as 1.0), but it is a boolean",
        ),
        (
            "name: demo\nversion: [1]\n",
            "plugin.yaml: the field `version` must be a string (or a number such as 1.0), but it is a list",
        ),
        ("name: 7\nversion: 1\n", "plugin.yaml: the field `name` must be a string, but it is a number"),
        (
            "name: My Plugin\nversion: 1\n",
            "plugin.yaml: the field `name` holds the plugin name \"My Plugin\", which does not match ^[a-z0-9][a-z0-9._-]{0,127}$",
        ),
        (
            "name: demo\nversion: 1\ndescription: [a]\n",
            "plugin.yaml: the field `description` must be a string, but it is a list",
        ),
        ("name: demo\nversion: 1\nversion: 2\n", "plugin.yaml: invalid YAML at line 1 column 1: duplicate entry with key \"version\""),
        ("name: [demo\n", "plugin.yaml: invalid YAML at line 2 column 1: did not find expected ',' or ']' while parsing a flow sequence at line 1 column 7"),
    ];
    for (yaml, expected) in cases {
        let err = plugin(yaml).map(|_| ()).expect_err(yaml);
        assert_eq!(err.to_string(), expected, "{yaml:?}");
    }
}

const HASH: &str = "9f14d6c05e90d8c0bfa6b88f9ae5f7ad5663e67e9019e54d0d1a1953de6bd99f";

#[test]
fn sha256_line_is_appended_or_replaced() {
    let cases: Vec<(&str, String)> = vec![
        // Appended, with a newline added when the file lacks a final one.
        ("name: demo\nversion: 1\n", format!("name: demo\nversion: 1\nsha256: {HASH}\n")),
        ("name: demo\nversion: 1", format!("name: demo\nversion: 1\nsha256: {HASH}\n")),
        // CRLF files stay CRLF.
        ("name: demo\r\nversion: 1\r\n", format!("name: demo\r\nversion: 1\r\nsha256: {HASH}\r\n")),
        // Replaced in place; comments and spacing elsewhere untouched.
        (
            "# My plugin\nname:   demo   # the name\nsha256: old\nversion: 1\n",
            format!("# My plugin\nname:   demo   # the name\nsha256: {HASH}\nversion: 1\n"),
        ),
        ("sha256: old\nname: demo\nversion: 1\n", format!("sha256: {HASH}\nname: demo\nversion: 1\n")),
        ("name: demo\nversion: 1\nsha256: old", format!("name: demo\nversion: 1\nsha256: {HASH}")),
        ("name: demo\nversion: 1\nsha256:\n", format!("name: demo\nversion: 1\nsha256: {HASH}\n")),
        ("name: demo\nversion: 1\n\"sha256\" : 'x'\n", format!("name: demo\nversion: 1\nsha256: {HASH}\n")),
        ("name: demo\nversion: 1\nsha256: old\r\n", format!("name: demo\nversion: 1\nsha256: {HASH}\r\n")),
        // A multi-line old value is removed whole; the blank line after it stays.
        (
            "name: demo\nsha256: >\n  abc\n\n  def\n\nversion: 1\n",
            format!("name: demo\nsha256: {HASH}\n\nversion: 1\n"),
        ),
        // Duplicate sha256 lines collapse to one.
        ("sha256: a\nname: demo\nsha256: b\nversion: 1\n", format!("sha256: {HASH}\nname: demo\nversion: 1\n")),
        // Nested or look-alike keys are not touched.
        (
            "name: demo\nversion: 1\nfiles:\n  sha256: nested\nsha256sum: other\n",
            format!("name: demo\nversion: 1\nfiles:\n  sha256: nested\nsha256sum: other\nsha256: {HASH}\n"),
        ),
        // A byte-order mark is preserved.
        ("\u{feff}sha256: old\nname: demo\n", format!("\u{feff}sha256: {HASH}\nname: demo\n")),
        ("\u{feff}name: demo\n", format!("\u{feff}name: demo\nsha256: {HASH}\n")),
    ];
    for (input, expected) in cases {
        assert_eq!(plugin_yaml_with_sha256(input, HASH), expected, "{input:?}");
        // The result is still a valid plugin.yaml carrying the hash.
        let reparsed = parse_yaml(&expected).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(reparsed.get("sha256").and_then(Yaml::as_str), Some(HASH), "{input:?}");
    }
}

#[test]
fn sha256_edit_keeps_the_manifest_equal() {
    let original = "name: demo # c\nversion: 1.10\ndescription: |\n  Multi\n  line\n";
    let edited = plugin_yaml_with_sha256(original, HASH);
    assert!(edited.starts_with(original));
    assert_eq!(plugin(&edited).unwrap(), plugin(original).unwrap());
}

#[test]
fn sha256_edit_falls_back_when_a_line_edit_is_not_enough() {
    // A hash text YAML would read as a number gets quoted.
    let digits = "1".repeat(64);
    let edited = plugin_yaml_with_sha256("name: demo\nversion: 1\n", &digits);
    assert_eq!(edited, format!("name: demo\nversion: 1\nsha256: \"{digits}\"\n"));
    // Odd text cannot break out of its line.
    let edited = plugin_yaml_with_sha256("name: demo\n", "a\nversion: evil");
    assert_eq!(edited, "name: demo\nsha256: \"a\\nversion: evil\"\n");
    // A trailing `|` block scalar without a final newline: appending a
    // newline would change the description, so the line goes on top.
    let original = "name: demo\nversion: 1\ndescription: |\n  one\n  two";
    let edited = plugin_yaml_with_sha256(original, HASH);
    assert_eq!(edited, format!("sha256: {HASH}\n{original}"));
    assert_eq!(plugin(&edited).unwrap(), plugin(original).unwrap());
    // A flow-style document is re-serialized, with the same content.
    let edited = plugin_yaml_with_sha256("{name: demo, version: 1}\n", HASH);
    let value: Yaml = serde_norway::from_str(&edited).unwrap();
    assert_eq!(value.get("sha256").and_then(Yaml::as_str), Some(HASH));
    assert_eq!(value.get("name").and_then(Yaml::as_str), Some("demo"));
    // Not YAML at all: best effort, no panic.
    let edited = plugin_yaml_with_sha256("name: [broken\n", HASH);
    assert!(edited.ends_with(&format!("sha256: {HASH}\n")));
}

proptest::proptest! {
    #[test]
    fn parsers_never_panic(text in "\\PC*") {
        let _ = TemplateConfig::parse(&text);
        let _ = PluginManifest::parse(&text);
        let _ = plugin_yaml_with_sha256(&text, HASH);
    }

    /// Whatever a valid plugin.yaml looks like, writing the hash keeps the
    /// manifest and makes the hash readable.
    #[test]
    fn sha256_edit_preserves_valid_manifests(
        blocks in proptest::sample::subsequence(
            vec![
                String::new(),
                "# comment".to_owned(),
                "extra: [1, 2]".to_owned(),
                "nested:\n  sha256: inner".to_owned(),
            ],
            0..=4,
        ),
        name in "name: [a-z]{1,4}",
        version in "version: ([0-9]{1,2}(\\.[0-9]{1,2}){0,2}|'v[0-9]')",
        sha in proptest::option::of(proptest::prop_oneof![
            "sha256: [a-z0-9]{1,4}",
            proptest::strategy::Just("sha256:".to_owned()),
            proptest::strategy::Just("\"sha256\" : x".to_owned()),
            proptest::strategy::Just("sha256: >\n  abc\n\n  def".to_owned()),
        ]),
        description in proptest::option::of(proptest::prop_oneof![
            "description: [a-z ]{0,6}",
            proptest::strategy::Just("description: |\n  one\n\n  two".to_owned()),
        ]),
        seed in proptest::collection::vec(proptest::num::usize::ANY, 8),
        crlf in proptest::bool::ANY,
        final_newline in proptest::bool::ANY,
    ) {
        let mut parts: Vec<String> = blocks;
        parts.extend([Some(name), Some(version), sha, description].into_iter().flatten());
        // Deterministic shuffle driven by the generated seed.
        for (i, r) in seed.iter().enumerate() {
            let len = parts.len();
            parts.swap(i % len, r % len);
        }
        let newline = if crlf { "\r\n" } else { "\n" };
        let mut text = parts.join("\n").replace('\n', newline);
        if final_newline {
            text.push_str(newline);
        }
        let before = PluginManifest::parse(&text);
        proptest::prop_assert!(before.is_ok(), "generator produced an invalid manifest: {:?}", text);
        let edited = plugin_yaml_with_sha256(&text, HASH);
        proptest::prop_assert_eq!(PluginManifest::parse(&edited).ok(), before.ok(), "{:?} -> {:?}", text, edited);
        let value = parse_yaml(&edited).ok();
        proptest::prop_assert_eq!(value.as_ref().and_then(|v| v.get("sha256")).and_then(Yaml::as_str), Some(HASH));
        // A plain line edit was enough: apart from sha256 lines (and the
        // old value's continuation and blank lines) the author's text is kept.
        let kept = |t: &str| -> Vec<String> {
            t.lines()
                .filter(|l| !l.trim().is_empty() && !l.contains("sha256"))
                .filter(|l| !l.starts_with("  abc") && !l.starts_with("  def"))
                .map(str::to_owned)
                .collect()
        };
        proptest::prop_assert_eq!(kept(&edited), kept(&text));
    }
}

/// `image:`, `command:` and `env:`: how the agent runs (RUNTIMES.md).
#[test]
fn program_fields_are_parsed_and_kept_out_of_the_settings() {
    let parsed = config(
        "name: t\nimage: ghcr.io/acme/agent:1.2\ncommand: [python, -m, agent, 3]\nenv:\n  MODE: fast\n  RETRIES: 3\n  DEBUG: true\n  EMPTY:\nother: 1\n",
    )
    .unwrap();
    assert_eq!(parsed.image.as_deref(), Some("ghcr.io/acme/agent:1.2"));
    assert_eq!(parsed.command, Some(Command::Argv(vec!["python".into(), "-m".into(), "agent".into(), "3".into()])));
    let env: Vec<(&str, &str)> = parsed.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(env, [("DEBUG", "true"), ("EMPTY", ""), ("MODE", "fast"), ("RETRIES", "3")]);
    assert_eq!(parsed.settings, json!({"other": 1}), "the program's fields are not settings");

    let shell = config("name: t\ncommand: \"echo hi && sleep 1\"\n").unwrap();
    assert_eq!(shell.command.as_ref().unwrap().argv(), ["/bin/sh", "-c", "echo hi && sleep 1"]);
    let none = config("name: t\nimage: ''\ncommand:\n").unwrap();
    assert_eq!((none.image, none.command, none.env.len()), (None, None, 0), "blank and null are absent");
}

#[test]
fn program_fields_are_refused_naming_the_field() {
    let many_args = format!("name: t\ncommand: [{}]\n", vec!["a"; MAX_COMMAND_ARGS + 1].join(", "));
    let long_value = format!("name: t\nenv:\n  A: {}\n", "x".repeat(MAX_ENV_VALUE_BYTES + 1));
    let long_image = format!("name: t\nimage: {}\n", "a".repeat(MAX_IMAGE_BYTES + 1));
    let cases: Vec<(String, &str)> = vec![
        ("name: t\nimage: [a]\n".into(), "`image` must be a string"),
        ("name: t\nimage: 'acme/agent latest'\n".into(), "`image` holds ' '"),
        (long_image, "`image` is 513 bytes"),
        ("name: t\ncommand: []\n".into(), "`command` must name a program: the list is empty"),
        ("name: t\ncommand: '  '\n".into(), "`command` must not be empty"),
        ("name: t\ncommand: ['', x]\n".into(), "`command[0]` must name a program"),
        ("name: t\ncommand: [run, {a: 1}]\n".into(), "`command[1]` must be a string, but it is a mapping"),
        ("name: t\ncommand: {a: 1}\n".into(), "`command` must be a list of strings or a string"),
        (many_args, "`command` has 257 arguments"),
        ("name: t\ncommand: \"a\\0b\"\n".into(), "`command` holds a NUL character"),
        ("name: t\nenv: [A]\n".into(), "`env` must be a mapping of names to values, but it is a list"),
        ("name: t\nenv:\n  1A: x\n".into(), "`env.1A` is not a variable name"),
        ("name: t\nenv:\n  A-B: x\n".into(), "`env.A-B` is not a variable name"),
        ("name: t\nenv:\n  HEARTH_SERVER: x\n".into(), "`env.HEARTH_SERVER` is set by hearth agent itself"),
        ("name: t\nenv:\n  WORKSPACE_ID: x\n".into(), "`env.WORKSPACE_ID` is set by hearth agent itself"),
        ("name: t\nenv:\n  A: [1]\n".into(), "`env.A` must be a string, number or boolean, but it is a list"),
        (long_value, "`env.A` is 32769 bytes"),
    ];
    for (yaml, expected) in cases {
        let error = config(&yaml).expect_err(&yaml).to_string();
        assert!(error.starts_with("config.yaml: "), "{error}");
        assert!(error.contains(expected), "{yaml:?}: {error}");
    }
}
