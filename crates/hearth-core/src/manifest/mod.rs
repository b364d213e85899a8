//! Template `config.yaml` and plugin `plugin.yaml`: parsing and validation.
//!
//! Both files are written by people, so every rejection must say which file,
//! which field and what is wrong (with line and column for YAML syntax), in one
//! sentence an operator can act on. Parsing goes through a generic YAML value
//! first and then checks fields by hand, rather than deriving `Deserialize` on
//! the target types, because serde's derived messages ("invalid type: map,
//! expected a string") do not name fields well enough.
//!
//! The plugin-name rule is in `name`, parsing in `parse`, and the `sha256:`
//! line editor used on download in `yaml_edit`; everything public is
//! re-exported here, so callers write `hearth_core::manifest::…`.

mod name;
mod parse;
mod program;
mod yaml_edit;

pub use name::{is_valid_plugin_name, InvalidPluginName, PluginName, MAX_PLUGIN_NAME_BYTES, PLUGIN_NAME_PATTERN};
pub use parse::{ManifestError, PluginManifest, TemplateConfig};
pub use program::{
    Command, MAX_COMMAND_ARGS, MAX_COMMAND_BYTES, MAX_ENV_ENTRIES, MAX_ENV_NAME_BYTES, MAX_ENV_VALUE_BYTES,
    MAX_IMAGE_BYTES, RESERVED_ENV_NAMES, RESERVED_ENV_PREFIX,
};
pub use yaml_edit::plugin_yaml_with_sha256;

/// File name of a template's manifest.
pub const TEMPLATE_CONFIG: &str = "config.yaml";

/// Quotes user text for an error message: escaped (so control characters cannot
/// corrupt logs) and truncated, since messages reach HTTP responses.
fn quote(text: &str) -> String {
    const MAX: usize = 120;
    if text.chars().count() <= MAX {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(MAX).collect();
        format!("{head:?}…")
    }
}

#[cfg(test)]
mod tests;
