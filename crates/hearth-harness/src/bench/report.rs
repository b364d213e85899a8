//! The bench's result: both runs, their ratio and the audit, as printed and
//! as the `--json` document; and whether the bench passed.

use anyhow::bail;
use serde::Serialize;

use super::audit::shortened;
use super::load::{rounded, RunReport};
use super::Options;

#[derive(Debug, Serialize)]
pub struct Report {
    pub benchmark: &'static str,
    pub engine: &'static str,
    pub workspaces: u32,
    pub concurrency: u32,
    pub seconds: u64,
    /// When the server answered plain heartbeats: `committed` or `queued`.
    pub heartbeat_ack: &'static str,
    /// Cores of this machine, shared by the load generator and the servers.
    pub cores: usize,
    pub note: String,
    /// Every workspace's first heartbeat (provisioning to online under the
    /// row lock, with its event), before the measured runs; not in the ratio.
    pub first_heartbeats: RunReport,
    pub baseline: RunReport,
    /// Every workspace's second heartbeat, right before the measured
    /// heartbeats (a fleet in steady state, see `Bench::measure`); not in
    /// the ratio.
    pub second_heartbeats: RunReport,
    pub heartbeat: RunReport,
    /// Heartbeat requests per second over baseline requests per second.
    pub ratio: Option<f64>,
    /// Growth of this process's resident memory from before the workspaces
    /// were created to after the heartbeat run, per workspace, in bytes.
    /// The server and the load generator share the process, so this is an
    /// upper bound for the server's share. `None` off Linux.
    pub rss_growth_per_workspace_bytes: Option<f64>,
    /// Failed requests of all four runs.
    pub errors: u64,
    pub audit_ok: bool,
    /// What the audit found wrong (at most `MAX_PROBLEMS_SHOWN`, then a count).
    pub audit_problems: Vec<String>,
    /// How many problems the audit found, shown or not.
    #[serde(skip)]
    audit_problem_count: usize,
}

/// The bench's four runs, in the order they ran.
pub(super) struct Runs {
    pub first_heartbeats: RunReport,
    pub baseline: RunReport,
    pub second_heartbeats: RunReport,
    pub heartbeat: RunReport,
}

impl Report {
    pub(super) fn new(
        options: &Options,
        engine: &'static str,
        runs: Runs,
        problems: &[String],
        rss_growth_bytes: Option<u64>,
    ) -> Self {
        let Runs { first_heartbeats, baseline, second_heartbeats, heartbeat } = runs;
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let ratio = (baseline.requests_per_second > 0.0)
            .then(|| rounded(heartbeat.requests_per_second / baseline.requests_per_second, 4));
        let errors = first_heartbeats.errors + second_heartbeats.errors + baseline.errors + heartbeat.errors;
        Report {
            benchmark: "heartbeat",
            engine,
            workspaces: options.workspaces,
            concurrency: options.concurrency,
            seconds: options.seconds,
            heartbeat_ack: options.heartbeat_ack.as_str(),
            cores,
            note: format!(
                "the load generator and the servers share this machine's {cores} cores: compare the ratio, not the \
                 absolute request rates"
            ),
            first_heartbeats,
            baseline,
            second_heartbeats,
            heartbeat,
            ratio,
            rss_growth_per_workspace_bytes: rss_growth_bytes
                .map(|bytes| rounded(bytes as f64 / f64::from(options.workspaces.max(1)), 1)),
            errors,
            audit_ok: problems.is_empty(),
            audit_problems: shortened(problems),
            audit_problem_count: problems.len(),
        }
    }

    /// An error when any request failed or the audit found a problem: the
    /// bench fails (exit 1), after its report is printed.
    pub fn check(&self) -> anyhow::Result<()> {
        match (self.audit_problem_count, self.errors) {
            (0, 0) => Ok(()),
            (0, errors) => bail!("{errors} requests failed"),
            (problems, 0) => bail!("the audit found {problems} problems"),
            (problems, errors) => bail!("{errors} requests failed and the audit found {problems} problems"),
        }
    }
}
