//! Typed async HTTP client for the Hearth API (PROTOCOL.md), over the wire
//! types of `hearth-api`. Used by `hearth agent`, the operator CLI and the
//! end-to-end harness.
//!
//! Invariant: this crate depends on no server or store crate; everything it
//! knows about the server is in `hearth-api` and PROTOCOL.md.
//!
//! ```no_run
//! # async fn demo() -> Result<(), hearth_client::ClientError> {
//! let client = hearth_client::Client::new("http://127.0.0.1:7878", Some("token".into()))?;
//! for workspace in client.list_workspaces(false).await? {
//!     println!("{} {}", workspace.id, workspace.status);
//! }
//! # Ok(()) }
//! ```

mod error;
mod events;
pub mod sse;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hearth_api::{
    BuildInfo, CreateTokenRequest, CreateWorkspaceRequest, CreateWorkspacesRequest, CreateWorkspacesResponse,
    DeleteResponse, DiscoverResponse, EventResponse, HeartbeatRequest, HeartbeatResponse, Peer, RegisterRequest,
    RegisterResponse, StateResponse, StatusResponse, TokenResponse, UpdateCardRequest, WorkspaceResponse,
};
use hearth_core::WorkspaceId;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

pub use error::ClientError;
pub use events::EventStream;

/// How long establishing a TCP connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a whole request/response exchange may take (not event streams).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long downloading one asset or plugin tarball may take: model files
/// can be large, so this is more generous than [`REQUEST_TIMEOUT`].
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(600);

/// Which certificate authorities an `https://` server's certificate may
/// chain to: the Mozilla roots compiled into the client (webpki-roots, the
/// same on every machine, whatever its CA store holds), plus any CA given
/// here — a private CA, or a self-signed server certificate.
#[derive(Clone, Default)]
pub struct TlsRoots {
    extra: Vec<reqwest::Certificate>,
}

impl fmt::Debug for TlsRoots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsRoots").field("extra", &self.extra.len()).finish()
    }
}

impl TlsRoots {
    /// The compiled-in roots only.
    pub fn system() -> Self {
        Self::default()
    }

    /// The compiled-in roots and every certificate of the PEM bundle `pem`
    /// (`source` names it in errors).
    pub fn with_ca_pem(pem: &[u8], source: &str) -> Result<Self, ClientError> {
        let extra = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|err| ClientError::Config(format!("{source} is not a PEM certificate bundle: {err}")))?;
        if extra.is_empty() {
            return Err(ClientError::Config(format!("{source} holds no PEM certificate")));
        }
        Ok(Self { extra })
    }

    /// The compiled-in roots and the CA bundle in the file at `path` (PEM).
    pub fn with_ca_file(path: &std::path::Path) -> Result<Self, ClientError> {
        let pem = std::fs::read(path)
            .map_err(|err| ClientError::Config(format!("cannot read the CA bundle {}: {err}", path.display())))?;
        Self::with_ca_pem(&pem, &path.display().to_string())
    }

    /// [`TlsRoots::with_ca_file`] when a path is given, the compiled-in roots otherwise.
    pub fn from_option(path: Option<&std::path::Path>) -> Result<Self, ClientError> {
        path.map_or_else(|| Ok(Self::system()), Self::with_ca_file)
    }
}

/// A Hearth API client. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// `http://host:port[/prefix]`, without a trailing slash.
    base: String,
    token: Option<String>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the token.
        f.debug_struct("Client").field("base", &self.base).field("token", &self.token.as_ref().map(|_| "…")).finish()
    }
}

impl Client {
    /// A client for the server at `base_url` (`http://host:port`, optionally
    /// with a path prefix), sending `token` as `Authorization: Bearer`.
    pub fn new(base_url: impl AsRef<str>, token: Option<String>) -> Result<Self, ClientError> {
        Self::with_roots(base_url, token, &TlsRoots::system())
    }

    /// [`Client::new`] that also trusts the CAs of `roots` for `https://`
    /// (TLS by rustls; the compiled-in Mozilla roots always apply).
    pub fn with_roots(base_url: impl AsRef<str>, token: Option<String>, roots: &TlsRoots) -> Result<Self, ClientError> {
        let base = normalize_base_url(base_url.as_ref())?;
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("hearth-client/", env!("CARGO_PKG_VERSION")));
        for certificate in &roots.extra {
            builder = builder.add_root_certificate(certificate.clone());
        }
        let http = builder
            .build()
            .map_err(|err| ClientError::Transport(format!("could not set up the HTTP client: {err}")))?;
        Ok(Self { http, base, token })
    }

    /// The same client (sharing its connection pool) with another token.
    pub fn with_token(&self, token: Option<String>) -> Self {
        Self { token, ..self.clone() }
    }

    /// The base URL requests go to, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    // --- service -----------------------------------------------------------

    /// `GET /health`.
    pub async fn health(&self) -> Result<StatusResponse, ClientError> {
        self.get("/health").await
    }

    /// `GET /readyz`: the server can serve (its database answers and is
    /// migrated); a 503 otherwise.
    pub async fn ready(&self) -> Result<StatusResponse, ClientError> {
        self.get("/readyz").await
    }

    /// `GET /buildinfo`.
    pub async fn buildinfo(&self) -> Result<BuildInfo, ClientError> {
        self.get("/buildinfo").await
    }

    // --- registry (runtime → Hearth) ---------------------------------------

    /// `POST /registry/register`. The answer carries `auth_token` when this
    /// call minted the workspace's token.
    pub async fn register(&self, request: &RegisterRequest) -> Result<RegisterResponse, ClientError> {
        self.send_json(Method::POST, "/registry/register", request).await
    }

    /// `POST /registry/heartbeat`.
    pub async fn heartbeat(&self, request: &HeartbeatRequest) -> Result<HeartbeatResponse, ClientError> {
        self.send_json(Method::POST, "/registry/heartbeat", request).await
    }

    /// `POST /registry/update-card`.
    pub async fn update_card(&self, request: &UpdateCardRequest) -> Result<StatusResponse, ClientError> {
        self.send_json(Method::POST, "/registry/update-card", request).await
    }

    /// `GET /registry/{id}/peers[?q=]`: every peer (siblings, children,
    /// parent), following the pages.
    pub async fn peers(&self, id: WorkspaceId, query: Option<&str>) -> Result<Vec<Peer>, ClientError> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let (page, next) = self.peers_page(id, query, None, cursor.as_deref()).await?;
            all.extend(page);
            match next {
                Some(next) => cursor = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// One page of `GET /registry/{id}/peers` and the cursor of the next
    /// page, if any (`X-Next-Cursor`). `limit`: the server's default when
    /// `None`.
    pub async fn peers_page(
        &self,
        id: WorkspaceId,
        query: Option<&str>,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<(Vec<Peer>, Option<String>), ClientError> {
        let mut params: Vec<(&str, String)> = Vec::new();
        params.extend(query.map(|q| ("q", q.to_owned())));
        params.extend(limit.map(|limit| ("limit", limit.to_string())));
        params.extend(cursor.map(|cursor| ("cursor", cursor.to_owned())));
        self.page(&format!("/registry/{id}/peers"), &params).await
    }

    /// `GET /registry/discover/{target}` on behalf of `caller` (sent as
    /// `X-Workspace-ID`).
    pub async fn discover(&self, caller: WorkspaceId, target: WorkspaceId) -> Result<DiscoverResponse, ClientError> {
        let path = format!("/registry/discover/{target}");
        self.call(Method::GET, &path, |request| request.header("X-Workspace-ID", caller.to_string())).await
    }

    // --- workspace (runtime and operator) ----------------------------------

    /// `GET /workspaces/{id}/state`. A deleted workspace is not an error
    /// here: the server's 404 `{"status": "removed", "deleted": true}` is
    /// returned as a [`StateResponse`] so a runtime can see it must exit.
    pub async fn workspace_state(&self, id: WorkspaceId) -> Result<StateResponse, ClientError> {
        let path = format!("/workspaces/{id}/state");
        let (status, body) = self.exchange(Method::GET, &path, |request| request).await?;
        if status.is_success() {
            return decode(&Method::GET, &path, &body);
        }
        if status == StatusCode::NOT_FOUND {
            if let Ok(state) = serde_json::from_str::<StateResponse>(&body) {
                return Ok(state);
            }
        }
        Err(ClientError::from_body(status, &body))
    }

    /// `GET /workspaces/{id}/secrets/values`: org secrets overlaid by the
    /// workspace's own.
    pub async fn secret_values(&self, id: WorkspaceId) -> Result<BTreeMap<String, String>, ClientError> {
        self.get(&format!("/workspaces/{id}/secrets/values")).await
    }

    /// `PUT /workspaces/{id}/secrets`.
    pub async fn put_workspace_secrets(
        &self,
        id: WorkspaceId,
        secrets: &BTreeMap<String, String>,
    ) -> Result<(), ClientError> {
        let path = format!("/workspaces/{id}/secrets");
        self.call_ignoring_body(Method::PUT, &path, |request| request.json(secrets)).await
    }

    /// `PUT /org/secrets`.
    pub async fn put_org_secrets(&self, secrets: &BTreeMap<String, String>) -> Result<(), ClientError> {
        self.call_ignoring_body(Method::PUT, "/org/secrets", |request| request.json(secrets)).await
    }

    // --- operator ----------------------------------------------------------

    /// `POST /workspaces`. With `issue_token: true` the answer carries the
    /// workspace token (shown once).
    pub async fn create_workspace(&self, request: &CreateWorkspaceRequest) -> Result<WorkspaceResponse, ClientError> {
        self.create_workspace_in(None, request).await
    }

    /// `POST /workspaces?org=ORG`: [`Client::create_workspace`] in `org`
    /// (the admin's choice; `None`: the caller's org).
    pub async fn create_workspace_in(
        &self,
        org: Option<Uuid>,
        request: &CreateWorkspaceRequest,
    ) -> Result<WorkspaceResponse, ClientError> {
        self.send_json(Method::POST, &in_org("/workspaces", org), request).await
    }

    /// `POST /workspaces/batch`: up to 1000 workspaces, all created or none;
    /// the answer lists them in the order asked.
    pub async fn create_workspaces(
        &self,
        workspaces: Vec<CreateWorkspaceRequest>,
    ) -> Result<Vec<WorkspaceResponse>, ClientError> {
        let request = CreateWorkspacesRequest { workspaces };
        let response: CreateWorkspacesResponse = self.send_json(Method::POST, "/workspaces/batch", &request).await?;
        Ok(response.workspaces)
    }

    /// `GET /workspaces[?include_removed=true]`.
    pub async fn list_workspaces(&self, include_removed: bool) -> Result<Vec<WorkspaceResponse>, ClientError> {
        self.list_workspaces_in(None, include_removed).await
    }

    /// `GET /workspaces?org=ORG`, every page: [`Client::list_workspaces`]
    /// of one org (the admin's filter; `None`: every org the token sees).
    pub async fn list_workspaces_in(
        &self,
        org: Option<Uuid>,
        include_removed: bool,
    ) -> Result<Vec<WorkspaceResponse>, ClientError> {
        let params = vec![("include_removed", include_removed.to_string())];
        self.all_pages("/workspaces", org, params).await
    }

    /// Every page of a paged list route (`params`, and `org` when given),
    /// following `X-Next-Cursor`.
    async fn all_pages<T: DeserializeOwned>(
        &self,
        path: &str,
        org: Option<Uuid>,
        mut params: Vec<(&'static str, String)>,
    ) -> Result<Vec<T>, ClientError> {
        params.extend(org.map(|org| ("org", org.to_string())));
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut asked = params.clone();
            asked.extend(cursor.take().map(|cursor| ("cursor", cursor)));
            let (page, next) = self.page(path, &asked).await?;
            all.extend(page);
            match next {
                Some(next) => cursor = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// One page of `GET /workspaces` and the cursor of the next page, if
    /// any (`X-Next-Cursor`). `limit`: the server's default when `None`.
    pub async fn list_workspaces_page(
        &self,
        include_removed: bool,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<(Vec<WorkspaceResponse>, Option<String>), ClientError> {
        let mut params: Vec<(&str, String)> = vec![("include_removed", include_removed.to_string())];
        params.extend(limit.map(|limit| ("limit", limit.to_string())));
        params.extend(cursor.map(|cursor| ("cursor", cursor.to_owned())));
        self.page("/workspaces", &params).await
    }

    /// One page of a paged list route and the next page's cursor
    /// (`X-Next-Cursor`), if any.
    async fn page<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<(Vec<T>, Option<String>), ClientError> {
        let response = self.open(Method::GET, path, Some(REQUEST_TIMEOUT), |request| request.query(params)).await?;
        let status = response.status();
        let next = response.headers().get("x-next-cursor").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = response.text().await.map_err(|err| ClientError::transport(&Method::GET, &self.url(path), &err))?;
        if !status.is_success() {
            return Err(ClientError::from_body(status, &body));
        }
        Ok((decode(&Method::GET, path, &body)?, next))
    }

    /// `GET /workspaces/{id}`.
    pub async fn get_workspace(&self, id: WorkspaceId) -> Result<WorkspaceResponse, ClientError> {
        self.get(&format!("/workspaces/{id}")).await
    }

    /// `DELETE /workspaces/{id}` (descendants too; idempotent).
    pub async fn delete_workspace(&self, id: WorkspaceId) -> Result<DeleteResponse, ClientError> {
        self.call(Method::DELETE, &format!("/workspaces/{id}"), |request| request).await
    }

    /// `POST /workspaces/{id}/pause`.
    pub async fn pause(&self, id: WorkspaceId) -> Result<StatusResponse, ClientError> {
        self.lifecycle(id, "pause").await
    }

    /// `POST /workspaces/{id}/resume`.
    pub async fn resume(&self, id: WorkspaceId) -> Result<StatusResponse, ClientError> {
        self.lifecycle(id, "resume").await
    }

    /// `POST /workspaces/{id}/restart`.
    pub async fn restart(&self, id: WorkspaceId) -> Result<StatusResponse, ClientError> {
        self.lifecycle(id, "restart").await
    }

    /// `POST /workspaces/{id}/hibernate`.
    pub async fn hibernate(&self, id: WorkspaceId) -> Result<StatusResponse, ClientError> {
        self.lifecycle(id, "hibernate").await
    }

    /// `POST /workspaces/{id}/tokens`: a new token for that workspace; with
    /// `revoke_previous_after_seconds`, a rotation.
    pub async fn create_workspace_token(
        &self,
        id: WorkspaceId,
        request: &hearth_api::CreateWorkspaceTokenRequest,
    ) -> Result<TokenResponse, ClientError> {
        self.send_json(Method::POST, &format!("/workspaces/{id}/tokens"), request).await
    }

    /// `GET /workspaces/{id}/tokens`: the workspace's tokens (no secrets).
    pub async fn list_workspace_tokens(&self, id: WorkspaceId) -> Result<Vec<TokenResponse>, ClientError> {
        self.get(&format!("/workspaces/{id}/tokens")).await
    }

    /// `DELETE /workspaces/{id}/tokens/{token}`: revokes it at once.
    pub async fn revoke_workspace_token(&self, id: WorkspaceId, token: Uuid) -> Result<(), ClientError> {
        self.call_ignoring_body(Method::DELETE, &format!("/workspaces/{id}/tokens/{token}"), |request| request).await
    }

    /// `POST /org/tokens`: a new org API token (the secret is in
    /// `auth_token`, returned only here).
    pub async fn create_org_token(&self, request: &CreateTokenRequest) -> Result<TokenResponse, ClientError> {
        self.create_org_token_in(None, request).await
    }

    /// `POST /org/tokens?org=ORG`: [`Client::create_org_token`] in `org`
    /// (the admin's choice; `None`: the caller's org, the default org for
    /// the admin).
    pub async fn create_org_token_in(
        &self,
        org: Option<Uuid>,
        request: &CreateTokenRequest,
    ) -> Result<TokenResponse, ClientError> {
        self.send_json(Method::POST, &in_org("/org/tokens", org), request).await
    }

    /// `GET /org/tokens`.
    pub async fn list_org_tokens(&self) -> Result<Vec<TokenResponse>, ClientError> {
        self.list_org_tokens_in(None).await
    }

    /// `GET /org/tokens?org=ORG`.
    pub async fn list_org_tokens_in(&self, org: Option<Uuid>) -> Result<Vec<TokenResponse>, ClientError> {
        self.get(&in_org("/org/tokens", org)).await
    }

    // --- orgs (admin) ---------------------------------------------------------

    /// `POST /orgs`.
    pub async fn create_org(&self, name: &str) -> Result<hearth_api::OrgResponse, ClientError> {
        self.send_json(Method::POST, "/orgs", &hearth_api::CreateOrgRequest { name: name.to_owned() }).await
    }

    /// `GET /orgs`.
    pub async fn list_orgs(&self) -> Result<Vec<hearth_api::OrgResponse>, ClientError> {
        self.get("/orgs").await
    }

    /// `PUT /orgs/{id}/quotas`: sets every quota of the org (`None`: none).
    pub async fn set_org_quotas(
        &self,
        id: Uuid,
        quotas: &hearth_api::OrgQuotas,
    ) -> Result<hearth_api::OrgResponse, ClientError> {
        self.send_json(Method::PUT, &format!("/orgs/{id}/quotas"), quotas).await
    }

    /// `DELETE /orgs/{id}` (with `?cascade=true`: its workspaces first).
    pub async fn delete_org(&self, id: Uuid, cascade: bool) -> Result<hearth_api::DeleteOrgResponse, ClientError> {
        let path = if cascade { format!("/orgs/{id}?cascade=true") } else { format!("/orgs/{id}") };
        self.call(Method::DELETE, &path, |request| request).await
    }

    /// `GET /whoami`: the presented token's role, org and id.
    pub async fn whoami(&self) -> Result<hearth_api::WhoamiResponse, ClientError> {
        self.get("/whoami").await
    }

    /// `GET /orgs/{id}`: the org with its workspaces counted by status.
    pub async fn get_org(&self, id: Uuid) -> Result<hearth_api::OrgResponse, ClientError> {
        self.get(&format!("/orgs/{id}")).await
    }

    /// `DELETE /org/tokens/{id}`.
    pub async fn revoke_org_token(&self, id: Uuid) -> Result<(), ClientError> {
        self.call_ignoring_body(Method::DELETE, &format!("/org/tokens/{id}"), |request| request).await
    }

    // --- templates and plugins (operator) ----------------------------------

    /// `POST /templates/import`: imports (or replaces) a template.
    pub async fn import_template(
        &self,
        request: &hearth_api::ImportTemplateRequest,
    ) -> Result<hearth_api::ImportTemplateResponse, ClientError> {
        self.import_template_in(None, request).await
    }

    /// `POST /templates/import?org=ORG`.
    pub async fn import_template_in(
        &self,
        org: Option<Uuid>,
        request: &hearth_api::ImportTemplateRequest,
    ) -> Result<hearth_api::ImportTemplateResponse, ClientError> {
        self.send_json(Method::POST, &in_org("/templates/import", org), request).await
    }

    /// `GET /templates`.
    pub async fn list_templates(&self) -> Result<Vec<hearth_api::TemplateResponse>, ClientError> {
        self.list_templates_in(None).await
    }

    /// `GET /templates?org=ORG`, every page (the admin's filter).
    pub async fn list_templates_in(&self, org: Option<Uuid>) -> Result<Vec<hearth_api::TemplateResponse>, ClientError> {
        self.all_pages("/templates", org, Vec::new()).await
    }

    /// `GET /templates/{id-or-name}`: a template by its id or its name.
    pub async fn get_template(&self, id_or_name: &str) -> Result<hearth_api::TemplateResponse, ClientError> {
        self.get(&format!("/templates/{}", encode_path_segment(id_or_name))).await
    }

    /// `POST /plugins` with a JSON body: pushes (or replaces) a plugin.
    pub async fn push_plugin_json(
        &self,
        request: &hearth_api::UploadPluginRequest,
    ) -> Result<hearth_api::PluginResponse, ClientError> {
        self.push_plugin_json_in(None, request).await
    }

    /// `POST /plugins?org=ORG` with a JSON body.
    pub async fn push_plugin_json_in(
        &self,
        org: Option<Uuid>,
        request: &hearth_api::UploadPluginRequest,
    ) -> Result<hearth_api::PluginResponse, ClientError> {
        self.send_json(Method::POST, &in_org("/plugins", org), request).await
    }

    /// `POST /plugins` with a gzip tarball body (entries relative to the
    /// plugin root).
    pub async fn push_plugin_tarball(&self, tarball: Vec<u8>) -> Result<hearth_api::PluginResponse, ClientError> {
        self.push_plugin_tarball_in(None, tarball).await
    }

    /// `POST /plugins?org=ORG` with a gzip tarball body.
    pub async fn push_plugin_tarball_in(
        &self,
        org: Option<Uuid>,
        tarball: Vec<u8>,
    ) -> Result<hearth_api::PluginResponse, ClientError> {
        self.call(Method::POST, &in_org("/plugins", org), |request| {
            request.header(reqwest::header::CONTENT_TYPE, "application/gzip").body(tarball)
        })
        .await
    }

    /// `GET /plugins`: every plugin, page after page.
    pub async fn list_plugins(&self) -> Result<Vec<hearth_api::PluginResponse>, ClientError> {
        self.list_plugins_in(None).await
    }

    /// `GET /plugins?org=ORG`, every page (the admin's filter).
    pub async fn list_plugins_in(&self, org: Option<Uuid>) -> Result<Vec<hearth_api::PluginResponse>, ClientError> {
        self.all_pages("/plugins", org, Vec::new()).await
    }

    /// One page of `GET /plugins` and the cursor of the next page, if any
    /// (`X-Next-Cursor`). `limit`: the server's default when `None`.
    pub async fn list_plugins_page(
        &self,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<(Vec<hearth_api::PluginResponse>, Option<String>), ClientError> {
        let mut params: Vec<(&str, String)> = Vec::new();
        params.extend(limit.map(|limit| ("limit", limit.to_string())));
        params.extend(cursor.map(|cursor| ("cursor", cursor.to_owned())));
        self.page("/plugins", &params).await
    }

    // --- events ------------------------------------------------------------

    /// `GET /events?since=&workspace_id=&limit=`: one ascending page of
    /// events with `seq` greater than `since`.
    pub async fn list_events(
        &self,
        since: Option<i64>,
        workspace_id: Option<WorkspaceId>,
        limit: Option<u32>,
    ) -> Result<Vec<EventResponse>, ClientError> {
        self.list_events_in(None, since, workspace_id, limit).await
    }

    /// [`Client::list_events`] of one org (`?org=ORG`, the admin's filter).
    pub async fn list_events_in(
        &self,
        org: Option<Uuid>,
        since: Option<i64>,
        workspace_id: Option<WorkspaceId>,
        limit: Option<u32>,
    ) -> Result<Vec<EventResponse>, ClientError> {
        let mut params: Vec<(&str, String)> = Vec::new();
        params.extend(org.map(|org| ("org", org.to_string())));
        if let Some(since) = since {
            params.push(("since", since.to_string()));
        }
        if let Some(id) = workspace_id {
            params.push(("workspace_id", id.to_string()));
        }
        if let Some(limit) = limit {
            params.push(("limit", limit.to_string()));
        }
        self.call(Method::GET, "/events", |request| request.query(&params)).await
    }

    /// Follows the live event stream (`GET /events/stream`, or
    /// `GET /workspaces/{id}/events/stream` when `workspace` is given),
    /// starting after `since` when given.
    ///
    /// Connecting happens here, so a refused connection or a 401 is this
    /// call's error. The returned stream then yields events until it is
    /// dropped. When the connection breaks or goes silent (no keep-alive for
    /// 45 s), it reconnects with `Last-Event-ID` set to the last event
    /// received, so nothing is skipped or repeated; it ends with one error
    /// item if the server stays unreachable (about 25 s of retries) or
    /// refuses the reconnect.
    pub async fn follow_events(
        &self,
        since: Option<i64>,
        workspace: Option<WorkspaceId>,
    ) -> Result<EventStream, ClientError> {
        events::follow(self.clone(), None, since, workspace).await
    }

    /// [`Client::follow_events`] of one org (`GET /events/stream?org=ORG`,
    /// the admin's filter).
    pub async fn follow_events_in(&self, org: Option<Uuid>, since: Option<i64>) -> Result<EventStream, ClientError> {
        events::follow(self.clone(), org, since, None).await
    }

    // --- assets and plugins (runtime) ----------------------------------------

    /// `GET /workspaces/{id}/assets`: the workspace's template files (path,
    /// sha256, size) and their digest.
    pub async fn assets_manifest(&self, id: WorkspaceId) -> Result<hearth_api::AssetsManifest, ClientError> {
        self.get(&format!("/workspaces/{id}/assets")).await
    }

    /// `GET /workspaces/{id}/assets/{path}`: one asset's bytes. `path` is the
    /// file's `/`-separated path in the template; each segment is
    /// percent-encoded on its own so the separators stay separators. A path
    /// that is not a valid bundle path (empty, absolute, `..`) is refused
    /// here, because URL normalization would otherwise change which file is
    /// asked for.
    pub async fn asset_bytes(&self, id: WorkspaceId, path: &str) -> Result<Vec<u8>, ClientError> {
        let checked = hearth_core::bundle_path::BundlePath::new(path)
            .map_err(|err| ClientError::InvalidUrl(format!("cannot ask for asset {path:?}: {err}")))?;
        let encoded: Vec<String> = checked.segments().map(encode_path_segment).collect();
        let (body, _headers) = self.download(&format!("/workspaces/{id}/assets/{}", encoded.join("/"))).await?;
        Ok(body)
    }

    /// `GET /workspaces/{id}/plugins/{name}/download`: the plugin's gzip
    /// tarball and the `X-Plugin-Sha256` header (its content-manifest hash)
    /// when the server sent one.
    pub async fn download_plugin(&self, id: WorkspaceId, name: &str) -> Result<(Vec<u8>, Option<String>), ClientError> {
        let path = format!("/workspaces/{id}/plugins/{}/download", encode_path_segment(name));
        let (body, headers) = self.download(&path).await?;
        // A header that is not visible ASCII cannot be a hash; treat it as
        // absent rather than failing, since the caller verifies the content
        // against the hash it expects anyway.
        let sha256 = headers.get("x-plugin-sha256").and_then(|value| value.to_str().ok()).map(str::to_owned);
        Ok((body, sha256))
    }

    /// `GET /workspaces/{id}/logs`: the runtime's log, its last `tail` lines
    /// (the server's default when `None`), and with `follow` what it writes
    /// next. The answer is read as it comes: `next_chunk` on the returned
    /// [`LogReader`] yields each piece; `None` once the server ends it.
    pub async fn workspace_logs(
        &self,
        id: WorkspaceId,
        tail: Option<usize>,
        follow: bool,
    ) -> Result<LogReader, ClientError> {
        let mut path = format!("/workspaces/{id}/logs?follow={follow}");
        if let Some(tail) = tail {
            path.push_str(&format!("&tail={tail}"));
        }
        let timeout = (!follow).then_some(DOWNLOAD_TIMEOUT);
        let response = self.open(Method::GET, &path, timeout, |request| request).await?;
        let status = response.status();
        if !status.is_success() {
            let body =
                response.text().await.map_err(|err| ClientError::transport(&Method::GET, &self.url(&path), &err))?;
            return Err(ClientError::from_body(status, &body));
        }
        Ok(LogReader { response, url: self.url(&path) })
    }

    /// `POST /workspaces/{id}/plugins`: reports that the runtime installed a
    /// plugin (`source` is `local://<name>`; a `sha256` that is not the
    /// plugin's is a 422).
    pub async fn record_install(
        &self,
        id: WorkspaceId,
        request: &hearth_api::RecordInstallRequest,
    ) -> Result<hearth_api::RecordInstallResponse, ClientError> {
        self.send_json(Method::POST, &format!("/workspaces/{id}/plugins"), request).await
    }

    /// `GET /workspaces/{id}/plugins`: desired vs installed plugins.
    pub async fn workspace_plugins(
        &self,
        id: WorkspaceId,
    ) -> Result<hearth_api::WorkspacePluginsResponse, ClientError> {
        self.get(&format!("/workspaces/{id}/plugins")).await
    }

    // --- dashboard and waiting ------------------------------------------------

    /// `GET /workspaces/counts`: workspaces per status.
    pub async fn workspace_counts(&self) -> Result<hearth_api::WorkspaceCounts, ClientError> {
        self.get("/workspaces/counts").await
    }

    /// `GET /plugins/{name}`: a plugin and its files.
    pub async fn get_plugin(&self, name: &str) -> Result<hearth_api::PluginDetailResponse, ClientError> {
        self.get(&format!("/plugins/{}", encode_path_segment(name))).await
    }

    /// One page of `GET /workspaces` with filters (`status`, `q`, `template`,
    /// `plugin`, as query pairs) and the next page's cursor.
    pub async fn list_workspaces_filtered(
        &self,
        filters: &[(&str, &str)],
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<(Vec<WorkspaceResponse>, Option<String>), ClientError> {
        let mut params: Vec<(&str, String)> = filters.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        params.extend(limit.map(|limit| ("limit", limit.to_string())));
        params.extend(cursor.map(|cursor| ("cursor", cursor.to_owned())));
        self.page("/workspaces", &params).await
    }

    /// `GET /workspaces/{id}/wait?for=…&timeout=…`: one long poll that the
    /// server answers when the workspace gets there, when it never can
    /// (`impossible`), or after at most `timeout_secs` (`timed_out`; the
    /// server may answer sooner, before its own request deadline).
    pub async fn wait_for(
        &self,
        id: WorkspaceId,
        target: &hearth_api::WaitFor,
        timeout_secs: u64,
    ) -> Result<hearth_api::WaitResponse, ClientError> {
        let path = format!("/workspaces/{id}/wait");
        let params = [("for", target.to_string()), ("timeout", timeout_secs.to_string())];
        // The answer may take the whole wait, plus time to send it.
        let limit = Duration::from_secs(timeout_secs) + REQUEST_TIMEOUT;
        let response = self.open(Method::GET, &path, Some(limit), |request| request.query(&params)).await?;
        let status = response.status();
        let body = response.text().await.map_err(|err| ClientError::transport(&Method::GET, &self.url(&path), &err))?;
        if !status.is_success() {
            return Err(ClientError::from_body(status, &body));
        }
        decode(&Method::GET, &path, &body)
    }

    // --- plumbing ----------------------------------------------------------

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn request(&self, method: Method, url: &str) -> RequestBuilder {
        let request = self
            .http
            .request(method, url)
            .header(hearth_api::PROTOCOL_HEADER, hearth_api::PROTOCOL_VERSION.to_string());
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends a request and returns the response whatever its status.
    async fn open(
        &self,
        method: Method,
        path: &str,
        timeout: Option<Duration>,
        prepare: impl FnOnce(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, ClientError> {
        let url = self.url(path);
        let mut request = prepare(self.request(method.clone(), &url));
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        request.send().await.map_err(|err| ClientError::transport(&method, &url, &err))
    }

    /// One exchange: status and body text.
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        prepare: impl FnOnce(RequestBuilder) -> RequestBuilder,
    ) -> Result<(StatusCode, String), ClientError> {
        let response = self.open(method.clone(), path, Some(REQUEST_TIMEOUT), prepare).await?;
        let status = response.status();
        let body = response.text().await.map_err(|err| ClientError::transport(&method, &self.url(path), &err))?;
        Ok((status, body))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        prepare: impl FnOnce(RequestBuilder) -> RequestBuilder,
    ) -> Result<T, ClientError> {
        let (status, body) = self.exchange(method.clone(), path, prepare).await?;
        if !status.is_success() {
            return Err(ClientError::from_body(status, &body));
        }
        decode(&method, path, &body)
    }

    /// For routes whose success body carries nothing the caller needs (and
    /// may be empty).
    async fn call_ignoring_body(
        &self,
        method: Method,
        path: &str,
        prepare: impl FnOnce(RequestBuilder) -> RequestBuilder,
    ) -> Result<(), ClientError> {
        let (status, body) = self.exchange(method, path, prepare).await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(ClientError::from_body(status, &body))
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::GET, path, |request| request).await
    }

    async fn send_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.call(method, path, |request| request.json(body)).await
    }

    /// A `GET` whose success body is raw bytes (assets, tarballs), with the
    /// response headers. Error bodies are still decoded as `{"error"}`.
    async fn download(&self, path: &str) -> Result<(Vec<u8>, reqwest::header::HeaderMap), ClientError> {
        let response = self.open(Method::GET, path, Some(DOWNLOAD_TIMEOUT), |request| request).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let transport = |err: reqwest::Error| ClientError::transport(&Method::GET, &self.url(path), &err);
        if !status.is_success() {
            let body = response.text().await.map_err(transport)?;
            return Err(ClientError::from_body(status, &body));
        }
        let body = response.bytes().await.map_err(transport)?;
        Ok((body.to_vec(), headers))
    }

    async fn lifecycle(&self, id: WorkspaceId, action: &str) -> Result<StatusResponse, ClientError> {
        self.call(Method::POST, &format!("/workspaces/{id}/{action}"), |request| request).await
    }
}

fn decode<T: DeserializeOwned>(method: &Method, path: &str, body: &str) -> Result<T, ClientError> {
    serde_json::from_str(body).map_err(|err| {
        ClientError::Decode(format!("the answer to {method} {path} is not what this client expects: {err}"))
    })
}

/// Percent-encodes one URL path segment: everything but the RFC 3986
/// unreserved characters, so a `/`, `?`, `#` or `%` inside a name can never
/// change the route.
fn encode_path_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Checks `base_url` and strips its trailing slashes.
fn normalize_base_url(base_url: &str) -> Result<String, ClientError> {
    let invalid = |why: String| ClientError::InvalidUrl(format!("invalid server URL {base_url:?}: {why}"));
    let parsed = reqwest::Url::parse(base_url).map_err(|err| invalid(err.to_string()))?;
    match parsed.scheme() {
        "http" | "https" => {}
        // `host:port` parses as a URL whose scheme is the host.
        _ if !base_url.contains("://") => {
            return Err(invalid(format!("it needs a scheme, as in \"http://{base_url}\"")));
        }
        other => return Err(invalid(format!("the scheme must be http or https, not {other}"))),
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(invalid("it must not have a query or a fragment".into()));
    }
    Ok(base_url.trim_end_matches('/').to_owned())
}

/// A runtime's log as it arrives ([`Client::workspace_logs`]).
pub struct LogReader {
    response: Response,
    url: String,
}

impl LogReader {
    /// The next piece of the log; `None` once the server ends the answer.
    pub async fn next_chunk(&mut self) -> Result<Option<bytes::Bytes>, ClientError> {
        self.response.chunk().await.map_err(|err| ClientError::transport(&Method::GET, &self.url, &err))
    }
}

/// `path` with `?org=ORG` when an org is named.
fn in_org(path: &str, org: Option<Uuid>) -> String {
    match org {
        Some(org) => format!("{path}?org={org}"),
        None => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_lose_trailing_slashes_and_keep_their_prefix() {
        assert_eq!(normalize_base_url("http://127.0.0.1:7878/").unwrap(), "http://127.0.0.1:7878");
        assert_eq!(normalize_base_url("http://h:1/hearth//").unwrap(), "http://h:1/hearth");
    }

    #[test]
    fn unusable_base_urls_are_refused_with_a_reason() {
        let err = normalize_base_url("127.0.0.1:7878").unwrap_err();
        assert!(matches!(err, ClientError::InvalidUrl(_)), "{err:?}");
        assert_eq!(normalize_base_url("https://hearth.example/").unwrap(), "https://hearth.example");
        assert!(normalize_base_url("http://h/?x=1").is_err());
        assert!(normalize_base_url("ftp://h").is_err());
        let err = normalize_base_url("localhost:7878").unwrap_err();
        assert!(err.to_string().contains(r#"as in "http://localhost:7878""#), "{err}");
    }

    #[test]
    fn path_segments_are_encoded_one_by_one() {
        assert_eq!(encode_path_segment("weights.bin"), "weights.bin");
        assert_eq!(encode_path_segment("a b/c?d#e%f"), "a%20b%2Fc%3Fd%23e%25f");
        assert_eq!(encode_path_segment("café"), "caf%C3%A9");
    }

    #[test]
    fn a_ca_bundle_must_hold_a_certificate() {
        let err = TlsRoots::with_ca_pem(b"not pem at all", "ca.pem").unwrap_err();
        assert!(matches!(err, ClientError::Config(_)), "{err:?}");
        assert!(err.to_string().contains("ca.pem"), "{err}");
        let err = TlsRoots::with_ca_file(std::path::Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert!(err.to_string().starts_with("cannot read the CA bundle /nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn the_debug_form_never_shows_the_token() {
        let client = Client::new("http://127.0.0.1:7878", Some("s3cret".into())).unwrap();
        assert!(!format!("{client:?}").contains("s3cret"));
    }
}
