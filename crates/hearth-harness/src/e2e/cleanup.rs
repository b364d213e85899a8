//! After the steps, whatever happened: delete the workspace (unless kept)
//! and stop the harness's agent.

use super::Run;

impl Run {
    /// Deletes the workspace (unless `keep`) and stops the harness's agent.
    /// Returns what it did, one line each.
    pub(super) async fn cleanup(&mut self, keep: bool, ok: bool) -> Vec<String> {
        let mut lines = Vec::new();
        let deleted = match (&self.workspace, keep) {
            (Some((id, name)), false) => match self.client.delete_workspace(*id).await {
                Ok(_) => {
                    lines.push(format!("cleanup: deleted workspace {name} ({id})"));
                    true
                }
                Err(err) => {
                    lines.push(format!("cleanup: could not delete workspace {name} ({id}): {err}"));
                    false
                }
            },
            (Some((id, name)), true) => {
                lines.push(format!("kept workspace {name} ({id}) (--keep)"));
                false
            }
            (None, _) => false,
        };
        if let Some(mut agent) = self.agent.take() {
            lines.push(agent.stop(deleted).await);
            if keep || !ok {
                // Keep the agent's files for whoever looks into it.
                let path = agent.root.keep();
                lines.push(format!("kept the harness's agent directory {} (agent.log inside)", path.display()));
            }
        }
        lines
    }
}
