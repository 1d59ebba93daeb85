//! The `project`, `api-app` and `grant` commands.

use std::fmt::Write as _;

use serde_json::json;
use tessera_admin::{Admin, NewApiApp, NewProject};
use tessera_store::{ApiApp, ClientSecret};

use crate::cli::{ApiAppCommand, GrantArgs, GrantCommand, ProjectCommand};
use crate::commands::{
    CliError, Output, Result, parse_client_id, parse_display_name, parse_grace, parse_project_id,
    parse_role, parse_username, secret_output,
};

pub(crate) async fn project(admin: &Admin, command: ProjectCommand) -> Result<Output> {
    match command {
        ProjectCommand::Create { name, id } => {
            let new = NewProject {
                id: id.as_deref().map(parse_project_id).transpose()?,
                name: parse_display_name(&name)?,
            };
            let project = admin.create_project(new).await?;
            Ok(Output {
                json: json!({ "project_id": project.id }),
                text: format!(
                    "created project {} ({})\nproject_id: {}\n",
                    project.name, project.id, project.id
                ),
            })
        }
        ProjectCommand::List => {
            let projects = admin.projects().await?;
            let mut text = String::new();
            for p in &projects {
                let _ = writeln!(text, "{}\t{}", p.id, p.name);
            }
            let list: Vec<_> = projects
                .iter()
                .map(|p| json!({ "project_id": p.id, "name": p.name.as_str() }))
                .collect();
            Ok(Output { json: json!({ "projects": list }), text })
        }
    }
}

pub(crate) async fn api_app(admin: &Admin, command: ApiAppCommand) -> Result<Output> {
    match command {
        ApiAppCommand::Key(command) => crate::client_keys::app_key(admin, command).await,
        ApiAppCommand::Create { project, name, client_id } => {
            let new = NewApiApp {
                project: parse_project_id(&project)?,
                client_id: client_id.as_deref().map(parse_client_id).transpose()?,
                name: parse_display_name(&name)?,
            };
            let (app, secret) = admin.create_api_app(new).await?;
            Ok(app_credentials(&app, &secret, "created"))
        }
        ApiAppCommand::Secret { client_id, grace } => {
            let id = parse_client_id(&client_id)?;
            let (app, secret) = admin.regenerate_app_secret(&id, parse_grace(&grace)?).await?;
            Ok(app_credentials(&app, &secret, "new secret for"))
        }
        ApiAppCommand::List => {
            let apps = admin.api_apps().await?;
            let mut text = String::new();
            for a in &apps {
                let _ = writeln!(text, "{}\t{}\t{}", a.client_id, a.project_id, a.name);
            }
            let list: Vec<_> = apps
                .iter()
                .map(|a| {
                    json!({
                        "client_id": a.client_id,
                        "app_id": a.app_id,
                        "project_id": a.project_id,
                        "name": a.name.as_str(),
                        "enabled": a.enabled,
                    })
                })
                .collect();
            Ok(Output { json: json!({ "api_apps": list }), text })
        }
        ApiAppCommand::Delete { client_id } => {
            admin.delete_api_app(&parse_client_id(&client_id)?).await?;
            Ok(Output {
                json: json!({ "deleted": client_id }),
                text: format!("deleted API app {client_id}\n"),
            })
        }
    }
}

pub(crate) async fn grant(admin: &Admin, command: GrantCommand) -> Result<Output> {
    match command {
        GrantCommand::Add(GrantArgs { username, project, role }) => {
            let (name, project_id, role_key) = parse_grant(&username, &project, &role)?;
            let added = admin.add_grant(&name, &project_id, &role_key).await?;
            Ok(Output {
                json: json!({ "username": username, "project_id": project, "role": role, "added": added }),
                text: if added {
                    format!("granted {role} in project {project} to {username}\n")
                } else {
                    format!("{username} already has {role} in project {project}\n")
                },
            })
        }
        GrantCommand::List { username } => {
            let grants = admin.grants_of(&parse_username(&username)?).await?;
            let mut text = String::new();
            for g in &grants {
                let _ = writeln!(text, "{}\t{}", g.project_id, g.role);
            }
            let list: Vec<_> = grants
                .iter()
                .map(|g| json!({ "project_id": g.project_id, "role": g.role }))
                .collect();
            Ok(Output { json: json!({ "username": username, "grants": list }), text })
        }
        GrantCommand::Remove(GrantArgs { username, project, role }) => {
            let (name, project_id, role_key) = parse_grant(&username, &project, &role)?;
            if !admin.remove_grant(&name, &project_id, &role_key).await? {
                return Err(CliError(format!(
                    "{username} has no role {role} in project {project}"
                )));
            }
            Ok(Output {
                json: json!({ "username": username, "project_id": project, "role": role, "removed": true }),
                text: format!("removed {role} in project {project} from {username}\n"),
            })
        }
    }
}

fn parse_grant(
    username: &str,
    project: &str,
    role: &str,
) -> Result<(tessera_store::Username, tessera_store::ProjectId, tessera_store::RoleKey)> {
    Ok((parse_username(username)?, parse_project_id(project)?, parse_role(role)?))
}

fn app_credentials(app: &ApiApp, secret: &ClientSecret, verb: &str) -> Output {
    secret_output(
        &format!("{verb} API app {}", app.name),
        &[("project_id", app.project_id.as_str()), ("client_id", app.client_id.as_str())],
        secret,
        app.credentials.previous.as_ref(),
    )
}
