//! `organization`: the one organization that owns every user, project and app.

use serde_json::json;
use tessera_endpoint::default_organization;
use tessera_store::{Domain, Organization, Store};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::cli::OrganizationCommand;
use crate::commands::{CliError, Output, Result, parse_display_name};

pub(crate) async fn organization(
    store: &dyn Store,
    command: OrganizationCommand,
) -> Result<Output> {
    match command {
        OrganizationCommand::Show => {
            let org = store.organization().await?.ok_or_else(|| {
                CliError(
                    "the database has no organization yet: the server creates it when it first \
                     starts, or run `organization set`"
                        .to_owned(),
                )
            })?;
            Ok(output(&org, "organization"))
        }
        OrganizationCommand::Set { name, domain } => {
            let name = name.as_deref().map(parse_display_name).transpose()?;
            let domain = domain.as_deref().map(parse_domain).transpose()?;
            let current = match store.organization().await? {
                Some(org) => org,
                None => {
                    let candidate =
                        default_organization("http://localhost", OffsetDateTime::now_utc())
                            .map_err(|e| CliError(e.to_string()))?;
                    store.init_organization(&candidate).await?
                }
            };
            let name = name.unwrap_or(current.name);
            let domain = domain.unwrap_or(current.primary_domain);
            let org = store.update_organization(&name, &domain).await?;
            tracing::info!(
                target: "tessera::audit",
                event = "organization_updated",
                organization_id = %org.id,
                name = %org.name,
                primary_domain = %org.primary_domain,
            );
            Ok(output(&org, "updated organization"))
        }
    }
}

/// The organization a server runs with: the stored one, or (on first start) one
/// named and placed as configured, with the issuer's host as the default domain.
pub(crate) async fn init(
    store: &dyn Store,
    issuer: &str,
    name: Option<&str>,
    domain: Option<&str>,
) -> Result<Organization> {
    let mut candidate = default_organization(issuer, OffsetDateTime::now_utc())
        .map_err(|e| CliError(e.to_string()))?;
    if let Some(name) = name {
        candidate.name =
            parse_display_name(name).map_err(|e| CliError(format!("--organization-name: {e}")))?;
    }
    if let Some(domain) = domain {
        candidate.primary_domain =
            parse_domain(domain).map_err(|e| CliError(format!("--organization-domain: {e}")))?;
    }
    let org = store.init_organization(&candidate).await?;
    if org.id == candidate.id {
        tracing::info!(
            organization_id = %org.id,
            name = %org.name,
            primary_domain = %org.primary_domain,
            "organization created"
        );
    }
    Ok(org)
}

fn parse_domain(value: &str) -> Result<Domain> {
    Domain::new(value).map_err(|e| CliError(e.to_string()))
}

fn output(org: &Organization, what: &str) -> Output {
    let created = org.created_at.format(&Rfc3339).unwrap_or_default();
    Output {
        json: json!({
            "organization_id": org.id,
            "name": org.name.as_str(),
            "primary_domain": org.primary_domain,
            "created_at": created,
        }),
        text: format!(
            "{what} {}\nname:           {}\nprimary_domain: {}\ncreated_at:     {created}\n",
            org.id,
            org.name.as_str(),
            org.primary_domain
        ),
    }
}
