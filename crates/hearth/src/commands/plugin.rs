//! `hearth plugin …`: push a plugin directory (or tarball), list plugins.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use hearth_api::{FileContent, PluginResponse, UploadPluginRequest};

use crate::bundle;
use crate::operator::Operator;
use crate::output::{self, or_dash, short_hex, truncate, Table};

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Push a plugin directory (plugin.yaml naming the plugin and its
    /// version, plus files), or a .tar.gz of one; replaces a plugin of the
    /// same name.
    Push {
        /// The directory (dot-files skipped, symbolic links refused), or a
        /// gzip tarball whose entries are relative to the plugin root.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The org to push to, by id or name (the admin token; default: the
        /// caller's org, the default org for the admin).
        #[arg(long, value_name = "ORG")]
        org: Option<String>,
    },
    /// List plugins.
    List {
        /// Only this org's, by id or name (the admin token; default: every
        /// org the token sees).
        #[arg(long, value_name = "ORG")]
        org: Option<String>,
    },
}

pub async fn run(command: PluginCommand, op: &Operator) -> anyhow::Result<()> {
    match command {
        PluginCommand::Push { dir, org } => push(dir, org, op).await,
        PluginCommand::List { org } => {
            let org = op.in_org(org.as_deref()).await?;
            list(org, op).await
        }
    }
}

async fn push(path: PathBuf, org: Option<String>, op: &Operator) -> anyhow::Result<()> {
    let org = op.in_org(org.as_deref()).await?;
    let meta = std::fs::metadata(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let pushed = if meta.is_file() {
        let tarball = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        if !tarball.starts_with(&[0x1f, 0x8b]) {
            anyhow::bail!("{} is neither a directory nor a gzip tarball", path.display());
        }
        op.client.push_plugin_tarball_in(org, tarball).await
    } else {
        let files = bundle::read_dir(&path)?;
        op.client.push_plugin_json_in(org, &UploadPluginRequest { name: None, files: FileContent::files(files) }).await
    };
    let plugin = pushed.with_context(|| format!("cannot push the plugin in {}", path.display()))?;
    if op.json {
        return output::print_json(&plugin);
    }
    Ok(output::print(&format!("pushed plugin {} {} (sha256 {})", plugin.name, plugin.version, plugin.sha256))?)
}

async fn list(org: Option<uuid::Uuid>, op: &Operator) -> anyhow::Result<()> {
    let plugins = op.client.list_plugins_in(org).await.context("cannot list plugins")?;
    if op.json {
        return output::print_json(&plugins);
    }
    if plugins.is_empty() {
        output::note("no plugins; push one with `hearth plugin push DIR`");
        return Ok(());
    }
    Ok(output::print(&table(&plugins).render())?)
}

fn table(plugins: &[PluginResponse]) -> Table {
    let mut table = Table::new(["NAME", "VERSION", "SHA256", "DESCRIPTION"]);
    for plugin in plugins {
        table.row([
            plugin.name.clone(),
            plugin.version.clone(),
            short_hex(&plugin.sha256).to_owned(),
            truncate(&or_dash(Some(&plugin.description))),
        ]);
    }
    table
}
