//! Tokens, removal, the directory lock and outages.

use std::time::{Duration, Instant};

use hearth_agent::{contract, run, Agent, AgentError, Exit, StepOutcome, TOKEN_FILE};
use hearth_core::WorkspaceStatus;

use crate::harness::{config, entries, eventually, step_ok, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrapped_token_is_private_and_reused_after_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server")).await;
    let ws = server.create("plain", None, false).await;
    let dir = tmp.path().join("agent");

    let mut agent = Agent::new(config(&server.url, ws.id, &dir, None)).unwrap();
    step_ok(&mut agent).await;
    let token_file = dir.join(TOKEN_FILE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "mode {mode:o}");
    }
    let token = std::fs::read_to_string(&token_file).unwrap();
    assert_eq!(token.trim().len(), 43, "a 43-character token");
    assert_eq!(server.workspace(ws.id).await.status, WorkspaceStatus::Online);
    drop(agent);

    // A second bootstrap would be refused (the workspace has had a token
    // and is online), so succeeding proves the saved token was used.
    let mut agent = Agent::new(config(&server.url, ws.id, &dir, None)).unwrap();
    step_ok(&mut agent).await;
    assert_eq!(std::fs::read_to_string(&token_file).unwrap(), token, "the token is kept, not replaced");
    assert_eq!(server.condition(ws.id, "AssetsDelivered").await.1, "NoTemplate");

    // Without the file, the bootstrap is refused with a sentence saying what to do.
    drop(agent);
    std::fs::remove_file(&token_file).unwrap();
    let mut agent = Agent::new(config(&server.url, ws.id, &dir, None)).unwrap();
    let err = agent.step().await.unwrap_err();
    assert!(matches!(err, AgentError::TokenRequired { .. }), "{err:?}");
    assert!(err.to_string().contains(&format!("hearth token create --workspace {}", ws.id)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_workspaces_token_is_refused_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server")).await;
    let mine = server.create("mine", None, true).await;
    let other = server.create("other", None, true).await;
    let dir = tmp.path().join("agent");
    let mut agent = Agent::new(config(&server.url, mine.id, &dir, other.auth_token.as_deref())).unwrap();
    let err = agent.step().await.unwrap_err();
    assert!(matches!(err, AgentError::TokenRejected { .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("the token is not this workspace's"), "{err}");

    // The same goes through `run`, which returns the error instead of retrying.
    drop(agent);
    let err =
        run(config(&server.url, mine.id, &dir, other.auth_token.as_deref()), std::future::pending()).await.unwrap_err();
    assert!(matches!(err, AgentError::TokenRejected { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_workspace_ends_the_run_with_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server")).await;
    server.push_fixture().await;
    let ws = server.create("seo-agent", Some("seo"), true).await;
    let dir = tmp.path().join("agent");
    let run_task =
        tokio::spawn(run(config(&server.url, ws.id, &dir, ws.auth_token.as_deref()), std::future::pending()));
    let online =
        eventually(Duration::from_secs(10), || async { server.condition_is(ws.id, "PluginsInstalled", "True").await })
            .await;
    assert!(online, "the running agent converges");
    server.admin.delete_workspace(ws.id).await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(10), run_task).await.expect("run returns").unwrap();
    assert_eq!(exit.unwrap(), Exit::Removed);

    // An agent started after the delete learns it at registration.
    let mut agent = Agent::new(config(&server.url, ws.id, &dir, ws.auth_token.as_deref())).unwrap();
    assert_eq!(agent.step().await.unwrap(), StepOutcome::Removed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_agent_on_the_same_dir_fails_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("agent");
    let id = hearth_core::WorkspaceId::new_random();
    let first = Agent::new(config("http://127.0.0.1:9", id, &dir, Some("t"))).unwrap();

    let err = Agent::new(config("http://127.0.0.1:9", id, &dir, Some("t"))).err().expect("the lock is held");
    assert!(matches!(err, AgentError::Locked { .. }), "{err:?}");
    assert!(err.to_string().starts_with(&format!("another agent is running for {}", dir.display())), "{err}");
    let started = Instant::now();
    let err = run(config("http://127.0.0.1:9", id, &dir, Some("t")), std::future::pending()).await.unwrap_err();
    assert!(matches!(err, AgentError::Locked { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(1), "fails at once, without retrying");

    drop(first);
    Agent::new(config("http://127.0.0.1:9", id, &dir, Some("t"))).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_rides_out_an_outage_and_stops_on_shutdown() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("server");
    let mut server = Server::start(&data_dir).await;
    server.push_fixture().await;
    let ws = server.create("seo-agent", Some("seo"), true).await;
    let addr = server.addr;
    server.stop().await;

    // Nothing listens on the port now.
    let dir = tmp.path().join("agent");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run_task = tokio::spawn(run(config(&format!("http://{addr}"), ws.id, &dir, ws.auth_token.as_deref()), async {
        let _ = stopped.await;
    }));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!run_task.is_finished(), "still retrying, not crashed");

    // The server comes back on the same port: the agent finds it and converges.
    let server = Server::start_on(&data_dir, addr).await;
    let converged =
        eventually(Duration::from_secs(30), || async { server.condition_is(ws.id, "PluginsInstalled", "True").await })
            .await;
    assert!(converged, "the agent recovers once Hearth is back");
    assert_eq!(server.workspace(ws.id).await.status, WorkspaceStatus::Online);
    assert!(entries(&dir).contains(&"plugins".to_owned()));

    stop.send(()).unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(5), run_task).await.expect("returns on shutdown").unwrap();
    assert_eq!(exit.unwrap(), Exit::Shutdown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nothing_listening_the_loop_keeps_retrying_until_shutdown() {
    let tmp = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let id = hearth_core::WorkspaceId::new_random();
    let started = Instant::now();
    let exit = run(config(&format!("http://127.0.0.1:{port}"), id, tmp.path(), Some("t")), async {
        tokio::time::sleep(Duration::from_secs(2)).await;
    })
    .await
    .unwrap();
    assert_eq!(exit, Exit::Shutdown);
    assert!(started.elapsed() >= Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_ends_the_run_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server")).await;
    let ws = server.create("plain", None, false).await;
    let issued = server.admin.create_workspace_token(ws.id, &Default::default()).await.unwrap();
    let dir = tmp.path().join("agent");
    let mut agent = Agent::new(config(&server.url, ws.id, &dir, issued.auth_token.as_deref())).unwrap();
    step_ok(&mut agent).await;

    server.admin.revoke_workspace_token(ws.id, issued.id).await.unwrap();
    let err = agent.step().await.unwrap_err();
    assert!(matches!(err, AgentError::TokenRevoked { .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("no longer accepts this agent's token"), "{err}");
}

/// A server that answers every request with the same raw HTTP response.
async fn fixed_answer(response: &'static str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = socket.read(&mut buf).await;
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_answers_are_retryable_errors_not_panics() {
    let answers = [
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 7\r\nconnection: close\r\n\r\n{\"a\": [",
        "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
        "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\nconnection: close\r\n\r\noops",
        "HTTP/1.1 418 I'm a teapot\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        "garbage that is not HTTP at all\r\n\r\n",
    ];
    for answer in answers {
        let url = fixed_answer(answer).await;
        let tmp = tempfile::tempdir().unwrap();
        let id = hearth_core::WorkspaceId::new_random();
        let mut agent = Agent::new(config(&url, id, tmp.path(), Some("t"))).unwrap();
        let err = agent.step().await.unwrap_err();
        assert!(err.is_retryable(), "{answer:?}: {err:?}");
        assert!(err.to_string().starts_with("registering: "), "{err}");
    }
}

/// The server sets the pace: an agent configured for one heartbeat a minute
/// heartbeats as often as the server says (100 ms in the test server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_heartbeats_at_the_pace_the_server_sets() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server")).await;
    let ws = server.create("paced", None, true).await;
    let mut slow = config(&server.url, ws.id, &tmp.path().join("agent"), ws.auth_token.as_deref());
    slow.heartbeat_interval = Duration::from_secs(60);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run_task = tokio::spawn(run(slow, async {
        let _ = stopped.await;
    }));
    let uptime_of = || async { server.workspace(ws.id).await.uptime_seconds };
    // Uptime is sent with every heartbeat; it moves on only if heartbeats
    // keep coming, which the configured minute would not allow.
    let kept_coming = eventually(Duration::from_secs(20), || async { uptime_of().await >= 2 }).await;
    stop.send(()).unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(5), run_task).await.expect("returns on shutdown").unwrap();
    assert_eq!(exit.unwrap(), Exit::Shutdown);
    assert!(kept_coming, "the agent followed the server's pace, not its own minute");
}

/// An agent whose directory is removed under it stops, instead of serving a
/// directory that is gone while a second agent can lock the one made again
/// (and so a runtime a failed test left behind ends once the test's temp
/// dir is removed, like the report's orphan did not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_whose_directory_is_removed_stops() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server")).await;
    let ws = server.create("plain", None, true).await;
    let dir = tmp.path().join("agent");
    let token = ws.auth_token.as_deref();
    let run_task = tokio::spawn(run(config(&server.url, ws.id, &dir, token), std::future::pending()));
    let online = eventually(Duration::from_secs(10), || async {
        server.workspace(ws.id).await.status == WorkspaceStatus::Online
    })
    .await;
    assert!(online, "the agent runs");

    std::fs::remove_dir_all(&dir).unwrap();
    let second = Agent::new(config(&server.url, ws.id, &dir, token)).expect("the directory made again is free");
    let ended = tokio::time::timeout(Duration::from_secs(10), run_task).await;
    let err = ended.expect("the first agent stops").unwrap().unwrap_err();
    assert!(matches!(err, AgentError::LockLost { .. }), "{err}");
    assert!(err.to_string().contains(&dir.join("agent.lock").display().to_string()), "{err}");
    assert!(!err.is_retryable());
    // `hearth agent` exits 1: a supervisor restarts it, in a directory it makes again.
    assert_eq!(contract::exit_code(&err), contract::EXIT_FAILURE);
    drop(second);
}
