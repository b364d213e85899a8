//! `hearth token …`: org API tokens.

use anyhow::{bail, Context};
use clap::Subcommand;
use hearth_api::CreateTokenRequest;
use uuid::Uuid;

use crate::operator::Operator;
use crate::output::{self, or_dash, timestamp, Table};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an org API token. Its secret is printed once, alone on stdout.
    Create {
        /// A name to recognise the token by.
        #[arg(long, value_name = "N")]
        name: Option<String>,
    },
    /// List org API tokens (never their secrets).
    List,
    /// Revoke an org API token.
    Revoke {
        #[arg(value_name = "ID", value_parser = crate::cli::uuid)]
        id: Uuid,
    },
}

pub async fn run(command: TokenCommand, op: &Operator) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create { name } => {
            let token =
                op.client.create_org_token(&CreateTokenRequest { name }).await.context("cannot create a token")?;
            if op.json {
                return output::print_json(&token);
            }
            let Some(secret) = &token.auth_token else {
                bail!("the server created token {} but did not return its secret", token.id);
            };
            // The secret alone on stdout, so `TOKEN=$(hearth token create)` works.
            output::note(&format!(
                "created token {} (prefix {}); its secret is shown only this once:",
                token.id, token.prefix
            ));
            Ok(output::print(secret)?)
        }
        TokenCommand::List => {
            let tokens = op.client.list_org_tokens().await.context("cannot list tokens")?;
            if op.json {
                return output::print_json(&tokens);
            }
            if tokens.is_empty() {
                output::note("no tokens");
                return Ok(());
            }
            let mut table = Table::new(["ID", "NAME", "PREFIX", "WORKSPACE", "CREATED", "REVOKED"]);
            for token in &tokens {
                table.row([
                    token.id.to_string(),
                    or_dash(token.name.as_deref()),
                    token.prefix.clone(),
                    token.workspace_id.map_or_else(|| "-".to_owned(), |id| id.to_string()),
                    timestamp(token.created_at),
                    token.revoked_at.map_or_else(|| "-".to_owned(), timestamp),
                ]);
            }
            Ok(output::print(&table.render())?)
        }
        TokenCommand::Revoke { id } => {
            op.client.revoke_org_token(id).await.with_context(|| format!("cannot revoke token {id}"))?;
            if op.json {
                output::print_json(&serde_json::json!({"id": id, "status": "revoked"}))
            } else {
                Ok(output::print(&format!("token {id} revoked"))?)
            }
        }
    }
}
