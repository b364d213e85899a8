//! The example template and plugin of the repository's `examples/`
//! directory, embedded in the binary so `hearth up` and `hearth e2e` work
//! from any directory. A test (in `hearth`'s `bundle.rs`, which reads
//! directories the way `hearth template push` does) checks the table against
//! the directory, so a file added there and forgotten here fails the tests.

use std::collections::BTreeMap;

use hearth_api::FileContent;

/// A directory of files (a template or a plugin), embedded.
#[derive(Debug, Clone, Copy)]
pub struct Example {
    /// The directory name: the template's name, or the plugin's.
    pub name: &'static str,
    pub files: &'static [(&'static str, &'static [u8])],
}

impl Example {
    /// The files, by relative path.
    pub fn files(&self) -> BTreeMap<String, Vec<u8>> {
        self.files.iter().map(|(path, bytes)| ((*path).to_owned(), bytes.to_vec())).collect()
    }

    /// One file's bytes.
    pub fn file(&self, path: &str) -> Option<&'static [u8]> {
        self.files.iter().find(|(candidate, _)| *candidate == path).map(|(_, bytes)| *bytes)
    }
}

macro_rules! embed {
    ($dir:literal, $path:literal) => {
        ($path, include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/", $dir, "/", $path)) as &[u8])
    };
}

/// `examples/plugins/seo-all`: the plugin the example template declares.
pub const SEO_ALL_PLUGIN: Example = Example {
    name: "seo-all",
    files: &[
        embed!("plugins/seo-all", "plugin.yaml"),
        embed!("plugins/seo-all", "skills/page-audit.md"),
        embed!("plugins/seo-all", "tools/check_meta.py"),
    ],
};

/// `examples/templates/seo-agent`: config, prompts and a (binary) model file.
pub const SEO_AGENT_TEMPLATE: Example = Example {
    name: "seo-agent",
    files: &[
        embed!("templates/seo-agent", "config.yaml"),
        embed!("templates/seo-agent", "model/tokenizer.bin"),
        embed!("templates/seo-agent", "prompts/system.md"),
        embed!("templates/seo-agent", "prompts/tasks/audit.md"),
    ],
};

/// The plugins the example template declares, in push order.
pub const PLUGINS: &[Example] = &[SEO_ALL_PLUGIN];

/// What pushing the examples produced.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub plugins: Vec<hearth_api::PluginResponse>,
    pub template: hearth_api::ImportTemplateResponse,
}

/// Pushes the example plugins, then the example template (which declares
/// them, so the order matters). Both replace what has the same name.
pub async fn push(client: &hearth_client::Client) -> anyhow::Result<Pushed> {
    use anyhow::Context;
    let mut plugins = Vec::with_capacity(PLUGINS.len());
    for plugin in PLUGINS {
        let request = hearth_api::UploadPluginRequest { name: None, files: FileContent::files(plugin.files()) };
        let pushed = client
            .push_plugin_json(&request)
            .await
            .with_context(|| format!("cannot push the example plugin {}", plugin.name))?;
        plugins.push(pushed);
    }
    let request = hearth_api::ImportTemplateRequest {
        name: SEO_AGENT_TEMPLATE.name.to_owned(),
        files: FileContent::files(SEO_AGENT_TEMPLATE.files()),
    };
    let template = client
        .import_template(&request)
        .await
        .with_context(|| format!("cannot import the example template {}", SEO_AGENT_TEMPLATE.name))?;
    Ok(Pushed { plugins, template })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_template_declares_the_example_plugins_and_ships_a_binary_model() {
        let config = std::str::from_utf8(SEO_AGENT_TEMPLATE.file("config.yaml").unwrap()).unwrap();
        let config = hearth_core::manifest::TemplateConfig::parse(config).unwrap();
        let declared: Vec<&str> = config.plugins.iter().map(|p| p.as_str()).collect();
        let shipped: Vec<&str> = PLUGINS.iter().map(|p| p.name).collect();
        assert_eq!(declared, shipped);
        let model = SEO_AGENT_TEMPLATE.file("model/tokenizer.bin").unwrap();
        assert!(std::str::from_utf8(model).is_err(), "the model file should exercise the binary path");
        for plugin in PLUGINS {
            let manifest = std::str::from_utf8(plugin.file("plugin.yaml").unwrap()).unwrap();
            let manifest = hearth_core::manifest::PluginManifest::parse(manifest).unwrap();
            assert_eq!(manifest.name.as_str(), plugin.name);
        }
    }
}
