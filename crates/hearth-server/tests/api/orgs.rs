//! Organisations (issue 23, first step): the admin creates, lists and reads
//! them; an org token may not (403); the admin acts in a named org on the
//! org-token routes (`?org=`) and revokes any org's token by its id, while
//! an org token stays in its own org (another org's is 404).

use hearth_api::{CreateTokenRequest, CreateWorkspaceRequest, ErrorCode};

use crate::harness::{Engine, TestApp};

crate::on_both_engines!(
    the_admin_creates_lists_and_reads_orgs_and_an_org_token_may_not,
    the_admin_manages_another_orgs_tokens_and_an_org_token_only_its_own,
);

async fn the_admin_creates_lists_and_reads_orgs_and_an_org_token_may_not(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let acme = app.admin.create_org("acme").await.unwrap();
    assert_eq!(acme.name, "acme");
    assert_eq!(acme.workspaces, None, "counts only on GET /orgs/{{id}}");
    let names: Vec<String> = app.admin.list_orgs().await.unwrap().into_iter().map(|o| o.name).collect();
    assert_eq!(names, ["acme", "default"]);

    let taken = app.admin.create_org("acme").await.unwrap_err();
    assert_eq!((taken.status(), taken.code()), (Some(409), Some(ErrorCode::Conflict)), "{taken}");
    assert!(taken.to_string().contains("an org with this name already exists"), "{taken}");
    for name in ["  ", "bell\u{7}", &"x".repeat(256)] {
        let bad = app.admin.create_org(name).await.unwrap_err();
        assert_eq!((bad.status(), bad.code()), (Some(400), Some(ErrorCode::InvalidField)), "{name:?}: {bad}");
    }
    assert_eq!(app.admin.list_orgs().await.unwrap().len(), 2, "nothing written for a refused name");
    let unknown = app.admin.get_org(uuid::Uuid::new_v4()).await.unwrap_err();
    assert_eq!(unknown.status(), Some(404), "{unknown}");
    let raw = app.raw().get(format!("{}/orgs/not-an-id", app.url)).bearer_auth(&app.admin_token).send().await.unwrap();
    assert_eq!(raw.status().as_u16(), 400);

    // Its workspaces, counted by status: one created by its own org token.
    let secret = app
        .admin
        .create_org_token_in(Some(acme.id), &CreateTokenRequest { name: Some("acme-ops".into()) })
        .await
        .unwrap()
        .auth_token
        .unwrap();
    let acme_ops = app.client(Some(&secret));
    let ws = acme_ops
        .create_workspace(&CreateWorkspaceRequest { name: "acme-w".into(), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(app.admin.get_workspace(ws.id).await.unwrap().org_id, acme.id);
    let read = app.admin.get_org(acme.id).await.unwrap();
    let counts = read.workspaces.expect("counted");
    assert_eq!((counts.total, counts.by_status["provisioning"]), (1, 1));
    let default = app.admin.list_orgs().await.unwrap().into_iter().find(|o| o.name == "default").unwrap();
    assert_eq!(app.admin.get_org(default.id).await.unwrap().workspaces.unwrap().total, 0);

    // An org token is valid, but these routes are the admin's.
    for refused in [
        acme_ops.create_org("mine").await.unwrap_err(),
        acme_ops.list_orgs().await.unwrap_err(),
        acme_ops.get_org(acme.id).await.unwrap_err(),
    ] {
        assert_eq!((refused.status(), refused.code()), (Some(403), Some(ErrorCode::Forbidden)), "{refused}");
        assert!(refused.to_string().contains("admin token"), "{refused}");
    }
    let anonymous = app.client(None).list_orgs().await.unwrap_err();
    assert_eq!(anonymous.status(), Some(401));
}

async fn the_admin_manages_another_orgs_tokens_and_an_org_token_only_its_own(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let acme = app.admin.create_org("acme").await.unwrap();
    let named = |name: &str| CreateTokenRequest { name: Some(name.into()) };
    let in_acme = app.admin.create_org_token_in(Some(acme.id), &named("acme-ops")).await.unwrap();
    let in_default = app.admin.create_org_token(&named("default-ops")).await.unwrap();

    // The admin lists each org's own tokens; without ?org=, the default org's.
    let listed = |tokens: Vec<hearth_api::TokenResponse>| tokens.into_iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(listed(app.admin.list_org_tokens_in(Some(acme.id)).await.unwrap()), [in_acme.id]);
    assert_eq!(listed(app.admin.list_org_tokens().await.unwrap()), [in_default.id]);
    let nowhere = app.admin.list_org_tokens_in(Some(uuid::Uuid::new_v4())).await.unwrap_err();
    assert_eq!(nowhere.status(), Some(404), "an org that does not exist: {nowhere}");
    let nowhere = app.admin.create_org_token_in(Some(uuid::Uuid::new_v4()), &named("x")).await.unwrap_err();
    assert_eq!(nowhere.status(), Some(404), "{nowhere}");
    let raw = app.raw().get(format!("{}/org/tokens?org=nope", app.url)).bearer_auth(&app.admin_token).send().await;
    assert_eq!(raw.unwrap().status().as_u16(), 400);

    // An org token: its own org, named or not; another org is 404, for
    // listing, creating and revoking alike.
    let acme_ops = app.client(in_acme.auth_token.as_deref());
    assert_eq!(listed(acme_ops.list_org_tokens().await.unwrap()), [in_acme.id]);
    assert_eq!(listed(acme_ops.list_org_tokens_in(Some(acme.id)).await.unwrap()), [in_acme.id]);
    let default_org = app.admin.list_orgs().await.unwrap().into_iter().find(|o| o.name == "default").unwrap();
    for refused in [
        acme_ops.list_org_tokens_in(Some(default_org.id)).await.map(|_| ()).unwrap_err(),
        acme_ops.create_org_token_in(Some(default_org.id), &named("sneaky")).await.map(|_| ()).unwrap_err(),
        acme_ops.revoke_org_token(in_default.id).await.unwrap_err(),
    ] {
        assert_eq!(refused.status(), Some(404), "{refused}");
    }
    assert_eq!(app.admin.list_org_tokens().await.unwrap().len(), 1, "nothing created in the default org");

    // A leaked token of another org: the admin revokes it by its id alone.
    app.admin.revoke_org_token(in_acme.id).await.unwrap();
    let after = acme_ops.list_org_tokens().await.unwrap_err();
    assert_eq!(after.status(), Some(401), "revoked at once: {after}");
    let default_ops = app.client(in_default.auth_token.as_deref());
    assert_eq!(default_ops.list_org_tokens().await.unwrap().len(), 1, "the default org's token still works");
}
