//! Step A: the template (the one named, or the embedded example pushed with
//! its plugin), its declared plugins as the registry holds them, a fresh
//! workspace from it, and — when the server starts no runtimes — the
//! harness's own agent for that workspace.

use anyhow::{anyhow, bail, Context};
use hearth_api::CreateWorkspaceRequest;
use hearth_core::display::short_digest;

use super::agent::LocalAgent;
use super::Run;
use crate::examples;

impl Run {
    pub(super) async fn create(&mut self) -> anyhow::Result<String> {
        let build = self.client.buildinfo().await.context("cannot read the server's /buildinfo")?;
        let template = match self.template_arg.clone() {
            Some(key) => self.client.get_template(&key).await.map_err(|err| match err.status() {
                Some(404) => anyhow!("template {key:?} does not exist on {}", self.client.base_url()),
                _ => anyhow!(err).context(format!("cannot get template {key:?}")),
            })?,
            None => {
                let pushed = examples::push(&self.client).await?;
                self.pushed_example = true;
                let template = self
                    .client
                    .get_template(&pushed.template.id.to_string())
                    .await
                    .context("cannot read back the example template")?;
                if template.assets_digest != pushed.template.assets_digest {
                    bail!(
                        "the server answered the import with assets digest {} but now describes the template with {}",
                        pushed.template.assets_digest,
                        template.assets_digest
                    );
                }
                template
            }
        };
        let registry = self.client.list_plugins().await.context("cannot list plugins")?;
        let mut plugins = Vec::with_capacity(template.plugins.len());
        for name in &template.plugins {
            let Some(plugin) = registry.iter().find(|plugin| &plugin.name == name) else {
                bail!("template {} declares plugin {name}, which is not in the plugin registry", template.name);
            };
            plugins.push(plugin.clone());
        }
        self.plugins = plugins;

        // An older server does not say; it can only be one without a
        // provisioner then.
        let local = matches!(build.provisioner.as_str(), "none" | "");
        let name = format!("e2e-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let request = CreateWorkspaceRequest {
            name: name.clone(),
            template: Some(template.name.clone()),
            issue_token: local.then_some(true),
            ..CreateWorkspaceRequest::default()
        };
        let workspace = self
            .client
            .create_workspace(&request)
            .await
            .with_context(|| format!("cannot create workspace {name} from template {}", template.name))?;
        self.workspace = Some((workspace.id, workspace.name.clone()));
        let plugin_names = if self.plugins.is_empty() { "none".to_owned() } else { template.plugins.join(", ") };
        let mut message = format!(
            "created workspace {name} ({}) from template {} ({} files, assets {}, plugins: {plugin_names}); ",
            workspace.id,
            template.name,
            template.files.len(),
            short_digest(&template.assets_digest),
        );
        if local {
            let Some(token) = workspace.auth_token.as_deref() else {
                bail!(
                    "the server created workspace {} but returned no token although issue_token was true",
                    workspace.id
                );
            };
            let agent = LocalAgent::start(&self.agent_program, self.client.base_url(), workspace.id, token).await?;
            message.push_str(&format!(
                "the server starts no runtimes (provisioner none), so the harness runs hearth agent in {}",
                agent.dir.display()
            ));
            self.agent = Some(agent);
            self.local_runtime = true;
        } else {
            message.push_str(&format!("its runtime is started by the server (provisioner {})", build.provisioner));
        }
        self.template = Some(template);
        Ok(message)
    }
}
