//! Client keys and their ZITADEL-shaped key files, on the in-memory store and on SQLite.

mod common;

use std::sync::{Arc, Mutex, PoisonError};

use common::{TestResult, World, on_each_backend, start};
use serde_json::json;
use tessera_admin::{
    AdminError, KeyFile, KeyFileKind, KeyType, NewApiApp, NewProject, NewServiceUser,
};
use tessera_store::{
    ClientId, Clock, DisplayName, KeyOwner, ProjectId, SigningAlgorithm, UserId, Username,
};
use time::Duration;

#[tokio::test]
async fn a_service_user_key_file_has_zitadel_fields_and_only_the_public_key_is_stored() -> TestResult
{
    let logs = common::logs();
    let key_ids = Arc::new(Mutex::new(Vec::new()));
    on_each_backend(|World { admin, store, .. }| {
        let key_ids = key_ids.clone();
        async move {
            let (user, _) =
                admin.create_service_user(NewServiceUser::new(Username::new("signer")?)).await?;
            let owner = KeyOwner::ServiceUser(user.id.clone());
            let (key, file) = admin.add_client_key(&owner, KeyType::default(), None).await?;
            assert_eq!(key.algorithm, SigningAlgorithm::Rs256, "RSA by default");
            assert_eq!((key.created_at, key.expires_at), (start(), None));
            assert_eq!(store.client_key(&key.key_id).await?, Some(key.clone()));
            assert!(!key.public_jwk.contains("\"d\""), "no private part is stored");

            assert_eq!(file.kind, KeyFileKind::ServiceAccount);
            assert_eq!(file.key_id, key.key_id);
            assert!(file.key.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"), "PKCS#1");
            assert_eq!(file.expiration_date, KeyFile::NEVER);
            let value = serde_json::to_value(&file)?;
            assert_eq!(
                value,
                json!({
                    "type": "serviceaccount",
                    "keyId": key.key_id,
                    "key": file.key.as_str(),
                    "expirationDate": "9999-12-31T23:59:59Z",
                    "userId": user.id,
                })
            );
            let parsed: KeyFile = serde_json::from_value(value)?;
            assert_eq!(parsed, file, "a key file reads back");
            assert!(!format!("{file:?}").contains("PRIVATE KEY"), "Debug hides the key");

            let listed = admin.client_keys(&owner).await?;
            assert_eq!(listed, std::slice::from_ref(&key));
            key_ids.lock().unwrap_or_else(PoisonError::into_inner).push(key.key_id);
            Ok(())
        }
    })
    .await?;
    let text = logs.text();
    for key_id in key_ids.lock().unwrap_or_else(PoisonError::into_inner).iter() {
        let event = text.lines().find(|l| l.contains(key_id.as_str())).ok_or("no event")?;
        assert!(event.contains("tessera::audit") && event.contains("client_key_added"), "{event}");
        assert!(event.contains("owner=user:"), "{event}");
    }
    assert!(!text.contains("PRIVATE KEY"), "a private key was logged: {text}");
    Ok(())
}

#[tokio::test]
async fn an_api_app_key_file_names_the_app_and_keys_expire_in_whole_seconds() -> TestResult {
    on_each_backend(|World { admin, clock, .. }| async move {
        let project = admin
            .create_project(NewProject {
                id: Some(ProjectId::new("orders")?),
                name: DisplayName::new("Orders")?,
            })
            .await?;
        let (app, _) = admin
            .create_api_app(NewApiApp {
                project: project.id,
                name: DisplayName::new("API")?,
                client_id: None,
            })
            .await?;
        let owner = KeyOwner::ApiApp(app.client_id.clone());
        clock.advance(Duration::milliseconds(700));
        let expires = clock.now() + Duration::days(30);
        let (key, file) = admin.add_client_key(&owner, KeyType::Ec, Some(expires)).await?;
        assert_eq!(key.algorithm, SigningAlgorithm::Es256);
        assert_eq!(key.created_at, start(), "whole seconds");
        assert_eq!(key.expires_at, Some(start() + Duration::days(30)));
        assert!(file.key.starts_with("-----BEGIN PRIVATE KEY-----\n"), "PKCS#8");
        assert_eq!(
            serde_json::to_value(&file)?,
            json!({
                "type": "application",
                "keyId": key.key_id,
                "key": file.key.as_str(),
                "expirationDate": "2023-12-14T22:13:20Z",
                "appId": app.app_id,
                "clientId": app.client_id,
            })
        );
        assert_ne!(app.app_id.as_str(), app.client_id.as_str());

        let (ed, ed_file) = admin.add_client_key(&owner, KeyType::Ed25519, None).await?;
        assert_eq!(ed.algorithm, SigningAlgorithm::EdDsa);
        assert!(ed_file.key.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let ids: Vec<String> =
            admin.client_keys(&owner).await?.into_iter().map(|k| k.key_id).collect();
        assert_eq!(ids.len(), 2);
        assert!(ids.contains(&key.key_id) && ids.contains(&ed.key_id));

        admin.remove_client_key(&owner, &key.key_id).await?;
        let left: Vec<String> =
            admin.client_keys(&owner).await?.into_iter().map(|k| k.key_id).collect();
        assert_eq!(left, std::slice::from_ref(&ed.key_id));
        let again = admin.remove_client_key(&owner, &key.key_id).await.err().ok_or("gone")?;
        assert_eq!(
            again.to_string(),
            format!("key {} of app:{} not found", key.key_id, app.client_id)
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn keys_of_missing_owners_or_in_the_past_are_refused_and_nothing_is_stored() -> TestResult {
    on_each_backend(|World { admin, store, clock, .. }| async move {
        let ghost_user = KeyOwner::ServiceUser(UserId::new("123456789012345678")?);
        let err = admin.add_client_key(&ghost_user, KeyType::Ec, None).await.err().ok_or("fail")?;
        assert!(matches!(err, AdminError::NotFound { what: "service user", .. }), "{err:?}");
        let ghost_app = KeyOwner::ApiApp(ClientId::new("ghost-app")?);
        let err = admin.add_client_key(&ghost_app, KeyType::Ec, None).await.err().ok_or("fail")?;
        assert_eq!(err.to_string(), "API app ghost-app not found");

        let (user, _) =
            admin.create_service_user(NewServiceUser::new(Username::new("late")?)).await?;
        let owner = KeyOwner::ServiceUser(user.id);
        for past in [clock.now(), clock.now() - Duration::days(1)] {
            let err =
                admin.add_client_key(&owner, KeyType::Ec, Some(past)).await.err().ok_or("past")?;
            assert!(matches!(err, AdminError::Invalid { field: "expires_at", .. }), "{err:?}");
        }
        assert!(store.client_keys_of(&owner).await?.is_empty());
        assert!(admin.client_keys(&ghost_app).await?.is_empty());
        let err = admin.remove_client_key(&owner, "nope").await.err().ok_or("no such key")?;
        assert!(matches!(err, AdminError::NotFound { what: "key", .. }), "{err:?}");
        Ok(())
    })
    .await
}
