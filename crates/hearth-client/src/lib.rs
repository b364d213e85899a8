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
    BuildInfo, CreateTokenRequest, CreateWorkspaceRequest, DeleteResponse, DiscoverResponse, EventResponse,
    HeartbeatRequest, HeartbeatResponse, Peer, RegisterRequest, RegisterResponse, StateResponse, StatusResponse,
    TokenResponse, UpdateCardRequest, WorkspaceResponse,
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
        let base = normalize_base_url(base_url.as_ref())?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("hearth-client/", env!("CARGO_PKG_VERSION")))
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

    /// `GET /registry/{id}/peers[?q=]`.
    pub async fn peers(&self, id: WorkspaceId, query: Option<&str>) -> Result<Vec<Peer>, ClientError> {
        let path = format!("/registry/{id}/peers");
        let params: Vec<(&str, &str)> = query.map(|q| ("q", q)).into_iter().collect();
        self.call(Method::GET, &path, |request| request.query(&params)).await
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
        self.send_json(Method::POST, "/workspaces", request).await
    }

    /// `GET /workspaces[?include_removed=true]`.
    pub async fn list_workspaces(&self, include_removed: bool) -> Result<Vec<WorkspaceResponse>, ClientError> {
        let params: &[(&str, &str)] = if include_removed { &[("include_removed", "true")] } else { &[] };
        self.call(Method::GET, "/workspaces", |request| request.query(params)).await
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

    /// `POST /workspaces/{id}/tokens`: a new token for that workspace.
    pub async fn create_workspace_token(
        &self,
        id: WorkspaceId,
        request: &CreateTokenRequest,
    ) -> Result<TokenResponse, ClientError> {
        self.send_json(Method::POST, &format!("/workspaces/{id}/tokens"), request).await
    }

    /// `POST /org/tokens`: a new org API token (the secret is in
    /// `auth_token`, returned only here).
    pub async fn create_org_token(&self, request: &CreateTokenRequest) -> Result<TokenResponse, ClientError> {
        self.send_json(Method::POST, "/org/tokens", request).await
    }

    /// `GET /org/tokens`.
    pub async fn list_org_tokens(&self) -> Result<Vec<TokenResponse>, ClientError> {
        self.get("/org/tokens").await
    }

    /// `DELETE /org/tokens/{id}`.
    pub async fn revoke_org_token(&self, id: Uuid) -> Result<(), ClientError> {
        self.call_ignoring_body(Method::DELETE, &format!("/org/tokens/{id}"), |request| request).await
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
        let mut params: Vec<(&str, String)> = Vec::new();
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
        events::follow(self.clone(), since, workspace).await
    }

    // --- plumbing ----------------------------------------------------------

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn request(&self, method: Method, url: &str) -> RequestBuilder {
        let request = self.http.request(method, url);
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

    async fn lifecycle(&self, id: WorkspaceId, action: &str) -> Result<StatusResponse, ClientError> {
        self.call(Method::POST, &format!("/workspaces/{id}/{action}"), |request| request).await
    }
}

fn decode<T: DeserializeOwned>(method: &Method, path: &str, body: &str) -> Result<T, ClientError> {
    serde_json::from_str(body).map_err(|err| {
        ClientError::Decode(format!("the answer to {method} {path} is not what this client expects: {err}"))
    })
}

/// Checks `base_url` and strips its trailing slashes.
fn normalize_base_url(base_url: &str) -> Result<String, ClientError> {
    let invalid = |why: String| ClientError::InvalidUrl(format!("invalid server URL {base_url:?}: {why}"));
    let parsed = reqwest::Url::parse(base_url).map_err(|err| invalid(err.to_string()))?;
    match parsed.scheme() {
        "http" => {}
        // The workspace builds reqwest without a TLS backend; say so up front
        // instead of failing obscurely on the first request.
        "https" => return Err(invalid("https is not supported by this build, which speaks plain HTTP".into())),
        // `host:port` parses as a URL whose scheme is the host.
        _ if !base_url.contains("://") => {
            return Err(invalid(format!("it needs a scheme, as in \"http://{base_url}\"")));
        }
        other => return Err(invalid(format!("the scheme must be http, not {other}"))),
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(invalid("it must not have a query or a fragment".into()));
    }
    Ok(base_url.trim_end_matches('/').to_owned())
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
        let err = normalize_base_url("https://hearth.example").unwrap_err();
        assert!(err.to_string().contains("https is not supported"), "{err}");
        assert!(normalize_base_url("http://h/?x=1").is_err());
        assert!(normalize_base_url("ftp://h").is_err());
        let err = normalize_base_url("localhost:7878").unwrap_err();
        assert!(err.to_string().contains(r#"as in "http://localhost:7878""#), "{err}");
    }

    #[test]
    fn the_debug_form_never_shows_the_token() {
        let client = Client::new("http://127.0.0.1:7878", Some("s3cret".into())).unwrap();
        assert!(!format!("{client:?}").contains("s3cret"));
    }
}
