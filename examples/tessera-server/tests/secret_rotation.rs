//! Secret rotation with a grace period against the real server on SQLite:
//! `secret --keep-old-for SECS` keeps the old secret working until its expiry, on a
//! server that is running, for service users at the token endpoint and for API apps
//! at the introspection endpoint.
//!
//! The CLI and the server read the real clock, so the grace period is waited out
//! with short sleeps (a 3 second grace period, polled for up to 6 seconds).

mod common;

use std::time::{Duration, Instant};

use common::{Server, cli, cli_json, create_user, temp_db};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn http() -> oauth2::reqwest::Client {
    oauth2::reqwest::Client::builder()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .expect("HTTP client")
}

/// An answer of the server: status, `WWW-Authenticate` and the JSON body.
struct Answer {
    status: u16,
    challenge: Option<String>,
    body: Value,
}

impl Answer {
    /// Whether the answer is the 401 `invalid_client` of rejected credentials.
    fn is_invalid_client(&self) -> bool {
        self.status == 401
            && self.body["error"] == "invalid_client"
            && self.challenge.as_deref().is_some_and(|c| c.starts_with("Basic"))
    }
}

async fn post(
    server: &Server,
    path: &str,
    id: &str,
    secret: &str,
    form: &[(&str, &str)],
) -> Answer {
    let response = http()
        .post(server.url(path))
        .basic_auth(id, Some(secret))
        .form(form)
        .send()
        .await
        .expect("POST");
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().expect("ASCII header").to_owned());
    let body = serde_json::from_slice(&response.bytes().await.expect("body")).expect("JSON");
    Answer { status, challenge, body }
}

/// Asks for a token with the client credentials grant.
async fn token(server: &Server, id: &str, secret: &str) -> Answer {
    post(server, "/oauth/v2/token", id, secret, &[("grant_type", "client_credentials")]).await
}

/// Asks, as the API app `id`, about `access_token`.
async fn introspect(server: &Server, id: &str, secret: &str, access_token: &str) -> Answer {
    post(server, "/oauth/v2/introspect", id, secret, &[("token", access_token)]).await
}

/// Polls `attempt` every 100 ms until it is refused with `invalid_client`, for up
/// to 6 seconds; returns when that happened. Every answer before must be a success.
async fn wait_until_refused<F, Fut>(what: &str, mut attempt: F) -> OffsetDateTime
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Answer>,
{
    let deadline = Instant::now() + Duration::from_secs(6);
    loop {
        let answer = attempt().await;
        if answer.is_invalid_client() {
            return OffsetDateTime::now_utc();
        }
        assert_eq!(answer.status, 200, "{what} during its grace period: {}", answer.body);
        assert!(Instant::now() < deadline, "{what} still worked 6 seconds after a 3 second grace");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A regeneration's secret and, with `--keep-old-for`, the old one's expiry.
struct Regenerated {
    secret: String,
    previous_expires_at: Option<OffsetDateTime>,
}

/// Runs `secret` on the command line (`args`), checks its JSON output, and returns
/// the new secret. `fields` are the fields printed besides the secret and the expiry.
fn regenerate(database: &str, args: &[&str], fields: &[&str]) -> Regenerated {
    let before = OffsetDateTime::now_utc();
    let output = cli_json(database, args);
    let object = output.as_object().expect("a JSON object");
    let keep = args.iter().position(|a| *a == "--keep-old-for");
    let mut expected: Vec<&str> = fields.iter().copied().chain(["client_secret"]).collect();
    if keep.is_some() {
        expected.push("previous_secret_expires_at");
    }
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    expected.sort_unstable();
    assert_eq!(keys, expected, "the fields of {args:?}: {output}");
    let previous_expires_at = keep.map(|i| {
        let secs: i64 = args[i + 1].parse().expect("seconds");
        let text = output["previous_secret_expires_at"].as_str().expect("an expiry string");
        let at = OffsetDateTime::parse(text, &Rfc3339).expect("an RFC 3339 expiry");
        let earliest =
            before.replace_nanosecond(0).expect("whole second") + time::Duration::seconds(secs);
        let latest = OffsetDateTime::now_utc() + time::Duration::seconds(secs);
        assert!(earliest <= at && at <= latest, "{text} is not now + {secs} s");
        assert_eq!(at.nanosecond(), 0, "the expiry has whole seconds");
        at
    });
    let secret = output["client_secret"].as_str().expect("client_secret").to_owned();
    Regenerated { secret, previous_expires_at }
}

#[tokio::test]
async fn a_service_user_secret_kept_for_a_grace_period_works_until_it_ends() {
    let db = temp_db();
    let first = create_user(&db.url, "rotating", &[]).client_secret;
    let server = Server::start(&db.url, &[]);
    let fields = ["user_id", "username", "client_id"];
    let regen = |extra: &[&str]| {
        let mut args = vec!["service-user", "secret", "--username", "rotating"];
        args.extend_from_slice(extra);
        regenerate(&db.url, &args, &fields)
    };
    let works = |secret: &str| {
        let secret = secret.to_owned();
        let server = &server;
        async move {
            let answer = token(server, "rotating", &secret).await;
            assert_eq!(answer.status, 200, "{}", answer.body);
            assert!(answer.body["access_token"].is_string());
        }
    };
    let refused = |secret: &str| {
        let secret = secret.to_owned();
        let server = &server;
        async move {
            let answer = token(server, "rotating", &secret).await;
            assert!(answer.is_invalid_client(), "{} {}", answer.status, answer.body);
        }
    };

    // Out of bounds is refused before anything changes.
    for bad in ["0", "2592001"] {
        let output = cli(
            &db.url,
            &["service-user", "secret", "--username", "rotating", "--keep-old-for", bad],
        );
        assert!(!output.status.success(), "--keep-old-for {bad} must be refused");
    }
    works(&first).await;

    // A 3 second grace period: both work at once; the old one stops at its expiry.
    let second = regen(&["--keep-old-for", "3"]);
    let expiry = second.previous_expires_at.expect("an expiry");
    works(&first).await;
    works(&second.secret).await;
    let refused_at =
        wait_until_refused("the old secret", || token(&server, "rotating", &first)).await;
    assert!(refused_at >= expiry, "refused at {refused_at}, before the expiry {expiry}");
    refused(&first).await;
    works(&second.secret).await;

    // Regenerating again during a grace period keeps only the secret replaced last.
    let third = regen(&["--keep-old-for", "600"]);
    works(&second.secret).await;
    works(&third.secret).await;
    let fourth = regen(&["--keep-old-for", "600"]);
    refused(&second.secret).await;
    works(&third.secret).await;
    works(&fourth.secret).await;

    // Without the flag the old secret, and the one kept before it, stop at once.
    let fifth = regen(&[]);
    assert_eq!(fifth.previous_expires_at, None);
    refused(&fourth.secret).await;
    refused(&third.secret).await;
    works(&fifth.secret).await;

    let logs = server.logs();
    for secret in [&first, &second.secret, &third.secret, &fourth.secret, &fifth.secret] {
        assert!(!logs.contains(secret.as_str()), "a secret leaked into the logs");
    }
}

#[tokio::test]
async fn an_api_app_secret_kept_for_a_grace_period_works_until_it_ends() {
    let db = temp_db();
    cli_json(&db.url, &["project", "create", "--name", "Orders", "--id", "orders"]);
    let app = cli_json(
        &db.url,
        &[
            "api-app",
            "create",
            "--project",
            "orders",
            "--name",
            "Orders API",
            "--client-id",
            "orders-api",
        ],
    );
    let first = app["client_secret"].as_str().expect("client_secret").to_owned();
    let user = create_user(&db.url, "caller", &[]);
    let server = Server::start(&db.url, &[]);
    let access = token(&server, "caller", &user.client_secret).await;
    assert_eq!(access.status, 200, "{}", access.body);
    let access = access.body["access_token"].as_str().expect("access_token").to_owned();

    let fields = ["project_id", "client_id"];
    let regen = |extra: &[&str]| {
        let mut args = vec!["api-app", "secret", "--client-id", "orders-api"];
        args.extend_from_slice(extra);
        regenerate(&db.url, &args, &fields)
    };
    let ask = |secret: &str| {
        let (secret, access) = (secret.to_owned(), access.clone());
        let server = &server;
        async move { introspect(server, "orders-api", &secret, &access).await }
    };
    let works = |secret: &str| {
        let answer = ask(secret);
        async move {
            let answer = answer.await;
            assert_eq!(answer.status, 200, "{}", answer.body);
            assert_eq!(answer.body["active"], false, "the token names no project of the app");
        }
    };
    let refused = |secret: &str| {
        let answer = ask(secret);
        async move {
            let answer = answer.await;
            assert!(answer.is_invalid_client(), "{} {}", answer.status, answer.body);
        }
    };

    let output =
        cli(&db.url, &["api-app", "secret", "--client-id", "orders-api", "--keep-old-for", "0"]);
    assert!(!output.status.success(), "--keep-old-for 0 must be refused");
    works(&first).await;

    let second = regen(&["--keep-old-for", "3"]);
    let expiry = second.previous_expires_at.expect("an expiry");
    works(&first).await;
    works(&second.secret).await;
    let refused_at = wait_until_refused("the old app secret", || ask(&first)).await;
    assert!(refused_at >= expiry, "refused at {refused_at}, before the expiry {expiry}");
    refused(&first).await;
    works(&second.secret).await;

    let third = regen(&["--keep-old-for", "600"]);
    works(&second.secret).await;
    works(&third.secret).await;
    let fourth = regen(&["--keep-old-for", "600"]);
    refused(&second.secret).await;
    works(&third.secret).await;
    works(&fourth.secret).await;

    let fifth = regen(&[]);
    assert_eq!(fifth.previous_expires_at, None);
    refused(&fourth.secret).await;
    refused(&third.secret).await;
    works(&fifth.secret).await;
}
