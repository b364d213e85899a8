//! `hearth org …`: organisations (the admin token only): create, list, get.
//! An org is named by its id or its name wherever the CLI takes one.

use anyhow::Context;
use clap::Subcommand;

use crate::operator::Operator;
use crate::output::{self, timestamp, Table};

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organisation; its id alone on stdout.
    Create {
        /// Unique; the naming rules of a workspace's name.
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// List every organisation.
    List,
    /// Show one organisation and its workspaces by status.
    Get {
        /// Its id or its name.
        #[arg(value_name = "ORG")]
        org: String,
    },
}

pub async fn run(command: OrgCommand, op: &Operator) -> anyhow::Result<()> {
    match command {
        OrgCommand::Create { name } => {
            let org = op.client.create_org(&name).await.with_context(|| format!("cannot create org {name:?}"))?;
            if op.json {
                return output::print_json(&org);
            }
            output::note(&format!("created org {} ({})", org.name, org.id));
            Ok(output::print(&org.id.to_string())?)
        }
        OrgCommand::List => {
            let orgs = op.client.list_orgs().await.context("cannot list orgs")?;
            if op.json {
                return output::print_json(&orgs);
            }
            let mut table = Table::new(["ID", "NAME", "CREATED"]);
            for org in &orgs {
                table.row([org.id.to_string(), org.name.clone(), timestamp(org.created_at)]);
            }
            Ok(output::print(&table.render())?)
        }
        OrgCommand::Get { org } => {
            let id = op.org_id(&org).await?;
            let org = op.client.get_org(id).await.with_context(|| format!("cannot read org {org}"))?;
            if op.json {
                return output::print_json(&org);
            }
            let mut lines = vec![format!("id:       {}", org.id), format!("name:     {}", org.name)];
            lines.push(format!("created:  {}", timestamp(org.created_at)));
            if let Some(counts) = &org.workspaces {
                lines.push(format!("workspaces: {}", counts.total));
                for (status, count) in counts.by_status.iter().filter(|(_, count)| **count > 0) {
                    lines.push(format!("  {status}: {count}"));
                }
            }
            Ok(output::print(&lines.join("\n"))?)
        }
    }
}
