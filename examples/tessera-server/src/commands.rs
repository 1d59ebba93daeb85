//! The management commands and their output; the operations are `tessera_admin`'s.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::json;
use tessera_admin::{Admin, AdminError, Grace, NewServiceUser, ServiceUserUpdate};
use tessera_store::{
    AccessTokenType, ClientId, ClientSecret, DisplayName, PreviousSecret, ProjectId, RoleKey,
    ServiceUser, StoreError, TokenLifetime, Username,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::cli::{Cli, Command, SecretGraceArgs, ServiceUserCommand};

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
        Self(tessera::chain(&value))
    }
}

impl From<tessera::Error> for CliError {
    fn from(value: tessera::Error) -> Self {
        Self(tessera::chain(&value))
    }
}

impl From<AdminError> for CliError {
    fn from(value: AdminError) -> Self {
        match value {
            AdminError::AlreadyExists { what: "client ID", id } => {
                Self(format!("client ID {id} is taken"))
            }
            other => Self(tessera::chain(&other)),
        }
    }
}

pub(crate) type Result<T, E = CliError> = std::result::Result<T, E>;

/// Runs the command the command line names.
pub(crate) async fn run(cli: Cli) -> Result<()> {
    if !matches!(cli.command, Command::Serve(_)) {
        // Management commands log their audit events (secret_regenerated, ...) and
        // warnings to stderr; their output goes to stdout.
        let _ = crate::serve::init_logging("warn,tessera::audit=info");
    }
    let admin = || async {
        let database = tessera::Database::open(&cli.database).await;
        database.map(|d| Admin::new(d.store)).map_err(CliError::from)
    };
    let output = match cli.command {
        Command::Serve(args) => return crate::serve::run(&cli.database, args).await,
        Command::ServiceUser(command) => service_user(&admin().await?, command).await?,
        Command::Project(command) => crate::projects::project(&admin().await?, command).await?,
        Command::ApiApp(command) => crate::projects::api_app(&admin().await?, command).await?,
        Command::Grant(command) => crate::projects::grant(&admin().await?, command).await?,
        Command::Organization(command) => {
            crate::organization::organization(&admin().await?, command).await?
        }
        Command::Admin(command) => crate::access::administrators(&admin().await?, command).await?,
    };
    print(&output, cli.json);
    Ok(())
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

async fn service_user(admin: &Admin, command: ServiceUserCommand) -> Result<Output> {
    match command {
        ServiceUserCommand::Create {
            username,
            display_name,
            access_token_type,
            token_lifetime,
        } => {
            let mut new = NewServiceUser::new(parse_username(&username)?);
            new.display_name = display_name.as_deref().map(parse_display_name).transpose()?;
            new.access_token_type = access_token_type.unwrap_or_default();
            new.token_lifetime =
                token_lifetime.map(parse_lifetime).transpose()?.unwrap_or_default();
            let (user, secret) = admin.create_service_user(new).await?;
            Ok(credentials_output(&user, &secret, "created"))
        }
        ServiceUserCommand::Secret { username, grace, revoke_tokens } => {
            let name = parse_username(&username)?;
            let grace = parse_grace(&grace)?;
            let (user, secret) = if revoke_tokens {
                admin.regenerate_user_secret_revoking_tokens(&name, grace).await?
            } else {
                admin.regenerate_user_secret(&name, grace).await?
            };
            Ok(credentials_output(&user, &secret, "new secret for"))
        }
        ServiceUserCommand::RevokeTokens { username } => {
            let user = admin.revoke_all_tokens_of_user(&parse_username(&username)?).await?;
            Ok(user_output(&user))
        }
        ServiceUserCommand::List => {
            let users = admin.service_users().await?;
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
            Ok(user_output(&admin.service_user(&parse_username(&username)?).await?))
        }
        ServiceUserCommand::Delete { username } => {
            admin.delete_service_user(&parse_username(&username)?).await?;
            Ok(Output {
                json: json!({ "deleted": username }),
                text: format!("deleted service user {username}\n"),
            })
        }
        ServiceUserCommand::Key(command) => crate::client_keys::user_key(admin, command).await,
        ServiceUserCommand::Pat(command) => crate::access::pat(admin, command).await,
        ServiceUserCommand::Set {
            username,
            access_token_type,
            token_lifetime,
            display_name,
            enabled,
            revoke_tokens,
        } => {
            let name = parse_username(&username)?;
            let update = ServiceUserUpdate {
                display_name: display_name.as_deref().map(parse_display_name).transpose()?,
                description: None,
                access_token_type,
                token_lifetime: token_lifetime.map(parse_lifetime).transpose()?,
                enabled,
                revoke_tokens,
            };
            Ok(user_output(&admin.update_service_user(&name, update).await?))
        }
    }
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

fn parse_lifetime(secs: u64) -> Result<TokenLifetime> {
    TokenLifetime::from_secs(secs).map_err(|e| CliError(format!("invalid token lifetime: {e}")))
}

/// The grace period `--keep-old-for` asks for, if any.
pub(crate) fn parse_grace(grace: &SecretGraceArgs) -> Result<Option<Grace>> {
    Ok(grace.keep_old_for.map(Grace::from_secs).transpose()?)
}

fn credentials_output(user: &ServiceUser, secret: &ClientSecret, verb: &str) -> Output {
    secret_output(
        &format!("{verb} service user {}", user.username),
        &[
            ("user_id", user.id.as_str()),
            ("username", user.username.as_str()),
            ("client_id", user.username.as_str()),
        ],
        secret,
        user.credentials.previous.as_ref(),
    )
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
    #[serde(skip_serializing_if = "Option::is_none")]
    tokens_revoked_before: Option<String>,
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
            has_secret: user.credentials.secret.is_some(),
            tokens_revoked_before: user.tokens_revoked_before.map(time),
            created_at: time(user.created_at),
            updated_at: time(user.updated_at),
        }
    }
}

fn user_output(user: &ServiceUser) -> Output {
    let view = UserView::from(user);
    let mut text = format!(
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
    if let Some(before) = &view.tokens_revoked_before {
        let _ = writeln!(text, "tokens revoked:    every token issued before {before}");
    }
    Output { json: serde_json::to_value(&view).unwrap_or_default(), text }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_store::SecretDigest;

    #[test]
    fn a_kept_secret_adds_its_expiry_to_the_output() -> Result<(), Box<dyn std::error::Error>> {
        let secret = ClientSecret::provided(&"s".repeat(32))?;
        let fields = [("client_id", "app")];
        let plain = secret_output("new secret for app", &fields, &secret, None);
        assert_eq!(plain.json, json!({ "client_id": "app", "client_secret": "s".repeat(32) }));
        assert!(!plain.text.contains("old client secret"));

        let expires_at = OffsetDateTime::from_unix_timestamp(1_700_000_000)?;
        let previous = PreviousSecret::new(SecretDigest::of(&secret)?, expires_at);
        let kept = secret_output("new secret for app", &fields, &secret, Some(&previous));
        assert_eq!(kept.json["previous_secret_expires_at"], "2023-11-14T22:13:20Z");
        assert_eq!(kept.json["client_secret"], "s".repeat(32));
        assert!(
            kept.text.contains("The old client secret keeps working until 2023-11-14T22:13:20Z.\n"),
            "{}",
            kept.text
        );

        let grace = SecretGraceArgs { keep_old_for: Some(30) };
        assert_eq!(parse_grace(&grace).map_err(|e| e.0)?.map(Grace::as_secs), Some(30));
        let none = SecretGraceArgs { keep_old_for: None };
        assert_eq!(parse_grace(&none).map_err(|e| e.0)?, None);
        Ok(())
    }

    #[test]
    fn taken_client_ids_keep_their_message() {
        let taken = AdminError::AlreadyExists { what: "client ID", id: "orders-api".to_owned() };
        assert_eq!(CliError::from(taken).0, "client ID orders-api is taken");
        let user = AdminError::AlreadyExists { what: "service user", id: "u".to_owned() };
        assert_eq!(CliError::from(user).0, "service user u already exists");
    }
}
