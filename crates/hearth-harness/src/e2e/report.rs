//! What the harness reports: one line per step, the summary of a run that
//! passed, and the `--json` document.

use hearth_core::WorkspaceId;
use serde::Serialize;

use super::Run;

/// The steps, in order: letter, name, what a failure is about.
pub const STEPS: [(&str, &str); 5] = [
    ("A", "created"),
    ("B", "online"),
    ("C", "config.yaml delivered byte-identical"),
    ("D", "prompts and model delivered"),
    ("E", "plugins installed and recorded"),
];

/// One step's outcome, as printed and as in the JSON document.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub step: &'static str,
    pub name: &'static str,
    pub ok: bool,
    pub seconds: f64,
    pub message: String,
}

impl StepReport {
    /// `A ok   created workspace … (0.3s)`, `C FAIL … (8.0s)`.
    pub fn line(&self) -> String {
        format!("{} {} {} ({:.1}s)", self.step, if self.ok { "ok  " } else { "FAIL" }, self.message, self.seconds)
    }
}

/// The whole run: the `--json` document.
#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub ok: bool,
    pub server: String,
    pub template: Option<String>,
    pub workspace_id: Option<WorkspaceId>,
    pub workspace_name: Option<String>,
    /// `server` when the server's provisioner started the runtime,
    /// `harness` when the harness ran `hearth agent` itself.
    pub runtime: Option<&'static str>,
    pub seconds: f64,
    pub steps: Vec<StepReport>,
    /// What the cleanup did, one line each.
    pub cleanup: Vec<String>,
}

impl Run {
    pub(super) fn report(&self, ok: bool, seconds: f64, cleanup: Vec<String>) -> Report {
        Report {
            scenario: "template-delivery",
            ok,
            server: self.client.base_url().to_owned(),
            template: self.template.as_ref().map(|template| template.name.clone()),
            workspace_id: self.workspace.as_ref().map(|(id, _)| *id),
            workspace_name: self.workspace.as_ref().map(|(_, name)| name.clone()),
            runtime: self.workspace.as_ref().map(|_| if self.local_runtime { "harness" } else { "server" }),
            seconds,
            steps: self.steps.clone(),
            cleanup,
        }
    }

    pub(super) fn summary(&self, seconds: f64) -> String {
        let template = self.template.as_ref();
        let assets = template.map_or(0, |template| template.files.len());
        let plugins = match self.plugins.len() {
            1 => "1 plugin".to_owned(),
            n => format!("{n} plugins"),
        };
        let workspace = self.workspace.as_ref().map_or_else(String::new, |(_, name)| format!(" {name}"));
        let runtime = if self.local_runtime { "run by the harness" } else { "started by the server" };
        format!(
            "template delivery OK in {seconds:.1}s: workspace{workspace} (runtime {runtime}) received config.yaml \
             ({} bytes), {assets} asset files and {plugins} from template {}",
            self.config_size,
            template.map_or("?", |template| template.name.as_str()),
        )
    }
}
