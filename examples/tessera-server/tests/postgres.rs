//! Several `tessera-server` instances on one PostgreSQL database, and what happens
//! when the database goes away. Each test works in a schema of its own; without
//! `TESSERA_TEST_POSTGRES_URL` each says it was skipped, and why.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{BIN, Credentials, Server};
use serde_json::{Value, json};
use tessera_mint::MasterKey;
use tessera_store_postgres::testkit::{TestSchema, url_or_skip};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;

fn http() -> oauth2::reqwest::Client {
    oauth2::reqwest::Client::new()
}

/// `url` with the schema as the connection's search path.
fn with_schema(url: &str, schema: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options=-csearch_path%3D{schema}")
}

/// Runs a CLI command against the database with the master key set; JSON output.
fn cli(database: &str, master: &str, args: &[&str]) -> Value {
    let output = std::process::Command::new(BIN)
        .args(args)
        .args(["--database", database, "--json"])
        .env("TESSERA_MASTER_KEY", master)
        .output()
        .expect("run the CLI");
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("JSON output")
}

fn credentials(value: &Value) -> Credentials {
    let field = |name: &str| value[name].as_str().unwrap_or_default().to_owned();
    Credentials {
        client_id: field("client_id"),
        client_secret: field("client_secret"),
        user_id: field("user_id"),
    }
}

async fn post(
    server: &Server,
    path: &str,
    creds: &Credentials,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let response = http()
        .post(server.url(path))
        .basic_auth(&creds.client_id, Some(&creds.client_secret))
        .form(form)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body");
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn token(server: &Server, creds: &Credentials) -> (u16, Value) {
    post(
        server,
        "/oauth/v2/token",
        creds,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "openid urn:zitadel:iam:org:project:id:orders:aud"),
        ],
    )
    .await
}

async fn keys(server: &Server) -> Value {
    let bytes = http()
        .get(server.url("/oauth/v2/keys"))
        .send()
        .await
        .expect("GET")
        .bytes()
        .await
        .expect("body");
    serde_json::from_slice(&bytes).expect("JSON")
}

#[tokio::test]
async fn two_instances_share_tokens_revocations_secrets_and_keys() {
    let Some(url) = url_or_skip("two_instances_share_tokens_revocations_secrets_and_keys") else {
        return;
    };
    let schema = TestSchema::create(&url).await.expect("schema");
    let database = with_schema(&url, schema.name());
    let master = MasterKey::generate().expect("key").to_base64().to_string();
    let env = [("TESSERA_MASTER_KEY", master.as_str())];
    let issuer = ["--issuer", "https://auth.example.com"];

    // Both instances start together on an empty database: one first key between them.
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| Server::start_with(&database, &issuer, None, &env));
        let b = scope.spawn(|| Server::start_with(&database, &issuer, None, &env));
        (a.join().expect("start A"), b.join().expect("start B"))
    });
    let (keys_a, keys_b) = (keys(&a).await, keys(&b).await);
    assert_eq!(keys_a["keys"].as_array().map(Vec::len), Some(1), "one key, not one per instance");
    assert_eq!(keys_a, keys_b, "both publish the same key set");

    cli(&database, &master, &["project", "create", "--name", "Orders", "--id", "orders"]);
    let app = credentials(&cli(
        &database,
        &master,
        &["api-app", "create", "--project", "orders", "--name", "Orders API"],
    ));
    let user = credentials(&cli(
        &database,
        &master,
        &["service-user", "create", "--username", "shared-job"],
    ));
    let jwt_user = credentials(&cli(
        &database,
        &master,
        &["service-user", "create", "--username", "jwt-job", "--access-token-type", "jwt"],
    ));

    for holder in [&user, &jwt_user] {
        // Issued by A, active on B.
        let (status, issued) = token(&a, holder).await;
        assert_eq!(status, 200, "{issued}");
        let access = issued["access_token"].as_str().expect("token").to_owned();
        let (_, answer) = post(&b, "/oauth/v2/introspect", &app, &[("token", &access)]).await;
        assert_eq!(
            answer["active"], true,
            "{}: a token issued by A is active on B",
            holder.client_id
        );
        assert_eq!(answer["iss"], "https://auth.example.com");

        // Revoked on B, inactive on A at once.
        let (status, _) = post(&b, "/oauth/v2/revoke", &app, &[("token", &access)]).await;
        assert_eq!(status, 200);
        let (_, answer) = post(&a, "/oauth/v2/introspect", &app, &[("token", &access)]).await;
        assert_eq!(
            answer,
            json!({"active": false}),
            "{}: revoked on B, inactive on A",
            holder.client_id
        );
    }

    // A secret regenerated with the CLI stops working on both instances at once.
    let rotated = credentials(&cli(
        &database,
        &master,
        &["service-user", "secret", "--username", "shared-job"],
    ));
    for server in [&a, &b] {
        let (status, body) = token(server, &user).await;
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
        assert_eq!(token(server, &rotated).await.0, 200);
    }
    assert_eq!(keys(&a).await, keys(&b).await);
    drop(schema);
}

#[test]
fn postgres_without_a_master_key_refuses_to_start() {
    let Some(url) = url_or_skip("postgres_without_a_master_key_refuses_to_start") else { return };
    let output = std::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--database", &url])
        .env_remove("TESSERA_MASTER_KEY")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("TESSERA_MASTER_KEY is required"), "{stderr}");
}

/// A TCP proxy in front of PostgreSQL that the test can cut and restore, so the
/// database "goes away" for this server only.
struct Proxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    listener: Option<JoinHandle<()>>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let mut proxy = Proxy {
            addr: "127.0.0.1:0".parse().expect("addr"),
            upstream,
            tasks: Arc::default(),
            listener: None,
        };
        proxy.open().await;
        proxy
    }

    async fn open(&mut self) {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_reuseaddr(true).expect("reuseaddr");
        socket.bind(self.addr).expect("bind the proxy");
        let listener: TcpListener = socket.listen(64).expect("listen");
        self.addr = listener.local_addr().expect("addr");
        let (upstream, tasks) = (self.upstream, self.tasks.clone());
        self.listener = Some(tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tasks.lock().expect("lock").push(task);
            }
        }));
    }

    /// Stops accepting and drops every open connection.
    fn cut(&mut self) {
        if let Some(listener) = self.listener.take() {
            listener.abort();
        }
        for task in self.tasks.lock().expect("lock").drain(..) {
            task.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_answers_503_and_the_server_recovers() {
    let Some(url) = url_or_skip("database_outage_answers_503_and_the_server_recovers") else {
        return;
    };
    let schema = TestSchema::create(&url).await.expect("schema");
    let config: tokio_postgres::Config = url.parse().expect("URL");
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let upstream: SocketAddr = format!("127.0.0.1:{port}").parse().expect("upstream");
    let mut proxy = Proxy::start(upstream).await;
    let user_part = config.get_user().unwrap_or("postgres");
    let dbname = config.get_dbname().unwrap_or("postgres");
    let through_proxy =
        with_schema(&format!("postgres://{user_part}@{}/{dbname}", proxy.addr), schema.name());

    let master = MasterKey::generate().expect("key").to_base64().to_string();
    let user = credentials(&cli(
        &through_proxy,
        &master,
        &["service-user", "create", "--username", "outage-job"],
    ));
    let server =
        Server::start_with(&through_proxy, &[], None, &[("TESSERA_MASTER_KEY", master.as_str())]);
    assert_eq!(token(&server, &user).await.0, 200);

    proxy.cut();
    let (status, body) = token(&server, &user).await;
    assert_eq!((status, body["error"].as_str()), (503, Some("temporarily_unavailable")), "{body}");
    let health = http().get(server.url("/healthz")).send().await.expect("GET");
    assert_eq!(health.status().as_u16(), 503);
    // Keys are still served from memory while the database is away.
    assert_eq!(keys(&server).await["keys"].as_array().map(Vec::len), Some(1));

    proxy.open().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _) = token(&server, &user).await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the server did not recover: last status {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let health = http().get(server.url("/healthz")).send().await.expect("GET");
    assert_eq!(health.status().as_u16(), 200);
    assert!(!server.logs().contains("panicked"), "{}", server.logs());
    drop(server);
    proxy.cut();
    drop(schema);
}

#[tokio::test]
async fn the_pool_in_use_is_in_the_metrics() {
    let Some(url) = url_or_skip("the_pool_in_use_is_in_the_metrics") else { return };
    let schema = TestSchema::create(&url).await.expect("schema");
    let database = with_schema(&url, schema.name());
    let master = MasterKey::generate().expect("key").to_base64().to_string();
    let server =
        Server::start_with(&database, &[], None, &[("TESSERA_MASTER_KEY", master.as_str())]);
    let text = http()
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let sample = |series: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
    };
    assert_eq!(sample("tessera_store_pool_max_connections"), 16.0, "the default pool size");
    let busy = sample(r#"tessera_store_pool_connections{state="busy"}"#);
    let idle = sample(r#"tessera_store_pool_connections{state="idle"}"#);
    assert!(busy + idle >= 1.0 && busy + idle <= 16.0, "busy {busy}, idle {idle}");
    assert_eq!(sample("tessera_store_pool_waiting"), 0.0);
}
