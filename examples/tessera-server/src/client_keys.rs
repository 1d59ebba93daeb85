//! `service-user key` and `api-app key`: key pairs for JWT profile authentication.

use std::fmt::Write as _;

use serde_json::json;
use tessera_admin::{Admin, KeyFile, KeyType};
use tessera_store::{ClientKey, KeyOwner};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::cli::{self, AppKeyCommand, KeyAddArgs, UserKeyCommand};
use crate::commands::{Output, Result, parse_client_id, parse_username};

pub(crate) async fn user_key(admin: &Admin, command: UserKeyCommand) -> Result<Output> {
    match command {
        UserKeyCommand::Add { username, options } => {
            add(admin, user_owner(admin, &username).await?, &options).await
        }
        UserKeyCommand::List { username } => {
            list(admin, &user_owner(admin, &username).await?).await
        }
        UserKeyCommand::Remove { username, key_id } => {
            remove(admin, &user_owner(admin, &username).await?, &key_id).await
        }
    }
}

/// The service user named `username` as a key owner, or "not found".
async fn user_owner(admin: &Admin, username: &str) -> Result<KeyOwner> {
    Ok(KeyOwner::ServiceUser(admin.service_user(&parse_username(username)?).await?.id))
}

pub(crate) async fn app_key(admin: &Admin, command: AppKeyCommand) -> Result<Output> {
    let owner =
        |client_id: &str| -> Result<KeyOwner> { Ok(KeyOwner::ApiApp(parse_client_id(client_id)?)) };
    match command {
        AppKeyCommand::Add { client_id, options } => add(admin, owner(&client_id)?, &options).await,
        AppKeyCommand::List { client_id } => list(admin, &owner(&client_id)?).await,
        AppKeyCommand::Remove { client_id, key_id } => {
            remove(admin, &owner(&client_id)?, &key_id).await
        }
    }
}

/// Generates a key pair and prints its key file, the only copy of the private key.
async fn add(admin: &Admin, owner: KeyOwner, options: &KeyAddArgs) -> Result<Output> {
    let key_type = match options.key_type {
        cli::KeyType::Rsa => KeyType::Rsa,
        cli::KeyType::Ec => KeyType::Ec,
        cli::KeyType::Ed25519 => KeyType::Ed25519,
    };
    let expires_at = options.expires.map(|days| admin.now() + Duration::days(i64::from(days)));
    let (key, file) = admin.add_client_key(&owner, key_type, expires_at).await?;
    Ok(key_file_output(&key, &file))
}

fn key_file_output(key: &ClientKey, file: &KeyFile) -> Output {
    let file = serde_json::to_value(file).unwrap_or_default();
    let text = format!(
        "added key {} ({}) for {}\nSave this key file now; the private key is not stored:\n{}\n",
        key.key_id,
        key.algorithm,
        key.owner,
        serde_json::to_string_pretty(&file).unwrap_or_default()
    );
    Output { json: file, text }
}

async fn list(admin: &Admin, owner: &KeyOwner) -> Result<Output> {
    let keys = admin.client_keys(owner).await?;
    let time = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
    let mut text = String::new();
    if keys.is_empty() {
        text.push_str("no keys\n");
    }
    for k in &keys {
        let expires = k.expires_at.map(time).unwrap_or_else(|| "never".to_owned());
        let _ = writeln!(
            text,
            "{}\t{}\tcreated {}\texpires {}",
            k.key_id,
            k.algorithm,
            time(k.created_at),
            expires
        );
    }
    let list: Vec<_> = keys
        .iter()
        .map(|k| {
            json!({
                "key_id": k.key_id,
                "algorithm": k.algorithm.as_str(),
                "created_at": time(k.created_at),
                "expires_at": k.expires_at.map(time),
            })
        })
        .collect();
    Ok(Output { json: json!({ "keys": list }), text })
}

async fn remove(admin: &Admin, owner: &KeyOwner, key_id: &str) -> Result<Output> {
    admin.remove_client_key(owner, key_id).await?;
    Ok(Output { json: json!({ "removed": key_id }), text: format!("removed key {key_id}\n") })
}
