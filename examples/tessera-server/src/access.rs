//! `admin ...` and `service-user pat ...`: administrators and personal access tokens.

use std::fmt::Write as _;

use serde_json::json;
use tessera_admin::Admin;
use tessera_store::{AdminRole, PatId};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::cli::{AdminCommand, PatCommand};
use crate::commands::{CliError, Output, Result, parse_project_id, parse_username};

fn parse_admin_role(value: &str) -> Result<AdminRole> {
    value.parse().map_err(|e| CliError(format!("--role: {e}")))
}

fn time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

pub(crate) async fn administrators(admin: &Admin, command: AdminCommand) -> Result<Output> {
    match command {
        AdminCommand::Add { username, role, project } => {
            let username = parse_username(&username)?;
            let role = parse_admin_role(&role)?;
            let project = project.as_deref().map(parse_project_id).transpose()?;
            let (granted, added) =
                admin.add_administrator(&username, role, project.as_ref()).await?;
            let on = granted.project_id.as_ref().map(|p| format!(" on project {p}"));
            let text = if added {
                format!("{username} is {role}{}\n", on.unwrap_or_default())
            } else {
                format!("{username} was {role}{} already\n", on.unwrap_or_default())
            };
            Ok(Output {
                json: json!({
                    "username": username.as_str(),
                    "user_id": granted.user_id.as_str(),
                    "role": role.as_str(),
                    "project_id": granted.project_id.as_ref().map(|p| p.as_str()),
                    "added": added,
                }),
                text,
            })
        }
        AdminCommand::List => {
            let list = admin.administrators().await?;
            let mut text = String::new();
            if list.is_empty() {
                text.push_str("no administrators\n");
            }
            for entry in &list {
                let a = &entry.administrator;
                let project = a.project_id.as_ref().map_or("", |p| p.as_str());
                let _ = writeln!(
                    text,
                    "{}\t{}\t{}\tsince {}",
                    entry.username,
                    a.role,
                    project,
                    time(a.created_at)
                );
            }
            let json: Vec<_> = list
                .iter()
                .map(|entry| {
                    let a = &entry.administrator;
                    json!({
                        "username": entry.username.as_str(),
                        "user_id": a.user_id.as_str(),
                        "role": a.role.as_str(),
                        "project_id": a.project_id.as_ref().map(|p| p.as_str()),
                        "created_at": time(a.created_at),
                    })
                })
                .collect();
            Ok(Output { json: json!({ "administrators": json }), text })
        }
        AdminCommand::Remove { username, role, project } => {
            let username = parse_username(&username)?;
            let role = role.as_deref().map(parse_admin_role).transpose()?;
            let project = project.as_deref().map(parse_project_id).transpose()?;
            let removed = admin.remove_administrator(&username, role, project.as_ref()).await?;
            Ok(Output {
                json: json!({ "username": username.as_str(), "removed": removed }),
                text: format!("took {removed} role(s) from {username}\n"),
            })
        }
    }
}

pub(crate) async fn pat(admin: &Admin, command: PatCommand) -> Result<Output> {
    match command {
        PatCommand::Add { username, expires } => {
            let user = admin.service_user(&parse_username(&username)?).await?;
            let expires_at = expires.map(|days| admin.now() + Duration::days(i64::from(days)));
            let created = admin.add_personal_access_token(&user, expires_at).await?;
            let record = &created.record;
            let expiry = record.expires_at.map_or_else(|| "never".to_owned(), time);
            Ok(Output {
                json: json!({
                    "token_id": record.id.as_str(),
                    "token": created.token.as_str(),
                    "user_id": user.id.as_str(),
                    "expires_at": record.expires_at.map(time),
                }),
                text: format!(
                    "added personal access token {} for {} (expires {expiry})\n\
                     Save it now; it is not stored:\n{}\n",
                    record.id,
                    user.username,
                    created.token.as_str()
                ),
            })
        }
        PatCommand::List { username } => {
            let user = admin.service_user(&parse_username(&username)?).await?;
            let tokens = admin.personal_access_tokens(&user).await?;
            let mut text = String::new();
            if tokens.is_empty() {
                text.push_str("no personal access tokens\n");
            }
            for t in &tokens {
                let expiry = t.expires_at.map_or_else(|| "never".to_owned(), time);
                let _ =
                    writeln!(text, "{}\tcreated {}\texpires {expiry}", t.id, time(t.created_at));
            }
            let list: Vec<_> = tokens
                .iter()
                .map(|t| {
                    json!({
                        "token_id": t.id.as_str(),
                        "created_at": time(t.created_at),
                        "expires_at": t.expires_at.map(time),
                    })
                })
                .collect();
            Ok(Output { json: json!({ "tokens": list }), text })
        }
        PatCommand::Remove { username, token_id } => {
            let user = admin.service_user(&parse_username(&username)?).await?;
            let id = PatId::new(&token_id).map_err(|e| CliError(format!("--token-id: {e}")))?;
            admin.remove_personal_access_token(&user, &id).await?;
            Ok(Output {
                json: json!({ "removed": id.as_str() }),
                text: format!("removed personal access token {id}\n"),
            })
        }
    }
}
