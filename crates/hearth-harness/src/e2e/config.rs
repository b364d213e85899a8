//! Step C: `config.yaml` is served as the manifest lists it (and as the
//! harness pushed it), `AssetsDelivered` holds with the template's digest as the
//! one the runtime reported (`reported_assets_digest`), and a
//! local agent holds it byte for byte.

use std::path::Path;

use anyhow::{bail, Context};
use hearth_api::{AssetFile, WorkspaceResponse};
use hearth_core::digest::sha256_hex;
use hearth_core::display::short_hex;
use hearth_core::reconcile::{ConditionReason, ConditionType};

use super::{describe, waiting_on, Deadline, Run};
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
                Ok(workspace) => waiting.extend(assets_waiting(&workspace, &template.assets_digest)),
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

/// What the server says is still missing before the runtime holds the
/// template's assets (digest `want`); `None` once it does.
fn assets_waiting(workspace: &WorkspaceResponse, want: &str) -> Option<String> {
    let reported = workspace.reported_assets_digest.as_deref();
    match workspace.condition(ConditionType::AssetsDelivered) {
        Some(c) if c.typed_reason() == Some(ConditionReason::Delivered) && reported == Some(want) => None,
        Some(c) if c.is_true() => Some(format!(
            "{} (expected the runtime to hold the template's assets {want}; it reported {})",
            describe(c),
            reported.unwrap_or("none")
        )),
        Some(c) => Some(describe(c)),
        None => Some("AssetsDelivered is not reported yet".to_owned()),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A workspace as `GET /workspaces/{id}` answers it.
    fn workspace(assets: (&str, &str, &str), reported_assets_digest: Option<&str>) -> WorkspaceResponse {
        let at = "2026-01-01T00:00:00Z";
        let (status, reason, message) = assets;
        serde_json::from_value(serde_json::json!({
            "id": "6f1c1a52-3a53-4f0e-9a55-0d6c1f0c2b11", "org_id": "00000000-0000-0000-0000-000000000001",
            "name": "e2e", "tier": 1, "status": "online", "external": false, "last_error_rate": 0.0,
            "active_tasks": 0, "uptime_seconds": 0, "monthly_spend": 0,
            "conditions": [{"type": "AssetsDelivered", "status": status, "reason": reason, "message": message,
                "last_transition_time": at}],
            "desired_plugins": [], "installed_plugins": [], "reported_assets_digest": reported_assets_digest,
            "status_changed_at": at, "created_at": at, "updated_at": at,
        }))
        .unwrap_or_else(|err| panic!("{err}"))
    }

    /// Step C reads the digest the runtime reported, a typed field: the
    /// condition's message is a sentence for people.
    #[test]
    fn assets_are_delivered_when_the_reported_digest_is_the_templates() {
        let want = format!("sha256:{}", "ab".repeat(32));
        let delivered = workspace(("True", "Delivered", "the runtime holds the template's assets"), Some(&want));
        assert_eq!(assets_waiting(&delivered, &want), None);
    }

    #[test]
    fn other_assets_or_none_are_still_waited_for() {
        let want = format!("sha256:{}", "ab".repeat(32));
        let other = format!("sha256:{}", "cd".repeat(32));
        // True but about no template: the message may even name the digest.
        let no_template = workspace(("True", "NoTemplate", &format!("not {want}")), None);
        let waiting = assets_waiting(&no_template, &want).unwrap_or_else(|| panic!("delivered without a template"));
        assert!(waiting.contains("expected the runtime to hold the template's assets"), "{waiting}");
        let mismatch = workspace(("False", "DigestMismatch", "the runtime holds other assets"), Some(&other));
        assert!(assets_waiting(&mismatch, &want).is_some_and(|w| w.starts_with("AssetsDelivered=False")));
        let stale = workspace(("True", "Delivered", &format!("the runtime holds assets {want}")), Some(&other));
        assert!(assets_waiting(&stale, &want).is_some(), "another digest is not the template's");
    }
}
