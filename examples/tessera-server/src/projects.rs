//! The `project`, `api-app` and `grant` commands.

use std::fmt::Write as _;

use serde_json::json;
use tessera_store::{
    ApiApp, ApiAppPatch, AppId, ClientId, ClientSecret, PreviousSecret, Project, ProjectId,
    RoleGrant, SecretDigest, Store, StoreError,
};
use time::OffsetDateTime;

use crate::cli::{ApiAppCommand, GrantArgs, GrantCommand, ProjectCommand};
use crate::commands::{
    CliError, Output, Result, find_user, keep_previous_until, kept_secret, parse_client_id,
    parse_display_name, parse_project_id, parse_role, secret_output,
};
use crate::database::chain;

pub(crate) async fn project(store: &dyn Store, command: ProjectCommand) -> Result<Output> {
    match command {
        ProjectCommand::Create { name, id } => {
            let id = match id {
                Some(id) => parse_project_id(&id)?,
                None => ProjectId::generate().map_err(|e| CliError(chain(&e)))?,
            };
            let project = Project::new(id, parse_display_name(&name)?, OffsetDateTime::now_utc());
            store.create_project(&project).await.map_err(|e| match e {
                StoreError::Conflict(_) => {
                    CliError(format!("project {} already exists", project.id))
                }
                other => other.into(),
            })?;
            Ok(Output {
                json: json!({ "project_id": project.id }),
                text: format!(
                    "created project {} ({})\nproject_id: {}\n",
                    project.name, project.id, project.id
                ),
            })
        }
        ProjectCommand::List => {
            let projects = store.list_projects().await?;
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

pub(crate) async fn api_app(store: &dyn Store, command: ApiAppCommand) -> Result<Output> {
    let now = OffsetDateTime::now_utc();
    match command {
        ApiAppCommand::Key(command) => crate::client_keys::app_key(store, command).await,
        ApiAppCommand::Create { project, name, client_id } => {
            let project = parse_project_id(&project)?;
            let client_id = match client_id {
                Some(id) => parse_client_id(&id)?,
                None => ClientId::generate(&project).map_err(|e| CliError(chain(&e)))?,
            };
            let secret = ClientSecret::generate().map_err(|e| CliError(chain(&e)))?;
            let app = ApiApp {
                client_id,
                app_id: AppId::generate().map_err(|e| CliError(chain(&e)))?,
                project_id: project,
                name: parse_display_name(&name)?,
                secret: Some(SecretDigest::of(&secret)),
                previous_secret: None,
                enabled: true,
                created_at: now,
                updated_at: now,
            };
            store.create_api_app(&app).await.map_err(|e| match e {
                StoreError::NotFound(_) => {
                    CliError(format!("project {} not found", app.project_id))
                }
                StoreError::Conflict(_) => {
                    CliError(format!("client ID {} is taken", app.client_id))
                }
                other => other.into(),
            })?;
            Ok(app_credentials(&app, &secret, "created", None))
        }
        ApiAppCommand::Secret { client_id, grace } => {
            let id = parse_client_id(&client_id)?;
            let secret = ClientSecret::generate().map_err(|e| CliError(chain(&e)))?;
            let mut patch = ApiAppPatch::at(now);
            patch.secret = Some(SecretDigest::of(&secret));
            patch.keep_previous_until = keep_previous_until(&grace, now);
            let app = store.update_api_app(&id, &patch).await.map_err(app_not_found(&client_id))?;
            let previous = kept_secret(&grace, app.previous_secret.as_ref());
            tracing::info!(
                target: "tessera::audit",
                event = "secret_regenerated",
                client_id = %app.client_id,
                previous_secret_expires_at = previous.map(|p| p.expires_at.unix_timestamp()),
            );
            Ok(app_credentials(&app, &secret, "new secret for", previous))
        }
        ApiAppCommand::List => {
            let apps = store.list_api_apps().await?;
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
            let id = parse_client_id(&client_id)?;
            store.delete_api_app(&id).await.map_err(app_not_found(&client_id))?;
            Ok(Output {
                json: json!({ "deleted": client_id }),
                text: format!("deleted API app {client_id}\n"),
            })
        }
    }
}

pub(crate) async fn grant(store: &dyn Store, command: GrantCommand) -> Result<Output> {
    match command {
        GrantCommand::Add(GrantArgs { username, project, role }) => {
            let user = find_user(store, &username).await?;
            let grant = RoleGrant {
                user_id: user.id,
                project_id: parse_project_id(&project)?,
                role: parse_role(&role)?,
            };
            let added = store.add_grant(&grant).await.map_err(|e| match e {
                StoreError::NotFound(what) => CliError(format!("{what} not found")),
                other => other.into(),
            })?;
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
            let user = find_user(store, &username).await?;
            let grants = store.grants_of_user(&user.id).await?;
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
            let user = find_user(store, &username).await?;
            let grant = RoleGrant {
                user_id: user.id,
                project_id: parse_project_id(&project)?,
                role: parse_role(&role)?,
            };
            if !store.remove_grant(&grant).await? {
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

fn app_not_found(client_id: &str) -> impl FnOnce(StoreError) -> CliError + '_ {
    move |e| match e {
        StoreError::NotFound(_) => CliError(format!("API app {client_id} not found")),
        other => other.into(),
    }
}

fn app_credentials(
    app: &ApiApp,
    secret: &ClientSecret,
    verb: &str,
    previous: Option<&PreviousSecret>,
) -> Output {
    secret_output(
        &format!("{verb} API app {}", app.name),
        &[("project_id", app.project_id.as_str()), ("client_id", app.client_id.as_str())],
        secret,
        previous,
    )
}
