//! What every operator command needs: a client for `--server` with the
//! resolved token, the output mode, and where the token came from (to
//! explain a 401).

use std::path::PathBuf;

use anyhow::Context;
use hearth_client::{Client, ClientError};

use crate::cli::GlobalArgs;

/// Where `hearth serve` keeps its generated admin token, relative to its
/// data dir.
const ADMIN_TOKEN_FILE: &str = "admin-token";
const DEFAULT_DATA_DIR: &str = "./hearth-data";

pub struct Operator {
    pub client: Client,
    /// Print one JSON document instead of tables.
    pub json: bool,
    token_source: TokenSource,
}

enum TokenSource {
    /// `--token` or `HEARTH_TOKEN`.
    Given,
    /// Read from the local admin-token file.
    File(PathBuf),
    /// None given, and this file was not readable.
    Missing(PathBuf),
}

impl Operator {
    /// An org named by its id, or by its name (looked up in `GET /orgs`):
    /// `hearth org get ORG`, `--org ORG`.
    pub async fn org_id(&self, org: &str) -> anyhow::Result<uuid::Uuid> {
        if let Ok(id) = uuid::Uuid::parse_str(org.trim()) {
            return Ok(id);
        }
        let orgs = self.client.list_orgs().await.context("cannot list orgs to find the org by name")?;
        match orgs.iter().find(|o| o.name == org) {
            Some(found) => Ok(found.id),
            None => anyhow::bail!("no org named {org:?} (hearth org list shows them)"),
        }
    }

    /// `--org ORG` as an id (a name is looked up); `None` without one.
    pub async fn in_org(&self, org: Option<&str>) -> anyhow::Result<Option<uuid::Uuid>> {
        match org {
            Some(org) => Ok(Some(self.org_id(org).await?)),
            None => Ok(None),
        }
    }

    pub fn new(global: &GlobalArgs) -> anyhow::Result<Self> {
        let given = global.token.as_deref().map(str::trim).filter(|token| !token.is_empty());
        let (token, token_source) = match given {
            Some(token) => (Some(token.to_owned()), TokenSource::Given),
            None => {
                let path = admin_token_path();
                match read_token(&path) {
                    Some(token) => (Some(token), TokenSource::File(path)),
                    None => (None, TokenSource::Missing(path)),
                }
            }
        };
        let roots = hearth_client::TlsRoots::from_option(global.ca_cert.as_deref())?;
        let client = Client::with_roots(&global.server, token, &roots)?;
        Ok(Self { client, json: global.json, token_source })
    }

    /// Adds a hint to a 401, which otherwise leaves people guessing which
    /// token was (or was not) sent.
    pub fn explain(&self, result: anyhow::Result<()>) -> anyhow::Result<()> {
        let Err(err) = result else { return Ok(()) };
        let unauthorized = err.downcast_ref::<ClientError>().and_then(ClientError::status) == Some(401);
        if !unauthorized {
            return Err(err);
        }
        let hint = match &self.token_source {
            TokenSource::Given => return Err(err),
            TokenSource::File(path) => {
                format!("the token was read from {}; pass --token or set HEARTH_TOKEN to use another", path.display())
            }
            TokenSource::Missing(path) => {
                format!("no token was sent and {} is not readable; pass --token or set HEARTH_TOKEN", path.display())
            }
        };
        Err(anyhow::anyhow!("{err:#} ({hint})"))
    }
}

/// `<data-dir>/admin-token`, with the data dir of `hearth serve`'s default.
fn admin_token_path() -> PathBuf {
    let data_dir = std::env::var_os("HEARTH_DATA_DIR").filter(|dir| !dir.is_empty());
    data_dir.map_or_else(|| PathBuf::from(DEFAULT_DATA_DIR), PathBuf::from).join(ADMIN_TOKEN_FILE)
}

fn read_token(path: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let token = text.trim();
    (!token.is_empty()).then(|| token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_file_is_read_trimmed_and_an_empty_one_is_no_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(ADMIN_TOKEN_FILE);
        assert_eq!(read_token(&path), None);
        std::fs::write(&path, "abc123\n").unwrap();
        assert_eq!(read_token(&path).as_deref(), Some("abc123"));
        std::fs::write(&path, " \n").unwrap();
        assert_eq!(read_token(&path), None);
    }

    #[test]
    fn a_401_without_a_token_says_how_to_give_one() {
        let operator = Operator {
            client: Client::new("http://127.0.0.1:7878", None).unwrap(),
            json: false,
            token_source: TokenSource::Missing(PathBuf::from("./hearth-data/admin-token")),
        };
        let err = ClientError::Api {
            status: 401,
            body: Box::new(hearth_api::ApiErrorBody::new(hearth_api::ErrorCode::Unauthorized, "admin auth required")),
        };
        let explained = operator.explain(Err(anyhow::Error::new(err).context("cannot list workspaces"))).unwrap_err();
        assert_eq!(
            format!("{explained:#}"),
            "cannot list workspaces: server answered 401 Unauthorized: admin auth required (no token was sent and \
             ./hearth-data/admin-token is not readable; pass --token or set HEARTH_TOKEN)"
        );
    }
}
