//! `organization`: the one organization that owns every user, project and app.

use serde_json::json;
use tessera_admin::{Admin, OrganizationUpdate};
use tessera_store::{Domain, Organization};
use time::format_description::well_known::Rfc3339;

use crate::cli::OrganizationCommand;
use crate::commands::{CliError, Output, Result, parse_display_name};

pub(crate) async fn organization(admin: &Admin, command: OrganizationCommand) -> Result<Output> {
    match command {
        OrganizationCommand::Show => {
            let org = admin.organization().await?.ok_or_else(|| {
                CliError(
                    "the database has no organization yet: the server creates it when it first \
                     starts, or run `organization set`"
                        .to_owned(),
                )
            })?;
            Ok(output(&org, "organization"))
        }
        OrganizationCommand::Set { name, domain } => {
            let update = OrganizationUpdate {
                name: name.as_deref().map(parse_display_name).transpose()?,
                primary_domain: domain.as_deref().map(parse_domain).transpose()?,
            };
            Ok(output(&admin.update_organization(update).await?, "updated organization"))
        }
    }
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
