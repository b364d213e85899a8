//! Step C: `config.yaml` is served as the manifest lists it (and as the
//! harness pushed it), `AssetsDelivered` names the template's assets, and a
//! local agent holds it byte for byte.

use std::path::Path;

use anyhow::{bail, Context};
use hearth_api::AssetFile;
use hearth_core::digest::sha256_hex;
use hearth_core::display::short_hex;

use super::{condition, describe, waiting_on, Deadline, Run};
use crate::examples;

impl Run {
    pub(super) async fn config_delivered(&mut self) -> anyhow::Result<String> {
        let id = self.workspace_id()?;
        let template = self.template()?.clone();
        let manifest = self.manifest(id, &template).await?;
        let path = hearth_core::manifest::TEMPLATE_CONFIG;
        let Some(entry) = manifest.files.iter().find(|file| file.path == path) else {
            bail!("the workspace's assets manifest has no {path}");
        };
        let served = self.client.asset_bytes(id, path).await.with_context(|| format!("cannot download {path}"))?;
        check_bytes(&format!("the server's {path}"), &served, entry)?;
        if self.pushed_example {
            let pushed = examples::SEO_AGENT_TEMPLATE.file(path).unwrap_or_default();
            if served != pushed {
                bail!(
                    "the server serves {path} as {} bytes (sha256 {}), but the harness pushed {} bytes (sha256 {})",
                    served.len(),
                    sha256_hex(&served),
                    pushed.len(),
                    sha256_hex(pushed)
                );
            }
        }
        self.config_size = served.len();

        let deadline = Deadline::new(self.timeout);
        loop {
            let mut waiting = Vec::new();
            match self.client.get_workspace(id).await {
                Ok(workspace) => match condition(&workspace, "AssetsDelivered") {
                    Some(c) if c.status == "True" && c.message.contains(&template.assets_digest) => {}
                    Some(c) if c.status == "True" => waiting.push(format!(
                        "{} (expected the runtime to hold the template's assets {})",
                        describe(c),
                        template.assets_digest
                    )),
                    Some(c) => waiting.push(describe(c)),
                    None => waiting.push("AssetsDelivered is not reported yet".to_owned()),
                },
                Err(err) => waiting.push(waiting_on(err, &format!("get workspace {id}"))?),
            }
            let local = self.agent.as_ref().map(|agent| agent.dir.join("assets").join(path));
            if let Some(file) = &local {
                if let Some(problem) = disk_mismatch(file, &served) {
                    waiting.push(problem);
                }
            }
            if waiting.is_empty() {
                let mut message = format!(
                    "{path} delivered byte-identical ({} bytes, sha256 {}): AssetsDelivered=True, the runtime holds \
                     the template's assets {}",
                    served.len(),
                    short_hex(&entry.sha256),
                    template.assets_digest
                );
                if let Some(file) = local {
                    message.push_str(&format!(", and {} matches byte for byte", file.display()));
                }
                return Ok(message);
            }
            self.agent_alive()?;
            if deadline.passed() {
                bail!("{path} not delivered within {}s: {}", self.timeout.as_secs(), waiting.join("; "));
            }
            deadline.sleep().await;
        }
    }
}

/// Checks bytes against their manifest entry.
fn check_bytes(what: &str, bytes: &[u8], entry: &AssetFile) -> anyhow::Result<()> {
    let sha = sha256_hex(bytes);
    if sha != entry.sha256 || i64::try_from(bytes.len()).ok() != Some(entry.size) {
        bail!(
            "{what} is {} bytes with sha256 {sha}, but the manifest lists {} bytes with sha256 {}",
            bytes.len(),
            entry.size,
            entry.sha256
        );
    }
    Ok(())
}

/// Why `file` on disk is not exactly `expected`, if it is not.
fn disk_mismatch(file: &Path, expected: &[u8]) -> Option<String> {
    match std::fs::read(file) {
        Ok(bytes) if bytes == expected => None,
        Ok(bytes) => Some(format!(
            "{} is {} bytes (sha256 {}), expected {} bytes (sha256 {})",
            file.display(),
            bytes.len(),
            short_hex(&sha256_hex(&bytes)),
            expected.len(),
            short_hex(&sha256_hex(expected))
        )),
        Err(err) => Some(format!("cannot read {}: {err}", file.display())),
    }
}
