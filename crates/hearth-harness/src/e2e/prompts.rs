//! Step D: the assets manifest lists exactly the template's files (and the
//! bytes the harness pushed), and a local agent holds every prompt and model
//! file with its sha256.

use std::path::Path;

use anyhow::bail;
use hearth_api::AssetFile;
use hearth_core::digest::sha256_hex;
use hearth_core::display::short_digest;

use super::{Deadline, Run};
use crate::examples;

impl Run {
    pub(super) async fn prompts_and_model_delivered(&mut self) -> anyhow::Result<String> {
        let id = self.workspace_id()?;
        let template = self.template()?.clone();
        let manifest = self.manifest(id, &template).await?;
        // The manifest must list exactly the template's files: the digest
        // alone would not show a server that lists one set and hashes another.
        for file in &template.files {
            if !manifest.files.contains(file) {
                bail!("the workspace's assets manifest lacks {} (sha256 {}) of the template", file.path, file.sha256);
            }
        }
        if self.pushed_example {
            for (path, bytes) in examples::SEO_AGENT_TEMPLATE.files {
                let expected = sha256_hex(bytes);
                match manifest.files.iter().find(|file| file.path == *path) {
                    Some(file) if file.sha256 == expected => {}
                    Some(file) => bail!(
                        "the assets manifest lists {path} with sha256 {}, but the harness pushed sha256 {expected}",
                        file.sha256
                    ),
                    None => bail!("the assets manifest lacks {path}, which the harness pushed"),
                }
            }
        }
        let wanted: Vec<&AssetFile> = manifest.files.iter().filter(|file| is_prompt_or_model(&file.path)).collect();
        let prompts = wanted.iter().filter(|file| file.path.starts_with("prompts/")).count();
        if prompts == 0 {
            bail!("template {} has no prompts/ files to deliver", template.name);
        }
        let names: Vec<&str> = wanted.iter().map(|file| file.path.as_str()).collect();
        let Some(agent_dir) = self.agent.as_ref().map(|agent| agent.dir.join("assets")) else {
            // A remote runtime: AssetsDelivered (step C) says it holds the
            // template's digest, which covers every file's sha256.
            return Ok(format!(
                "{} delivered (covered by the runtime's assets digest {})",
                names.join(", "),
                short_digest(&template.assets_digest)
            ));
        };
        let deadline = Deadline::new(self.timeout);
        loop {
            let problems: Vec<String> =
                wanted.iter().filter_map(|file| disk_hash_mismatch(&agent_dir.join(&file.path), file)).collect();
            if problems.is_empty() {
                return Ok(format!(
                    "{} delivered; sha256 of each verified in {}",
                    names.join(", "),
                    agent_dir.display()
                ));
            }
            self.agent_alive()?;
            if deadline.passed() {
                bail!("prompts and model not delivered within {}s: {}", self.timeout.as_secs(), problems.join("; "));
            }
            deadline.sleep().await;
        }
    }
}

/// Prompts, and model files (under `model/` or `models/`).
fn is_prompt_or_model(path: &str) -> bool {
    ["prompts/", "model/", "models/"].iter().any(|prefix| path.starts_with(prefix))
}

/// Why `file` on disk does not have the manifest's sha256, if it does not.
fn disk_hash_mismatch(file: &Path, entry: &AssetFile) -> Option<String> {
    match std::fs::read(file) {
        Ok(bytes) => {
            let sha = sha256_hex(&bytes);
            (sha != entry.sha256).then(|| format!("{} has sha256 {sha}, expected {}", file.display(), entry.sha256))
        }
        Err(err) => Some(format!("cannot read {}: {err}", file.display())),
    }
}
