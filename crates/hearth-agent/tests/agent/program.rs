//! The template's program, run by `hearth agent` itself (no container):
//! started once delivery is complete, with its environment and secrets and
//! never the token; restarted with backoff when it exits and when what it
//! runs with changes; stopped while paused and when the agent stops.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hearth_agent::{Agent, Exit};
use hearth_core::WorkspaceId;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::harness::{config, eventually, Server};

/// A template whose program records its environment, its pid and each run.
fn program_template(mode: &str) -> String {
    format!(
        "name: runner\nplugins:\n  - seo-all\nenv:\n  MODE: {mode}\ncommand: \"env > env.txt; echo $$ > pid.txt; echo run >> runs.txt; exec sleep 1000\"\n"
    )
}

/// An agent run in the background until `stop` is sent.
struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<Exit, hearth_agent::AgentError>>,
    dir: PathBuf,
}

impl Running {
    fn start(server: &Server, id: WorkspaceId, token: Option<&str>, dir: &Path, grace: Duration) -> Self {
        let mut config = config(&server.url, id, dir, token);
        config.stop_grace = grace;
        let agent = Agent::new(config).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(agent.run(async move {
            // A dropped sender (the test ended) is a stop too.
            let _ = stopped.await;
        }));
        Self { stop: Some(stop), task, dir: dir.to_path_buf() }
    }

    async fn shutdown(mut self) -> Exit {
        // The agent may have ended already; the join below says how.
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(30), &mut self.task).await.expect("the agent stops").unwrap().unwrap()
    }

    fn read(&self, name: &str) -> String {
        // Not written yet reads as empty: the callers poll until it is.
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    fn runs(&self) -> usize {
        self.read("runs.txt").lines().count()
    }

    fn pid(&self) -> Option<u32> {
        self.read("pid.txt").trim().parse().ok()
    }
}

/// A server with the fixture plugin and a template `name` holding
/// `config`, a workspace of it, and its agent running with `grace`.
async fn agent_for(tmp: &Path, name: &str, config: &str, grace: Duration) -> (Server, WorkspaceId, Running) {
    let server = Server::start(&tmp.join("server")).await;
    server.push_fixture().await;
    server.import_template(name, config).await;
    let ws = server.create(name, Some(name), true).await;
    let agent = Running::start(&server, ws.id, ws.auth_token.as_deref(), &tmp.join("agent"), grace);
    (server, ws.id, agent)
}

/// A process that exists and is not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_program_runs_after_delivery_restarts_on_a_new_template_and_stops_while_paused() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server")).await;
    server.push_fixture().await;
    server.import_template("runner", &program_template("fast")).await;
    let ws = server.create("runner", Some("runner"), true).await;
    let token = ws.auth_token.clone().unwrap();
    server.admin.put_org_secrets(&BTreeMap::from([("ORG_KEY".to_owned(), "org-value".to_owned())])).await.unwrap();
    let secrets = BTreeMap::from([("API_KEY".to_owned(), "s3cret".to_owned())]);
    server.admin.put_workspace_secrets(ws.id, &secrets).await.unwrap();
    let dir = tmp.path().join("agent");
    let agent = Running::start(&server, ws.id, Some(&token), &dir, Duration::from_secs(5));

    assert!(eventually(Duration::from_secs(20), || async { agent.runs() == 1 && agent.pid().is_some() }).await);
    assert!(dir.join("assets/config.yaml").exists() && dir.join("plugins/seo-all").exists(), "delivered first");
    let env = agent.read("env.txt");
    for expected in [
        "MODE=fast".to_owned(),
        "API_KEY=s3cret".to_owned(),
        "ORG_KEY=org-value".to_owned(),
        format!("HEARTH_WORKSPACE_ID={}", ws.id),
        format!("WORKSPACE_ID={}", ws.id),
        format!("HEARTH_SERVER={}", server.url),
        format!("PLATFORM_URL={}", server.url),
        format!("HEARTH_ASSETS_DIR={}", dir.join("assets").display()),
        format!("HEARTH_PLUGINS_DIR={}", dir.join("plugins").display()),
    ] {
        assert!(env.lines().any(|line| line == expected), "{expected} in the program's environment:\n{env}");
    }
    assert!(!env.contains(&token), "the workspace token is not in the program's environment");
    assert!(!env.contains("HEARTH_TOKEN"), "{env}");
    assert!(
        eventually(Duration::from_secs(10), || async { server.condition_is(ws.id, "AgentRunning", "True").await })
            .await
    );
    let first = agent.pid().unwrap();
    assert!(alive(first));

    // A new template (its env changed) reaches the running program: a restart.
    server.import_template("runner", &program_template("slow")).await;
    assert!(eventually(Duration::from_secs(20), || async { agent.runs() == 2 }).await, "restarted on the new template");
    assert!(eventually(Duration::from_secs(5), || async { agent.read("env.txt").contains("MODE=slow") }).await);
    assert!(!alive(first), "the old program was stopped");

    // Paused: the program stops, and the condition says why.
    let second = agent.pid().unwrap();
    server.admin.pause(ws.id).await.unwrap();
    assert!(eventually(Duration::from_secs(20), || async { !alive(second) }).await, "stopped while paused");
    assert!(
        eventually(Duration::from_secs(10), || async { server.condition(ws.id, "AgentRunning").await.1 == "Stopped" })
            .await,
        "{:?}",
        server.workspace(ws.id).await.conditions
    );
    server.admin.resume(ws.id).await.unwrap();
    assert!(eventually(Duration::from_secs(20), || async { agent.runs() == 3 }).await, "started again on resume");
    let third = agent.pid().unwrap();
    assert_eq!(agent.shutdown().await, Exit::Shutdown);
    assert!(!alive(third), "the agent's stop stops its program");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_that_keeps_exiting_is_restarted_with_backoff_and_its_exit_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let config = "name: crasher\nplugins: [seo-all]\ncommand: [/bin/sh, -c, 'echo run >> runs.txt; exit 3']\n";
    let (server, id, agent) = agent_for(tmp.path(), "crasher", config, Duration::from_secs(5)).await;
    // Restarts wait 1 s, then 2 s: three runs take about three seconds.
    assert!(eventually(Duration::from_secs(20), || async { agent.runs() >= 3 }).await, "restarted");
    assert!(
        eventually(Duration::from_secs(10), || async {
            let (status, reason, message) = server.condition(id, "AgentRunning").await;
            status == "False" && reason == "Exited" && message.starts_with("exit 3, restarted")
        })
        .await,
        "{:?}",
        server.condition(id, "AgentRunning").await
    );
    let runs = agent.runs();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(agent.runs() <= runs + 1, "backing off, not spinning: {} then {}", runs, agent.runs());
    assert!(server.events(id).await.contains(&"CONDITION_CHANGED".to_owned()));
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_that_ignores_sigterm_is_killed_after_the_grace() {
    let tmp = tempfile::tempdir().unwrap();
    let config = "name: stubborn\nplugins: [seo-all]\ncommand: \"trap '' TERM; echo $$ > pid.txt; while true; do sleep 1; done\"\n";
    let (_server, _id, agent) = agent_for(tmp.path(), "stubborn", config, Duration::from_millis(300)).await;
    assert!(eventually(Duration::from_secs(20), || async { agent.pid().is_some_and(alive) }).await);
    let pid = agent.pid().unwrap();
    agent.shutdown().await;
    assert!(!alive(pid), "killed after its grace");
}
