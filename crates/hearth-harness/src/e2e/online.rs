//! Step B: the workspace reaches `online`.

use anyhow::bail;
use hearth_api::WorkspaceResponse;
use hearth_core::WorkspaceStatus;

use super::{waiting_on, Deadline, Run};

impl Run {
    pub(super) async fn online(&mut self) -> anyhow::Result<String> {
        let id = self.workspace_id()?;
        let deadline = Deadline::new(self.timeout);
        loop {
            let seen;
            match self.client.get_workspace(id).await {
                Ok(workspace) => match workspace.status {
                    WorkspaceStatus::Online => {
                        return Ok(format!("workspace is online ({})", heartbeat_text(&workspace)));
                    }
                    WorkspaceStatus::Failed | WorkspaceStatus::Removed => {
                        bail!("workspace became {} instead of online ({})", workspace.status, sample_error(&workspace));
                    }
                    status => seen = format!("its status is {status} ({})", heartbeat_text(&workspace)),
                },
                Err(err) => seen = waiting_on(err, &format!("get workspace {id}"))?,
            }
            self.agent_alive()?;
            if deadline.passed() {
                bail!("workspace did not become online within {}s: {seen}", self.timeout.as_secs());
            }
            deadline.sleep().await;
        }
    }
}

fn heartbeat_text(workspace: &WorkspaceResponse) -> String {
    match workspace.last_heartbeat_at {
        Some(at) => {
            let ago = (chrono::Utc::now() - at).num_milliseconds().max(0) as f64 / 1000.0;
            format!("last heartbeat {ago:.1}s ago")
        }
        None => "no heartbeat yet".to_owned(),
    }
}

fn sample_error(workspace: &WorkspaceResponse) -> String {
    match workspace.last_sample_error.as_deref().filter(|text| !text.is_empty()) {
        Some(text) => format!("last error: {text}"),
        None => heartbeat_text(workspace),
    }
}
