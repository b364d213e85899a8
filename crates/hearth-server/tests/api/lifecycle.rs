//! The lifecycle acceptance scenarios of the registry-core issue, end to end.

use hearth_api::{HeartbeatRequest, RegisterRequest};
use hearth_core::WorkspaceStatus;
use hearth_server::sweeper::Sweeper;

use crate::harness::{heartbeat, Engine, TestApp};

crate::on_both_engines!(
    register_then_heartbeat_moves_provisioning_to_online_with_a_durable_event,
    error_rate_degrades_wedged_degrades_and_low_rate_recovers,
    repeated_current_task_emits_task_updated_once_per_change,
    silent_workspace_goes_offline_and_its_next_heartbeat_brings_it_online,
    provisioning_past_the_timeout_fails_and_a_later_heartbeat_recovers,
    paused_workspace_is_not_revived_by_register_or_heartbeat,
    refused_transitions_are_409_naming_the_current_status,
    hibernate_reaches_hibernated_and_resume_wakes_it,
    deleted_workspace_answers_410_and_state_says_deleted_even_to_its_own_token,
    delete_cascades_to_children,
    idle_workspaces_hibernate_when_enabled,
);

async fn register_then_heartbeat_moves_provisioning_to_online_with_a_durable_event(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let ws = app.create("seo-agent").await;
    assert_eq!(ws.status, WorkspaceStatus::Provisioning);
    // A runtime that heartbeats first (no register) still needs a token: register mints it.
    let anonymous = app.client(None);
    let reg = anonymous
        .register(&RegisterRequest { id: ws.id, url: "remote://no-inbound".into(), agent_card: None })
        .await
        .unwrap();
    assert_eq!(reg.status, "registered");
    let token = reg.auth_token.unwrap();
    assert_eq!(token.len(), 43);
    let runtime = app.client(Some(&token));
    let events = app.events_of(ws.id).await;
    let online = events.iter().find(|e| e.event == "WORKSPACE_ONLINE").expect("WORKSPACE_ONLINE is in the log");
    assert_eq!(online.payload["recovered_from"], "provisioning");

    // Heartbeat path on a second workspace that never registered a URL: the
    // heartbeat itself must see `provisioning` and move it online.
    let other = app
        .admin
        .create_workspace(&hearth_api::CreateWorkspaceRequest {
            name: "direct".into(),
            issue_token: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    let direct = app.client(other.auth_token.as_deref());
    let hb = direct.heartbeat(&heartbeat(other.id)).await.unwrap();
    assert_eq!(hb.status, "ok");
    assert_eq!(hb.workspace_status, WorkspaceStatus::Online);
    assert_eq!(hb.desired, hearth_api::Desired::default());
    let events = app.events_of(other.id).await;
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names, ["WORKSPACE_PROVISIONING", "WORKSPACE_ONLINE"]);
    assert_eq!(events[1].payload["recovered_from"], "provisioning");
    let got = app.admin.get_workspace(other.id).await.unwrap();
    assert_eq!(got.status, WorkspaceStatus::Online);
    assert!(got.last_heartbeat_at.is_some());
    assert_eq!(got.conditions[0].kind, "Live");
    assert_eq!(got.conditions[0].status, "True");

    // A second heartbeat writes no new event.
    runtime.heartbeat(&heartbeat(ws.id)).await.unwrap();
    runtime.heartbeat(&heartbeat(ws.id)).await.unwrap();
    assert_eq!(app.events_of(ws.id).await.len(), 2);
}

async fn error_rate_degrades_wedged_degrades_and_low_rate_recovers(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (id, runtime, _) = app.create_registered("w").await;
    let beat = |rate: f64, state: Option<&str>| HeartbeatRequest {
        error_rate: Some(rate),
        runtime_state: state.map(str::to_owned),
        ..heartbeat(id)
    };
    let status = |r: hearth_api::HeartbeatResponse| r.workspace_status;
    assert_eq!(status(runtime.heartbeat(&beat(0.3, None)).await.unwrap()), WorkspaceStatus::Online);
    assert_eq!(status(runtime.heartbeat(&beat(0.5, None)).await.unwrap()), WorkspaceStatus::Degraded);
    assert_eq!(status(runtime.heartbeat(&beat(0.2, None)).await.unwrap()), WorkspaceStatus::Degraded, "hysteresis");
    assert_eq!(status(runtime.heartbeat(&beat(0.05, None)).await.unwrap()), WorkspaceStatus::Online);
    assert_eq!(status(runtime.heartbeat(&beat(0.0, Some("wedged"))).await.unwrap()), WorkspaceStatus::Degraded);
    assert_eq!(status(runtime.heartbeat(&beat(0.0, Some(""))).await.unwrap()), WorkspaceStatus::Online);
    let names: Vec<String> = app.events_of(id).await.into_iter().map(|e| e.event).collect();
    assert_eq!(
        names,
        [
            "WORKSPACE_PROVISIONING",
            "WORKSPACE_ONLINE",
            "WORKSPACE_DEGRADED",
            "WORKSPACE_ONLINE",
            "WORKSPACE_DEGRADED",
            "WORKSPACE_ONLINE"
        ]
    );
}

async fn repeated_current_task_emits_task_updated_once_per_change(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (id, runtime, _) = app.create_registered("w").await;
    for task in ["index site", "index site", "index site", "write report", "write report"] {
        let hb = HeartbeatRequest { current_task: Some(task.into()), active_tasks: Some(1), ..heartbeat(id) };
        runtime.heartbeat(&hb).await.unwrap();
    }
    let tasks: Vec<String> = app
        .events_of(id)
        .await
        .into_iter()
        .filter(|e| e.event == "TASK_UPDATED")
        .map(|e| e.payload["current_task"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(tasks, ["index site", "write report"]);
    let ws = app.admin.get_workspace(id).await.unwrap();
    assert_eq!(ws.current_task.as_deref(), Some("write report"));
    assert_eq!(ws.active_tasks, 1);
}

async fn silent_workspace_goes_offline_and_its_next_heartbeat_brings_it_online(engine: Engine) {
    // A zero TTL makes every online workspace "silent" at the next sweep, so
    // the test drives the sweep by hand instead of sleeping.
    let app = TestApp::spawn_with(engine, |s| s.liveness_ttl = std::time::Duration::ZERO).await;
    let (id, runtime, _) = app.create_registered("w").await;
    runtime.heartbeat(&heartbeat(id)).await.unwrap();
    let report = Sweeper::new(app.state.clone()).run_once().await;
    assert_eq!(report.offline, 1);
    assert_eq!(app.admin.get_workspace(id).await.unwrap().status, WorkspaceStatus::Offline);
    // A second sweep (or a second replica) changes nothing more.
    assert_eq!(Sweeper::new(app.state.clone()).run_once().await.offline, 0);
    let back = runtime.heartbeat(&heartbeat(id)).await.unwrap();
    assert_eq!(back.workspace_status, WorkspaceStatus::Online);
    let events = app.events_of(id).await;
    let last = events.last().unwrap();
    assert_eq!(last.event, "WORKSPACE_ONLINE");
    assert_eq!(last.payload["recovered_from"], "offline");
    assert_eq!(events.iter().filter(|e| e.event == "WORKSPACE_OFFLINE").count(), 1);
}

async fn provisioning_past_the_timeout_fails_and_a_later_heartbeat_recovers(engine: Engine) {
    let app = TestApp::spawn_with(engine, |s| s.provision_timeout = std::time::Duration::ZERO).await;
    let ws = app
        .admin
        .create_workspace(&hearth_api::CreateWorkspaceRequest {
            name: "slow".into(),
            issue_token: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    let report = Sweeper::new(app.state.clone()).run_once().await;
    assert_eq!(report.failed, 1);
    assert_eq!(app.admin.get_workspace(ws.id).await.unwrap().status, WorkspaceStatus::Failed);
    let runtime = app.client(ws.auth_token.as_deref());
    let hb = runtime.heartbeat(&heartbeat(ws.id)).await.unwrap();
    assert_eq!(hb.workspace_status, WorkspaceStatus::Online);
    let events = app.events_of(ws.id).await;
    assert!(events.iter().any(|e| e.event == "WORKSPACE_PROVISION_FAILED"));
    assert_eq!(events.last().unwrap().payload["recovered_from"], "failed");
}

async fn paused_workspace_is_not_revived_by_register_or_heartbeat(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (id, runtime, _) = app.create_registered("w").await;
    assert_eq!(app.admin.pause(id).await.unwrap().status, "paused");
    let hb = runtime.heartbeat(&heartbeat(id)).await.unwrap();
    assert_eq!(hb.workspace_status, WorkspaceStatus::Paused, "the runtime is told to stop");
    let err = runtime
        .register(&RegisterRequest { id, url: "http://localhost:9000".into(), agent_card: None })
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(409));
    assert!(err.to_string().contains("workspace is paused"), "{err}");
    // Programs read the typed code and status, not the sentence.
    assert_eq!(err.code(), Some(hearth_api::ErrorCode::WorkspaceStopped));
    assert_eq!(err.workspace_status(), Some(WorkspaceStatus::Paused));
    let state = runtime.workspace_state(id).await.unwrap();
    assert!(state.paused);
    assert_eq!(state.status, WorkspaceStatus::Paused);
    assert_eq!(app.admin.get_workspace(id).await.unwrap().status, WorkspaceStatus::Paused);
}

async fn refused_transitions_are_409_naming_the_current_status(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (id, runtime, _) = app.create_registered("w").await;
    app.admin.pause(id).await.unwrap();
    let err = app.admin.pause(id).await.unwrap_err();
    assert_eq!(err.status(), Some(409));
    assert!(err.to_string().contains("cannot pause a workspace that is paused"), "{err}");

    let (offline_id, offline_rt, _) = app.create_registered("o").await;
    offline_rt.heartbeat(&heartbeat(offline_id)).await.unwrap();
    // Take it offline directly through the store's state machine (as the sweep would).
    app.state
        .store
        .apply(
            offline_id,
            hearth_core::Input::LivenessCheck { ttl: chrono::Duration::zero(), outage: None, mass_silence: None },
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let err = app.admin.resume(offline_id).await.unwrap_err();
    assert_eq!(err.status(), Some(409));
    assert!(err.to_string().contains("cannot resume a workspace that is offline"), "{err}");

    app.admin.delete_workspace(id).await.unwrap();
    let err = app.admin.restart(id).await.unwrap_err();
    assert_eq!(err.status(), Some(409));
    assert!(err.to_string().contains("cannot restart a workspace that is removed"), "{err}");
    drop(runtime);

    // The raw body carries the current status for programs.
    let response = app
        .raw()
        .post(format!("{}/workspaces/{id}/pause", app.url))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "removed");
    assert_eq!(body["code"], "transition_refused");
}

async fn hibernate_reaches_hibernated_and_resume_wakes_it(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (id, runtime, _) = app.create_registered("w").await;
    assert_eq!(app.admin.hibernate(id).await.unwrap().status, "hibernated");
    assert_eq!(app.admin.get_workspace(id).await.unwrap().status, WorkspaceStatus::Hibernated);
    let hb = runtime.heartbeat(&heartbeat(id)).await.unwrap();
    assert_eq!(hb.workspace_status, WorkspaceStatus::Hibernated);
    assert!(runtime.workspace_state(id).await.unwrap().paused);
    assert_eq!(app.admin.resume(id).await.unwrap().status, "provisioning");
    let hb = runtime.heartbeat(&heartbeat(id)).await.unwrap();
    assert_eq!(hb.workspace_status, WorkspaceStatus::Online);
    let names: Vec<String> = app.events_of(id).await.into_iter().map(|e| e.event).collect();
    assert!(names.ends_with(&["WORKSPACE_HIBERNATED".into(), "WORKSPACE_RESUMED".into(), "WORKSPACE_ONLINE".into()]));
}

async fn deleted_workspace_answers_410_and_state_says_deleted_even_to_its_own_token(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (id, runtime, token) = app.create_registered("w").await;
    let deleted = app.admin.delete_workspace(id).await.unwrap();
    assert_eq!(deleted.status, "removed");
    assert_eq!(deleted.cascade_deleted, 0);
    // Idempotent.
    assert_eq!(app.admin.delete_workspace(id).await.unwrap().status, "removed");
    for _ in 0..3 {
        let err = runtime.heartbeat(&heartbeat(id)).await.unwrap_err();
        assert_eq!(err.status(), Some(410), "{err}");
        assert!(err.to_string().contains("workspace removed"));
    }
    let err = runtime
        .register(&RegisterRequest { id, url: "http://localhost:9000".into(), agent_card: None })
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(410));
    let err = runtime
        .update_card(&hearth_api::UpdateCardRequest { workspace_id: id, agent_card: serde_json::json!({}) })
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(410));
    assert_eq!(app.admin.get_workspace(id).await.unwrap().status, WorkspaceStatus::Removed);

    let response =
        app.raw().get(format!("{}/workspaces/{id}/state", app.url)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["deleted"], true);
    assert_eq!(body["status"], "removed");
    assert_eq!(body["workspace_id"], id.to_string());
    let state = runtime.workspace_state(id).await.unwrap();
    assert!(state.deleted);
    // A removed workspace is hidden from the list unless asked for.
    assert!(app.admin.list_workspaces(false).await.unwrap().iter().all(|w| w.id != id));
    assert!(app.admin.list_workspaces(true).await.unwrap().iter().any(|w| w.id == id));
    // Registering without a token mints nothing for a removed workspace.
    let fresh = app.create("gone-before-register").await;
    app.admin.delete_workspace(fresh.id).await.unwrap();
    let err = app
        .client(None)
        .register(&RegisterRequest { id: fresh.id, url: "http://localhost:9000".into(), agent_card: None })
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(410));
}

async fn delete_cascades_to_children(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let root = app.create("root").await;
    let child = app
        .admin
        .create_workspace(&hearth_api::CreateWorkspaceRequest {
            name: "child".into(),
            parent_id: Some(root.id),
            ..Default::default()
        })
        .await
        .unwrap();
    let deleted = app.admin.delete_workspace(root.id).await.unwrap();
    assert_eq!(deleted.cascade_deleted, 1);
    assert_eq!(app.admin.get_workspace(child.id).await.unwrap().status, WorkspaceStatus::Removed);
    assert_eq!(app.events_of(child.id).await.last().unwrap().event, "WORKSPACE_REMOVED");
}

async fn idle_workspaces_hibernate_when_enabled(engine: Engine) {
    let app = TestApp::spawn_with(engine, |s| s.hibernate_after = Some(std::time::Duration::ZERO)).await;
    let (id, runtime, _) = app.create_registered("idle").await;
    let (busy, busy_rt, _) = app.create_registered("busy").await;
    runtime.heartbeat(&heartbeat(id)).await.unwrap();
    busy_rt.heartbeat(&HeartbeatRequest { active_tasks: Some(2), ..heartbeat(busy) }).await.unwrap();
    let report = Sweeper::new(app.state.clone()).run_once().await;
    assert_eq!(report.hibernated, 1);
    assert_eq!(app.admin.get_workspace(id).await.unwrap().status, WorkspaceStatus::Hibernated);
    assert_eq!(app.admin.get_workspace(busy).await.unwrap().status, WorkspaceStatus::Online);
}
