//! Service users and their secrets, on the in-memory store and on SQLite.

mod common;

use std::sync::{Arc, Mutex, PoisonError};

use common::{TestResult, World, on_each_backend, start};
use tessera_admin::{AdminError, Grace, NewServiceUser, ServiceUserUpdate};
use tessera_store::{AccessTokenType, Clock, DisplayName, TokenLifetime, Username};
use time::Duration;

fn name(value: &str) -> Result<Username, tessera_store::IdError> {
    Username::new(value)
}

#[tokio::test]
async fn users_are_created_listed_changed_and_deleted() -> TestResult {
    on_each_backend(|World { admin, store, clock, .. }| async move {
        let mut new = NewServiceUser::new(name("reporting")?);
        new.display_name = Some(DisplayName::new("Reporting job")?);
        new.token_lifetime = TokenLifetime::from_secs(3600)?;
        let (created, secret) = admin.create_service_user(new).await?;
        assert!(secret.expose().len() >= 43, "at least 256 bits");
        let stored = store.service_user_by_username(&name("reporting")?).await?.ok_or("stored")?;
        assert_eq!(stored, created);
        assert_eq!(stored.display_name.as_str(), "Reporting job");
        assert_eq!(stored.token_lifetime.as_secs(), 3600);
        assert_eq!(stored.access_token_type, AccessTokenType::Opaque);
        assert!(stored.enabled);
        assert!(stored.credentials.matches(secret.expose(), clock.now()));
        assert_eq!(stored.created_at, start());

        admin.create_service_user(NewServiceUser::new(name("another")?)).await?;
        let names: Vec<String> =
            admin.service_users().await?.iter().map(|u| u.username.to_string()).collect();
        assert_eq!(names, ["another", "reporting"]);
        assert_eq!(admin.service_user(&name("another")?).await?.display_name.as_str(), "another");

        clock.advance(Duration::seconds(5));
        let update = ServiceUserUpdate {
            access_token_type: Some(AccessTokenType::Jwt),
            token_lifetime: Some(TokenLifetime::from_secs(120)?),
            ..ServiceUserUpdate::default()
        };
        let updated = admin.update_service_user(&name("reporting")?, update).await?;
        assert_eq!(updated.access_token_type, AccessTokenType::Jwt);
        assert_eq!(updated.token_lifetime.as_secs(), 120);
        assert_eq!(updated.display_name.as_str(), "Reporting job", "unnamed fields stay");
        assert_eq!(updated.updated_at, start() + Duration::seconds(5));
        assert!(updated.credentials.matches(secret.expose(), clock.now()), "the secret stays");
        assert_eq!(store.service_user_by_username(&name("reporting")?).await?, Some(updated));

        let disabled = admin.set_user_enabled(&name("reporting")?, false).await?;
        assert!(!disabled.enabled);
        assert!(!admin.service_user(&name("reporting")?).await?.enabled);
        assert!(admin.set_user_enabled(&name("reporting")?, true).await?.enabled);

        admin.delete_service_user(&name("reporting")?).await?;
        assert_eq!(store.service_user_by_username(&name("reporting")?).await?, None);
        assert_eq!(admin.service_users().await?.len(), 1);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn duplicates_and_missing_users_are_typed_errors() -> TestResult {
    on_each_backend(|World { admin, store, .. }| async move {
        let (first, _) = admin.create_service_user(NewServiceUser::new(name("taken")?)).await?;
        let err = admin
            .create_service_user(NewServiceUser::new(name("taken")?))
            .await
            .err()
            .ok_or("a duplicate must fail")?;
        assert!(
            matches!(&err, AdminError::AlreadyExists { what: "service user", id } if id == "taken"),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "service user taken already exists");
        assert_eq!(store.service_user_by_username(&name("taken")?).await?, Some(first));

        let ghost = name("ghost")?;
        let not_found = |e: AdminError| {
            matches!(&e, AdminError::NotFound { what: "service user", id } if id == "ghost")
                && e.to_string() == "service user ghost not found"
        };
        assert!(admin.service_user(&ghost).await.is_err_and(not_found));
        assert!(admin.regenerate_user_secret(&ghost, None).await.is_err_and(not_found));
        let update = ServiceUserUpdate { enabled: Some(false), ..ServiceUserUpdate::default() };
        assert!(admin.update_service_user(&ghost, update).await.is_err_and(not_found));
        assert!(admin.set_user_enabled(&ghost, true).await.is_err_and(not_found));
        assert!(admin.delete_service_user(&ghost).await.is_err_and(not_found));
        assert!(admin.grants_of(&ghost).await.is_err_and(not_found));
        assert!(admin.revoke_all_tokens_of_user(&ghost).await.is_err_and(not_found));
        assert_eq!(admin.service_users().await?.len(), 1, "the failures wrote nothing");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_secret_kept_for_a_grace_period_works_until_it_ends() -> TestResult {
    on_each_backend(|World { admin, store, clock, .. }| async move {
        let user = name("rotating")?;
        let (_, first) = admin.create_service_user(NewServiceUser::new(user.clone())).await?;
        let stored = || async {
            let found = store.service_user_by_username(&user).await?;
            found.ok_or_else(|| Box::<dyn std::error::Error>::from("not stored"))
        };

        clock.advance(Duration::milliseconds(300));
        let (rotated, second) =
            admin.regenerate_user_secret(&user, Some(Grace::from_secs(60)?)).await?;
        let expiry = start() + Duration::seconds(60);
        assert_eq!(
            rotated.credentials.previous.map(|p| p.expires_at),
            Some(expiry),
            "whole seconds"
        );
        assert_eq!(stored().await?, rotated);
        let now = clock.now();
        assert!(rotated.credentials.matches(first.expose(), now), "the old secret still works");
        assert!(rotated.credentials.matches(second.expose(), now));

        clock.set(expiry - Duration::seconds(1));
        assert!(stored().await?.credentials.matches(first.expose(), clock.now()));
        clock.set(expiry);
        let user_now = stored().await?;
        assert!(!user_now.credentials.matches(first.expose(), clock.now()), "stops at its expiry");
        assert!(user_now.credentials.matches(second.expose(), clock.now()));

        // Regenerating again keeps only the secret replaced last.
        let (_, third) = admin.regenerate_user_secret(&user, Some(Grace::from_secs(600)?)).await?;
        let (_, fourth) = admin.regenerate_user_secret(&user, Some(Grace::from_secs(600)?)).await?;
        let current = stored().await?;
        assert!(!current.credentials.matches(second.expose(), clock.now()));
        assert!(current.credentials.matches(third.expose(), clock.now()));
        assert!(current.credentials.matches(fourth.expose(), clock.now()));

        // Without a grace period the old secret, and the one kept before it, stop at once.
        let (plain, fifth) = admin.regenerate_user_secret(&user, None).await?;
        assert_eq!(plain.credentials.previous, None);
        let current = stored().await?;
        assert_eq!(current.credentials.previous, None);
        for old in [&third, &fourth] {
            assert!(!current.credentials.matches(old.expose(), clock.now()));
        }
        assert!(current.credentials.matches(fifth.expose(), clock.now()));
        Ok(())
    })
    .await
}

#[test]
fn grace_periods_are_bounded() {
    assert!(Grace::from_secs(0).is_err_and(|e| e.to_string().contains("keep_old_for")));
    assert_eq!(Grace::from_secs(1).map(Grace::as_secs).ok(), Some(1));
    assert_eq!(Grace::from_secs(2_592_000).map(Grace::as_secs).ok(), Some(Grace::MAX_SECS));
    assert!(matches!(
        Grace::from_secs(2_592_001),
        Err(AdminError::Invalid { field: "keep_old_for", .. })
    ));
}

/// The audit events of secret regeneration name the client and the kept secret's
/// expiry, and never a secret.
#[tokio::test]
async fn audit_events_never_hold_a_secret() -> TestResult {
    let logs = common::logs();
    let secrets = Arc::new(Mutex::new(Vec::new()));
    on_each_backend(|World { admin, .. }| {
        let secrets = secrets.clone();
        async move {
            let user = name("audited")?;
            let (_, first) = admin.create_service_user(NewServiceUser::new(user.clone())).await?;
            let (_, second) =
                admin.regenerate_user_secret(&user, Some(Grace::from_secs(60)?)).await?;
            let (_, third) = admin.regenerate_user_secret(&user, None).await?;
            let mut secrets = secrets.lock().unwrap_or_else(PoisonError::into_inner);
            secrets.extend([first, second, third].iter().map(|s| s.expose().to_owned()));
            Ok(())
        }
    })
    .await?;
    let text = logs.text();
    let events: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("secret_regenerated") && l.contains("client_id=audited"))
        .collect();
    assert_eq!(events.len(), 4, "{text}");
    assert!(events.iter().all(|l| l.contains("tessera::audit")), "{text}");
    let kept = events.iter().filter(|l| l.contains("previous_secret_expires_at=1700000060"));
    assert_eq!(kept.count(), 2, "the kept secret's expiry, as a Unix time: {text}");
    for secret in secrets.lock().unwrap_or_else(PoisonError::into_inner).iter() {
        assert!(!text.contains(secret.as_str()), "a secret was logged");
    }
    Ok(())
}
