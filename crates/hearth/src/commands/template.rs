//! `hearth template …`: push a template directory, list and inspect
//! templates.

use std::path::PathBuf;

use anyhow::Context;
use chrono::Utc;
use clap::Subcommand;
use hearth_api::{FileContent, ImportTemplateRequest, TemplateResponse};

use crate::bundle;
use crate::operator::Operator;
use crate::output::{self, age, or_dash, render_fields, short_digest, timestamp, Table};

#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// Push a template directory (config.yaml, prompts/, other assets);
    /// replaces a template of the same name.
    Push {
        /// The directory. Dot-files are skipped; symbolic links are refused.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// Template name [default: the directory's name]
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// The org to push to, by id or name (the admin token; default: the
        /// caller's org, the default org for the admin).
        #[arg(long, value_name = "ORG")]
        org: Option<String>,
    },
    /// List templates.
    List {
        /// Only this org's, by id or name (the admin token; default: every
        /// org the token sees).
        #[arg(long, value_name = "ORG")]
        org: Option<String>,
    },
    /// Show one template and its files.
    Get {
        /// The template's id or name.
        #[arg(value_name = "ID")]
        id: String,
    },
}

pub async fn run(command: TemplateCommand, op: &Operator) -> anyhow::Result<()> {
    match command {
        TemplateCommand::Push { dir, name, org } => push(dir, name, org, op).await,
        TemplateCommand::List { org } => {
            let org = op.in_org(org.as_deref()).await?;
            list(org, op).await
        }
        TemplateCommand::Get { id } => {
            let template = op.client.get_template(&id).await.with_context(|| format!("cannot get template {id:?}"))?;
            if op.json {
                output::print_json(&template)
            } else {
                Ok(output::print(&describe(&template))?)
            }
        }
    }
}

async fn push(dir: PathBuf, name: Option<String>, org: Option<String>, op: &Operator) -> anyhow::Result<()> {
    let org = op.in_org(org.as_deref()).await?;
    let name = match name {
        Some(name) => name,
        None => bundle::dir_name(&dir)?,
    };
    let files = bundle::read_dir(&dir)?;
    let count = files.len();
    let request = ImportTemplateRequest { name, files: FileContent::files(files) };
    let imported = op
        .client
        .import_template_in(org, &request)
        .await
        .with_context(|| format!("cannot push template {:?} from {}", request.name, dir.display()))?;
    if op.json {
        return output::print_json(&imported);
    }
    let files = if count == 1 { "1 file".to_owned() } else { format!("{count} files") };
    Ok(output::print(&format!(
        "imported template {} ({}): {files}, assets digest {}",
        imported.name, imported.id, imported.assets_digest
    ))?)
}

async fn list(org: Option<uuid::Uuid>, op: &Operator) -> anyhow::Result<()> {
    let templates = op.client.list_templates_in(org).await.context("cannot list templates")?;
    if op.json {
        return output::print_json(&templates);
    }
    if templates.is_empty() {
        output::note("no templates; push one with `hearth template push DIR`");
        return Ok(());
    }
    let now = Utc::now();
    let mut table = Table::new(["ID", "NAME", "RUNTIME", "MODEL", "PLUGINS", "FILES", "DIGEST", "UPDATED"]);
    for template in &templates {
        table.row([
            template.id.to_string(),
            template.name.clone(),
            or_dash(template.runtime.as_deref()),
            or_dash(template.model.as_deref()),
            or_dash(Some(&template.plugins.join(","))),
            template.files.len().to_string(),
            short_digest(&template.assets_digest),
            age(template.updated_at, now),
        ]);
    }
    Ok(output::print(&table.render())?)
}

/// The detail view of `template get`.
fn describe(template: &TemplateResponse) -> String {
    let mut text = render_fields(&[
        ("id", template.id.to_string()),
        ("name", template.name.clone()),
        ("runtime", or_dash(template.runtime.as_deref())),
        ("model", or_dash(template.model.as_deref())),
        ("plugins", or_dash(Some(&template.plugins.join(", ")))),
        ("assets digest", template.assets_digest.clone()),
        ("created", timestamp(template.created_at)),
        ("updated", timestamp(template.updated_at)),
    ]);
    let mut table = Table::new(["PATH", "SIZE", "SHA256"]);
    for file in &template.files {
        table.row([file.path.clone(), file.size.to_string(), file.sha256.clone()]);
    }
    text.push('\n');
    text.push_str(&table.render());
    text
}
