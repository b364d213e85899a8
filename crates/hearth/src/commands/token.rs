//! `hearth token …`: org API tokens, and with `--workspace ID` the tokens
//! of one workspace (issue, rotate, list, revoke).

use anyhow::{bail, Context};
use clap::Subcommand;
use hearth_api::{CreateTokenRequest, CreateWorkspaceTokenRequest};
use hearth_core::WorkspaceId;
use uuid::Uuid;

use crate::operator::Operator;
use crate::output::{self, or_dash, timestamp, Table};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an org API token, or with --workspace a token of that
    /// workspace. Its secret is printed once, alone on stdout.
    Create {
        /// A name to recognise the token by.
        #[arg(long, value_name = "N")]
        name: Option<String>,
        /// Issue a token of this workspace instead of an org token.
        #[arg(long, value_name = "ID", value_parser = crate::cli::workspace_id, conflicts_with = "org")]
        workspace: Option<WorkspaceId>,
        /// The org of the new org token, by id or name (the admin token;
        /// default: the caller's org, the default org for the admin).
        #[arg(long, value_name = "ORG")]
        org: Option<String>,
        /// The org token's role in its org (default: owner). An owner may
        /// do everything in its org, an operator everything but tokens and
        /// secrets, a viewer only read.
        #[arg(long, value_name = "ROLE", value_parser = ["owner", "operator", "viewer"], conflicts_with = "workspace")]
        role: Option<String>,
        /// Rotate: the workspace's other tokens stop working after this many
        /// seconds (0: at once), time for its runtime to switch.
        #[arg(long, value_name = "SECS", requires = "workspace")]
        revoke_previous_after: Option<u32>,
    },
    /// List org API tokens, or with --workspace that workspace's tokens
    /// (never their secrets).
    List {
        #[arg(long, value_name = "ID", value_parser = crate::cli::workspace_id, conflicts_with = "org")]
        workspace: Option<WorkspaceId>,
        /// The org whose org tokens to list, by id or name (the admin token).
        #[arg(long, value_name = "ORG")]
        org: Option<String>,
    },
    /// Revoke an org API token (the admin token: of any org), or with
    /// --workspace one of that workspace's.
    Revoke {
        #[arg(value_name = "ID", value_parser = crate::cli::uuid)]
        id: Uuid,
        #[arg(long, value_name = "WORKSPACE", value_parser = crate::cli::workspace_id)]
        workspace: Option<WorkspaceId>,
    },
}

pub async fn run(command: TokenCommand, op: &Operator) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create { name, workspace, org, role, revoke_previous_after } => {
            let org = op.in_org(org.as_deref()).await?;
            let role = role.map(|role| role.parse::<hearth_core::Role>()).transpose()?;
            let token = match workspace {
                Some(id) => {
                    let request =
                        CreateWorkspaceTokenRequest { name, revoke_previous_after_seconds: revoke_previous_after };
                    op.client
                        .create_workspace_token(id, &request)
                        .await
                        .with_context(|| format!("cannot issue a token for workspace {id}"))?
                }
                None => op
                    .client
                    .create_org_token_in(org, &CreateTokenRequest { name, role })
                    .await
                    .context("cannot create a token")?,
            };
            if op.json {
                return output::print_json(&token);
            }
            let Some(secret) = &token.auth_token else {
                bail!("the server created token {} but did not return its secret", token.id);
            };
            // The secret alone on stdout, so `TOKEN=$(hearth token create)` works.
            if let (Some(id), Some(after)) = (workspace, revoke_previous_after) {
                output::note(&format!("workspace {id}'s other tokens stop working in {after} s"));
            }
            let role = token.role.map_or_else(String::new, |role| format!(", role {role}"));
            output::note(&format!(
                "created token {} (prefix {}{role}); its secret is shown only this once:",
                token.id, token.prefix
            ));
            Ok(output::print(secret)?)
        }
        TokenCommand::List { workspace, org } => {
            let org = op.in_org(org.as_deref()).await?;
            let tokens = match workspace {
                Some(id) => op
                    .client
                    .list_workspace_tokens(id)
                    .await
                    .with_context(|| format!("cannot list workspace {id}'s tokens"))?,
                None => op.client.list_org_tokens_in(org).await.context("cannot list tokens")?,
            };
            print_tokens(op, &tokens)
        }
        TokenCommand::Revoke { id, workspace } => {
            match workspace {
                Some(ws) => op.client.revoke_workspace_token(ws, id).await,
                None => op.client.revoke_org_token(id).await,
            }
            .with_context(|| format!("cannot revoke token {id}"))?;
            if op.json {
                output::print_json(&serde_json::json!({"id": id, "status": "revoked"}))
            } else {
                Ok(output::print(&format!("token {id} revoked"))?)
            }
        }
    }
}

/// The tokens as one JSON document or a table (never their secrets).
fn print_tokens(op: &Operator, tokens: &[hearth_api::TokenResponse]) -> anyhow::Result<()> {
    if op.json {
        return output::print_json(&tokens);
    }
    if tokens.is_empty() {
        output::note("no tokens");
        return Ok(());
    }
    let mut table = Table::new(["ID", "NAME", "PREFIX", "ROLE", "WORKSPACE", "CREATED", "REVOKED"]);
    for token in tokens {
        table.row([
            token.id.to_string(),
            or_dash(token.name.as_deref()),
            token.prefix.clone(),
            token.role.map_or_else(|| "-".to_owned(), |role| role.to_string()),
            token.workspace_id.map_or_else(|| "-".to_owned(), |id| id.to_string()),
            timestamp(token.created_at),
            token.revoked_at.map_or_else(|| "-".to_owned(), timestamp),
        ]);
    }
    Ok(output::print(&table.render())?)
}
