//! `hearth org …`: organisations (the admin token only): create, list, get,
//! delete, and their quotas.
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
    /// Show one organisation: its workspaces by status, quotas and use.
    Get {
        /// Its id or its name.
        #[arg(value_name = "ORG")]
        org: String,
    },
    /// Delete an organisation: refused while it has workspaces, unless
    /// --cascade. Its tokens stop working; its templates, plugins and
    /// secrets are deleted.
    Delete {
        /// Its id or its name.
        #[arg(value_name = "ORG")]
        org: String,
        /// Remove its workspaces first, through their lifecycle (runtimes
        /// told, secrets deleted, events written).
        #[arg(long)]
        cascade: bool,
    },
    /// Set an organisation's quotas: every quota at once, one not given
    /// is none.
    Quota {
        /// Its id or its name.
        #[arg(value_name = "ORG")]
        org: String,
        /// Workspaces in total.
        #[arg(long, value_name = "N")]
        workspaces: Option<u32>,
        /// Workspaces running at once.
        #[arg(long, value_name = "N")]
        running: Option<u32>,
        /// Bytes of template files.
        #[arg(long, value_name = "BYTES")]
        template_bytes: Option<u64>,
        /// Bytes of plugin files.
        #[arg(long, value_name = "BYTES")]
        plugin_bytes: Option<u64>,
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
            lines.extend(quota_lines(&org));
            Ok(output::print(&lines.join("\n"))?)
        }
        OrgCommand::Delete { org, cascade } => {
            let id = op.org_id(&org).await?;
            let deleted =
                op.client.delete_org(id, cascade).await.with_context(|| format!("cannot delete org {org}"))?;
            if op.json {
                return output::print_json(&deleted);
            }
            Ok(output::print(&format!(
                "org {org} deleted ({} workspaces removed, {} tokens revoked)",
                deleted.removed_workspaces, deleted.revoked_tokens
            ))?)
        }
        OrgCommand::Quota { org, workspaces, running, template_bytes, plugin_bytes } => {
            let id = op.org_id(&org).await?;
            let wide = |value: Option<u64>| value.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
            let quotas = hearth_api::OrgQuotas {
                workspaces: workspaces.map(i64::from),
                running: running.map(i64::from),
                template_bytes: wide(template_bytes),
                plugin_bytes: wide(plugin_bytes),
            };
            let set = op
                .client
                .set_org_quotas(id, &quotas)
                .await
                .with_context(|| format!("cannot set org {org}'s quotas"))?;
            if op.json {
                return output::print_json(&set);
            }
            Ok(output::print(&quota_lines(&set).join("\n"))?)
        }
    }
}

/// Each quota with its use, when known: `quota workspaces: 3 of 10`.
fn quota_lines(org: &hearth_api::OrgResponse) -> Vec<String> {
    let q = &org.quotas;
    let u = org.usage;
    [
        ("workspaces", q.workspaces, u.map(|u| u.workspaces)),
        ("running", q.running, u.map(|u| u.running)),
        ("template_bytes", q.template_bytes, u.map(|u| u.template_bytes)),
        ("plugin_bytes", q.plugin_bytes, u.map(|u| u.plugin_bytes)),
    ]
    .into_iter()
    .map(|(name, limit, used)| {
        let limit = limit.map_or_else(|| "no limit".to_owned(), |limit| limit.to_string());
        match used {
            Some(used) => format!("quota {name}: {used} of {limit}"),
            None => format!("quota {name}: {limit}"),
        }
    })
    .collect()
}
