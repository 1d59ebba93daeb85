//! The management commands and their output.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::json;
use tessera_store::{
    AccessTokenType, ClientId, ClientSecret, DisplayName, PreviousSecret, ProjectId, RoleKey,
    SecretDigest, ServiceUser, ServiceUserPatch, Store, StoreError, TokenLifetime, Username,
};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::cli::{Cli, Command, SecretGraceArgs, ServiceUserCommand};
use crate::database;

/// A command's failure, printed as one line.
#[derive(Debug)]
pub(crate) struct CliError(pub(crate) String);

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for CliError {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<StoreError> for CliError {
    fn from(value: StoreError) -> Self {
        Self(database::chain(&value))
    }
}

pub(crate) type Result<T, E = CliError> = std::result::Result<T, E>;

/// Runs the command the command line names.
pub(crate) async fn run(cli: Cli) -> Result<()> {
    if !matches!(cli.command, Command::Serve(_)) {
        // Management commands log their audit events (secret_regenerated, ...) and
        // warnings to stderr; their output goes to stdout.
        crate::serve::init_logging("warn,tessera::audit=info");
    }
    match cli.command {
        Command::Serve(args) => crate::serve::run(&cli.database, args).await,
        Command::ServiceUser(command) => {
            let store = database::open(&cli.database).await?;
            let output = service_user(store.as_ref(), command).await?;
            print(&output, cli.json);
            Ok(())
        }
        Command::Project(command) => {
            let store = database::open(&cli.database).await?;
            print(&crate::projects::project(store.as_ref(), command).await?, cli.json);
            Ok(())
        }
        Command::ApiApp(command) => {
            let store = database::open(&cli.database).await?;
            print(&crate::projects::api_app(store.as_ref(), command).await?, cli.json);
            Ok(())
        }
        Command::Grant(command) => {
            let store = database::open(&cli.database).await?;
            print(&crate::projects::grant(store.as_ref(), command).await?, cli.json);
            Ok(())
        }
        Command::Organization(command) => {
            let store = database::open(&cli.database).await?;
            let output = crate::organization::organization(store.as_ref(), command).await?;
            print(&output, cli.json);
            Ok(())
        }
    }
}

/// What a command prints: a JSON value and the same as text.
pub(crate) struct Output {
    pub(crate) json: serde_json::Value,
    pub(crate) text: String,
}

fn print(output: &Output, json: bool) {
    #[allow(clippy::print_stdout)] // the CLI's output channel
    if json {
        println!("{}", output.json);
    } else {
        print!("{}", output.text);
    }
}

async fn service_user(store: &dyn Store, command: ServiceUserCommand) -> Result<Output> {
    let now = OffsetDateTime::now_utc();
    match command {
        ServiceUserCommand::Create {
            username,
            display_name,
            access_token_type,
            token_lifetime,
        } => {
            let mut user = ServiceUser::new(parse_username(&username)?, now)
                .map_err(|e| CliError(e.to_string()))?;
            if let Some(name) = display_name {
                user.display_name = parse_display_name(&name)?;
            }
            if let Some(kind) = access_token_type {
                user.access_token_type = kind;
            }
            if let Some(secs) = token_lifetime {
                user.token_lifetime = parse_lifetime(secs)?;
            }
            let secret = ClientSecret::generate().map_err(|e| CliError(e.to_string()))?;
            user.secret = Some(SecretDigest::of(&secret));
            store.create_service_user(&user).await.map_err(|e| match e {
                StoreError::Conflict(_) => {
                    CliError(format!("service user {username} already exists"))
                }
                other => other.into(),
            })?;
            Ok(credentials_output(&user, &secret, "created", None))
        }
        ServiceUserCommand::Secret { username, grace } => {
            let name = parse_username(&username)?;
            let secret = ClientSecret::generate().map_err(|e| CliError(e.to_string()))?;
            let mut patch = ServiceUserPatch::at(now);
            patch.secret = Some(SecretDigest::of(&secret));
            patch.keep_previous_until = keep_previous_until(&grace, now);
            let user =
                store.update_service_user(&name, &patch).await.map_err(not_found(&username))?;
            let previous = kept_secret(&grace, user.previous_secret.as_ref());
            tracing::info!(
                target: "tessera::audit",
                event = "secret_regenerated",
                client_id = %user.username,
                previous_secret_expires_at = previous.map(|p| p.expires_at.unix_timestamp()),
            );
            Ok(credentials_output(&user, &secret, "new secret for", previous))
        }
        ServiceUserCommand::List => {
            let users = store.list_service_users().await?;
            let mut text = String::new();
            if users.is_empty() {
                text.push_str("no service users\n");
            }
            for user in &users {
                let _ = writeln!(
                    text,
                    "{}\t{}\t{}\t{}s\t{}",
                    user.username,
                    user.id,
                    user.access_token_type,
                    user.token_lifetime.as_secs(),
                    if user.enabled { "enabled" } else { "disabled" }
                );
            }
            let list: Vec<_> = users.iter().map(UserView::from).collect();
            Ok(Output { json: json!({ "service_users": list }), text })
        }
        ServiceUserCommand::Show { username } => {
            Ok(user_output(&find_user(store, &username).await?))
        }
        ServiceUserCommand::Delete { username } => {
            let name = parse_username(&username)?;
            store.delete_service_user(&name).await.map_err(not_found(&username))?;
            Ok(Output {
                json: json!({ "deleted": username }),
                text: format!("deleted service user {username}\n"),
            })
        }
        ServiceUserCommand::Key(command) => crate::client_keys::user_key(store, command).await,
        ServiceUserCommand::Set {
            username,
            access_token_type,
            token_lifetime,
            display_name,
            enabled,
        } => {
            let name = parse_username(&username)?;
            let mut patch = ServiceUserPatch::at(now);
            patch.access_token_type = access_token_type;
            patch.token_lifetime = token_lifetime.map(parse_lifetime).transpose()?;
            patch.display_name = display_name.as_deref().map(parse_display_name).transpose()?;
            patch.enabled = enabled;
            let user =
                store.update_service_user(&name, &patch).await.map_err(not_found(&username))?;
            Ok(user_output(&user))
        }
    }
}

fn not_found(username: &str) -> impl FnOnce(StoreError) -> CliError + '_ {
    move |e| match e {
        StoreError::NotFound(_) => CliError(format!("service user {username} not found")),
        other => other.into(),
    }
}

/// The service user named `username`, or a "not found" error.
pub(crate) async fn find_user(store: &dyn Store, username: &str) -> Result<ServiceUser> {
    store
        .service_user_by_username(&parse_username(username)?)
        .await?
        .ok_or_else(|| CliError(format!("service user {username} not found")))
}

pub(crate) fn parse_username(value: &str) -> Result<Username> {
    Username::new(value).map_err(|e| CliError(format!("invalid username {value:?}: {e}")))
}

pub(crate) fn parse_display_name(value: &str) -> Result<DisplayName> {
    DisplayName::new(value).map_err(|e| CliError(format!("invalid display name: {e}")))
}

pub(crate) fn parse_project_id(value: &str) -> Result<ProjectId> {
    ProjectId::new(value).map_err(|e| CliError(format!("invalid project id {value:?}: {e}")))
}

pub(crate) fn parse_client_id(value: &str) -> Result<ClientId> {
    ClientId::new(value).map_err(|e| CliError(format!("invalid client ID {value:?}: {e}")))
}

pub(crate) fn parse_role(value: &str) -> Result<RoleKey> {
    RoleKey::new(value).map_err(|e| CliError(format!("invalid role {value:?}: {e}")))
}

pub(crate) fn parse_lifetime(secs: u64) -> Result<TokenLifetime> {
    TokenLifetime::from_secs(secs).map_err(|e| CliError(format!("invalid token lifetime: {e}")))
}

fn credentials_output(
    user: &ServiceUser,
    secret: &ClientSecret,
    verb: &str,
    previous: Option<&PreviousSecret>,
) -> Output {
    secret_output(
        &format!("{verb} service user {}", user.username),
        &[
            ("user_id", user.id.as_str()),
            ("username", user.username.as_str()),
            ("client_id", user.username.as_str()),
        ],
        secret,
        previous,
    )
}

/// When a secret regenerated with `grace` keeps the replaced one: `now` plus the
/// grace period, or `None` for no grace period (the old secret stops at once).
pub(crate) fn keep_previous_until(
    grace: &SecretGraceArgs,
    now: OffsetDateTime,
) -> Option<OffsetDateTime> {
    grace.keep_old_for.map(|secs| now + Duration::seconds(i64::from(secs)))
}

/// The previous secret a regeneration with `grace` kept, to report its expiry; none
/// without a grace period (or when there was no secret to keep).
pub(crate) fn kept_secret<'a>(
    grace: &SecretGraceArgs,
    previous: Option<&'a PreviousSecret>,
) -> Option<&'a PreviousSecret> {
    previous.filter(|_| grace.keep_old_for.is_some())
}

/// The output of a command that shows a new secret once: `fields` then
/// `client_secret`, as JSON and as aligned text under `heading`; with `previous`
/// (the old secret kept for a grace period), its expiry as
/// `previous_secret_expires_at` (RFC 3339) too.
pub(crate) fn secret_output(
    heading: &str,
    fields: &[(&str, &str)],
    secret: &ClientSecret,
    previous: Option<&PreviousSecret>,
) -> Output {
    let mut json = serde_json::Map::new();
    let mut text = format!("{heading}\n");
    for (name, value) in fields.iter().copied().chain([("client_secret", secret.expose())]) {
        json.insert(name.to_owned(), value.into());
        let _ = writeln!(text, "{:<15}{value}", format!("{name}:"));
    }
    if let Some(previous) = previous {
        let expires_at = previous.expires_at.format(&Rfc3339).unwrap_or_default();
        let _ = writeln!(text, "The old client secret keeps working until {expires_at}.");
        json.insert("previous_secret_expires_at".to_owned(), expires_at.into());
    }
    text.push_str("The client secret is shown only this once; store it safely.\n");
    Output { json: serde_json::Value::Object(json), text }
}

/// A service user as the CLI shows it; never the secret digest.
#[derive(Serialize)]
struct UserView<'a> {
    user_id: &'a str,
    username: &'a str,
    client_id: &'a str,
    display_name: &'a str,
    access_token_type: AccessTokenType,
    token_lifetime_secs: u32,
    enabled: bool,
    has_secret: bool,
    created_at: String,
    updated_at: String,
}

impl<'a> From<&'a ServiceUser> for UserView<'a> {
    fn from(user: &'a ServiceUser) -> Self {
        let time = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
        Self {
            user_id: user.id.as_str(),
            username: user.username.as_str(),
            client_id: user.username.as_str(),
            display_name: user.display_name.as_str(),
            access_token_type: user.access_token_type,
            token_lifetime_secs: user.token_lifetime.as_secs(),
            enabled: user.enabled,
            has_secret: user.secret.is_some(),
            created_at: time(user.created_at),
            updated_at: time(user.updated_at),
        }
    }
}

fn user_output(user: &ServiceUser) -> Output {
    let view = UserView::from(user);
    let text = format!(
        "username:          {}\nuser_id:           {}\ndisplay_name:      {}\n\
         access_token_type: {}\ntoken_lifetime:    {}s\nenabled:           {}\n\
         has_secret:        {}\ncreated_at:        {}\nupdated_at:        {}\n",
        view.username,
        view.user_id,
        view.display_name,
        view.access_token_type,
        view.token_lifetime_secs,
        view.enabled,
        view.has_secret,
        view.created_at,
        view.updated_at
    );
    Output { json: serde_json::to_value(&view).unwrap_or_default(), text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_secret_adds_its_expiry_to_the_output() -> Result<(), Box<dyn std::error::Error>> {
        let secret = ClientSecret::provided(&"s".repeat(32))?;
        let fields = [("client_id", "app")];
        let plain = secret_output("new secret for app", &fields, &secret, None);
        assert_eq!(plain.json, json!({ "client_id": "app", "client_secret": "s".repeat(32) }));
        assert!(!plain.text.contains("old client secret"));

        let expires_at = OffsetDateTime::from_unix_timestamp(1_700_000_000)?;
        let previous = PreviousSecret::new(SecretDigest::of(&secret), expires_at);
        let kept = secret_output("new secret for app", &fields, &secret, Some(&previous));
        assert_eq!(kept.json["previous_secret_expires_at"], "2023-11-14T22:13:20Z");
        assert_eq!(kept.json["client_secret"], "s".repeat(32));
        assert!(
            kept.text.contains("The old client secret keeps working until 2023-11-14T22:13:20Z.\n"),
            "{}",
            kept.text
        );

        let grace = SecretGraceArgs { keep_old_for: Some(30) };
        assert_eq!(
            keep_previous_until(&grace, expires_at),
            Some(expires_at + Duration::seconds(30))
        );
        assert_eq!(kept_secret(&grace, Some(&previous)), Some(&previous));
        let none = SecretGraceArgs { keep_old_for: None };
        assert_eq!(keep_previous_until(&none, expires_at), None);
        assert_eq!(kept_secret(&none, Some(&previous)), None);
        Ok(())
    }
}
