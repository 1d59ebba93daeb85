//! `service-user key` and `api-app key`: key pairs for JWT profile authentication.

use std::fmt::Write as _;

use serde_json::json;
use tessera_mint::{SigningKey, key_file_pem};
use tessera_store::{ClientKey, KeyOwner, SigningAlgorithm, Store, StoreError};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::cli::{AppKeyCommand, KeyAddArgs, KeyType, UserKeyCommand};
use crate::commands::{CliError, Output, Result, find_user, parse_client_id};
use crate::database::chain;

pub(crate) async fn user_key(store: &dyn Store, command: UserKeyCommand) -> Result<Output> {
    match command {
        UserKeyCommand::Add { username, options } => {
            let user = find_user(store, &username).await?;
            let owner = KeyOwner::ServiceUser(user.id.clone());
            let (key, pem) = add(store, owner, &options).await?;
            // The shape of the key files ZITADEL hands out for service users.
            let file = json!({
                "type": "serviceaccount",
                "keyId": key.key_id,
                "key": pem.as_str(),
                "expirationDate": expiration_date(&key),
                "userId": user.id,
            });
            Ok(key_file_output(&key, file))
        }
        UserKeyCommand::List { username } => {
            let user = find_user(store, &username).await?;
            list(store, &KeyOwner::ServiceUser(user.id)).await
        }
        UserKeyCommand::Remove { username, key_id } => {
            let user = find_user(store, &username).await?;
            remove(store, &KeyOwner::ServiceUser(user.id), &key_id).await
        }
    }
}

pub(crate) async fn app_key(store: &dyn Store, command: AppKeyCommand) -> Result<Output> {
    let app_owner =
        |client_id: &str| -> Result<KeyOwner> { Ok(KeyOwner::ApiApp(parse_client_id(client_id)?)) };
    match command {
        AppKeyCommand::Add { client_id, options } => {
            let id = parse_client_id(&client_id)?;
            let app = store
                .api_app_by_client_id(&id)
                .await?
                .ok_or_else(|| CliError(format!("API app {client_id} not found")))?;
            let (key, pem) = add(store, KeyOwner::ApiApp(id), &options).await?;
            // The shape of the key files ZITADEL hands out for applications.
            let file = json!({
                "type": "application",
                "keyId": key.key_id,
                "key": pem.as_str(),
                "expirationDate": expiration_date(&key),
                "appId": app.app_id,
                "clientId": app.client_id,
            });
            Ok(key_file_output(&key, file))
        }
        AppKeyCommand::List { client_id } => list(store, &app_owner(&client_id)?).await,
        AppKeyCommand::Remove { client_id, key_id } => {
            remove(store, &app_owner(&client_id)?, &key_id).await
        }
    }
}

/// A key file's `expirationDate` (RFC 3339): the key's expiry, or for a key without
/// one the far-future date ZITADEL writes, 9999-12-31T23:59:59Z.
fn expiration_date(key: &ClientKey) -> String {
    let never = time::macros::datetime!(9999-12-31 23:59:59 UTC);
    key.expires_at
        .unwrap_or(never)
        .format(&Rfc3339)
        .unwrap_or_else(|_| "9999-12-31T23:59:59Z".to_owned())
}

/// Generates a key pair, stores its public half, and returns the private key as PEM
/// (RSA keys as PKCS#1, as in ZITADEL's key files).
async fn add(
    store: &dyn Store,
    owner: KeyOwner,
    options: &KeyAddArgs,
) -> Result<(ClientKey, zeroize::Zeroizing<String>)> {
    let algorithm = match options.key_type {
        KeyType::Rsa => SigningAlgorithm::Rs256,
        KeyType::Ec => SigningAlgorithm::Es256,
        KeyType::Ed25519 => SigningAlgorithm::EdDsa,
    };
    let (pair, pkcs8) = SigningKey::generate(algorithm).map_err(|e| CliError(chain(&e)))?;
    let now = OffsetDateTime::now_utc();
    let key = ClientKey {
        key_id: pair.kid().to_owned(),
        owner,
        algorithm,
        public_jwk: pair.public_jwk().to_string(),
        created_at: tessera_store::whole_seconds(now),
        expires_at: options
            .expires
            .map(|days| tessera_store::whole_seconds(now + Duration::days(i64::from(days)))),
    };
    // Encoded before anything is stored: a key that cannot be handed out is not kept.
    let pem = key_file_pem(algorithm, &pkcs8)
        .ok_or_else(|| CliError("the generated key could not be encoded".to_owned()))?;
    store.add_client_key(&key).await.map_err(|e| match e {
        StoreError::NotFound(_) => CliError(format!("{} not found", key.owner)),
        other => other.into(),
    })?;
    tracing::info!(target: "tessera::audit", event = "client_key_added", key_id = %key.key_id, owner = %key.owner);
    Ok((key, pem))
}

fn key_file_output(key: &ClientKey, file: serde_json::Value) -> Output {
    let text = format!(
        "added key {} ({}) for {}\nSave this key file now; the private key is not stored:\n{}\n",
        key.key_id,
        key.algorithm,
        key.owner,
        serde_json::to_string_pretty(&file).unwrap_or_default()
    );
    Output { json: file, text }
}

async fn list(store: &dyn Store, owner: &KeyOwner) -> Result<Output> {
    let keys = store.client_keys_of(owner).await?;
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

async fn remove(store: &dyn Store, owner: &KeyOwner, key_id: &str) -> Result<Output> {
    if !store.remove_client_key(owner, key_id).await? {
        return Err(CliError(format!("key {key_id} of {owner} not found")));
    }
    Ok(Output { json: json!({ "removed": key_id }), text: format!("removed key {key_id}\n") })
}
