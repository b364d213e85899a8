//! Step E: every declared plugin is desired and recorded as installed with
//! the registry's hash, `PluginsInstalled` is true, and a local agent has
//! each plugin's `plugin.yaml` carrying that hash.

use anyhow::bail;
use hearth_core::display::short_hex;
use hearth_core::reconcile::ConditionType;

use super::{describe, waiting_on, Deadline, Run};

impl Run {
    pub(super) async fn plugins_installed(&mut self) -> anyhow::Result<String> {
        let id = self.workspace_id()?;
        let deadline = Deadline::new(self.timeout);
        loop {
            let mut waiting = Vec::new();
            match self.client.get_workspace(id).await {
                Ok(workspace) => match workspace.condition(ConditionType::PluginsInstalled) {
                    Some(c) if c.is_true() => {}
                    Some(c) => waiting.push(describe(c)),
                    None => waiting.push("PluginsInstalled is not reported yet".to_owned()),
                },
                Err(err) => waiting.push(waiting_on(err, &format!("get workspace {id}"))?),
            }
            match self.client.workspace_plugins(id).await {
                Ok(recorded) => {
                    for plugin in &self.plugins {
                        match recorded.desired.iter().find(|desired| desired.name == plugin.name) {
                            Some(desired) if desired.sha256.as_deref() == Some(plugin.sha256.as_str()) => {}
                            Some(desired) => waiting.push(format!(
                                "{} is desired with sha256 {}, but the registry holds {}",
                                plugin.name,
                                desired.sha256.as_deref().unwrap_or("(none: not in the registry)"),
                                plugin.sha256
                            )),
                            None => {
                                waiting.push(format!("{} is not among the workspace's desired plugins", plugin.name))
                            }
                        }
                        match recorded.installed.iter().find(|installed| installed.name == plugin.name) {
                            Some(installed) if installed.sha256.as_deref() == Some(plugin.sha256.as_str()) => {}
                            Some(installed) => waiting.push(format!(
                                "{} is recorded as installed with sha256 {}, expected {}",
                                plugin.name,
                                installed.sha256.as_deref().unwrap_or("(none)"),
                                plugin.sha256
                            )),
                            None => waiting.push(format!("{} is not recorded as installed", plugin.name)),
                        }
                    }
                }
                Err(err) => waiting.push(waiting_on(err, &format!("get the plugins of workspace {id}"))?),
            }
            if let Some(agent) = &self.agent {
                for plugin in &self.plugins {
                    let manifest = agent.dir.join("plugins").join(&plugin.name).join("plugin.yaml");
                    match std::fs::read_to_string(&manifest) {
                        Ok(text) if text.contains(&plugin.sha256) => {}
                        Ok(_) => {
                            waiting.push(format!("{} does not carry sha256 {}", manifest.display(), plugin.sha256))
                        }
                        Err(err) => waiting.push(format!("cannot read {}: {err}", manifest.display())),
                    }
                }
            }
            if waiting.is_empty() {
                return Ok(self.plugins_message());
            }
            self.agent_alive()?;
            if deadline.passed() {
                bail!("plugins not installed within {}s: {}", self.timeout.as_secs(), waiting.join("; "));
            }
            deadline.sleep().await;
        }
    }

    fn plugins_message(&self) -> String {
        if self.plugins.is_empty() {
            return "the template declares no plugins; PluginsInstalled=True".to_owned();
        }
        let each: Vec<String> = self
            .plugins
            .iter()
            .map(|plugin| format!("{} {} (sha256 {})", plugin.name, plugin.version, short_hex(&plugin.sha256)))
            .collect();
        let mut message = format!("PluginsInstalled=True; installed and recorded: {}", each.join(", "));
        if let Some(agent) = &self.agent {
            message.push_str(&format!("; plugin.yaml of each present under {}", agent.dir.join("plugins").display()));
        }
        message
    }
}
