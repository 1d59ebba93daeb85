//! Command-line interface: flags, then environment variables, then defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use tessera_mint::JwtHeaderType;
use tessera_store::{AccessTokenType, SigningAlgorithm};

/// Tessera: OAuth 2.0 access tokens for service users.
#[derive(Debug, Parser)]
#[command(name = "tessera-server", version, about)]
pub(crate) struct Cli {
    /// Database: sqlite://PATH, postgres://..., or memory:
    #[arg(
        long,
        global = true,
        env = "TESSERA_DATABASE_URL",
        default_value = "sqlite://tessera.db"
    )]
    pub(crate) database: String,

    /// Print one JSON object instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Serve the OAuth endpoints.
    Serve(ServeArgs),
    /// Manage service users.
    #[command(name = "service-user", subcommand)]
    ServiceUser(ServiceUserCommand),
    /// Manage projects (the APIs tokens name in their audience).
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Manage API apps (APIs that introspect and revoke tokens).
    #[command(name = "api-app", subcommand)]
    ApiApp(ApiAppCommand),
    /// Manage the roles granted to service users.
    #[command(subcommand)]
    Grant(GrantCommand),
    /// Show or change the organization that owns every user, project and app.
    #[command(subcommand)]
    Organization(OrganizationCommand),
    /// Manage the administrators: service users who may use the management API.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum AdminCommand {
    /// Grant an administrator role to a service user.
    Add {
        /// The service user.
        #[arg(long)]
        username: String,
        /// IAM_OWNER, IAM_OWNER_VIEWER, ORG_OWNER, ORG_USER_MANAGER or PROJECT_OWNER.
        #[arg(long)]
        role: String,
        /// The project of a PROJECT_OWNER (default: every project).
        #[arg(long)]
        project: Option<String>,
    },
    /// List the administrators and their roles.
    List,
    /// Take a role (or, without --role, every role) from a service user.
    Remove {
        /// The service user.
        #[arg(long)]
        username: String,
        /// The role to take (default: every role the user holds).
        #[arg(long)]
        role: Option<String>,
        /// The project of a PROJECT_OWNER role to take.
        #[arg(long)]
        project: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum PatCommand {
    /// Create a personal access token; prints it once.
    Add {
        /// The service user.
        #[arg(long)]
        username: String,
        /// Days until the token stops being accepted (default: never).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=36_600))]
        expires: Option<u32>,
    },
    /// List the personal access tokens of a service user (never the tokens).
    List {
        /// The service user.
        #[arg(long)]
        username: String,
    },
    /// Remove a personal access token; it stops working at once.
    Remove {
        /// The service user.
        #[arg(long)]
        username: String,
        /// The token id.
        #[arg(long)]
        token_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum OrganizationCommand {
    /// Show the organization's id, name and primary domain.
    Show,
    /// Change the organization's name or primary domain (the id never changes);
    /// creates it when the database has none yet. Running servers see the change
    /// when they restart.
    Set {
        /// The organization's name.
        #[arg(long)]
        name: Option<String>,
        /// The organization's primary domain (such as acme.example.com).
        #[arg(long)]
        domain: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProjectCommand {
    /// Create a project; prints its id.
    Create {
        /// Human-readable name.
        #[arg(long)]
        name: String,
        /// Id to use instead of a generated one (A-Z a-z 0-9 - _).
        #[arg(long)]
        id: Option<String>,
    },
    /// List projects.
    List,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ApiAppCommand {
    /// Manage the key pairs an API app signs client assertions with.
    #[command(subcommand)]
    Key(AppKeyCommand),
    /// Create an API app of a project; prints its client ID and secret.
    Create {
        /// The project.
        #[arg(long)]
        project: String,
        /// Human-readable name.
        #[arg(long)]
        name: String,
        /// Client ID to use instead of a generated one.
        #[arg(long)]
        client_id: Option<String>,
    },
    /// Generate a new client secret; the old one stops working at once, or after
    /// --keep-old-for seconds.
    Secret {
        /// The API app.
        #[arg(long)]
        client_id: String,
        #[command(flatten)]
        grace: SecretGraceArgs,
    },
    /// List API apps.
    List,
    /// Delete an API app.
    Delete {
        /// The API app.
        #[arg(long)]
        client_id: String,
    },
}

/// Options of `secret`: how long the replaced secret keeps working.
#[derive(Debug, Args)]
pub(crate) struct SecretGraceArgs {
    /// Keep the old secret working for this many seconds (at most 30 days), so that
    /// clients can move to the new one without downtime. Regenerating again in the
    /// meantime drops the older secret: at most two work at a time.
    #[arg(long, value_name = "SECS",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_KEEP_OLD_FOR_SECS)))]
    pub(crate) keep_old_for: Option<u32>,
}

/// The longest grace period of a replaced secret: 30 days.
pub(crate) const MAX_KEEP_OLD_FOR_SECS: u32 = 30 * 24 * 60 * 60;

#[derive(Debug, Subcommand)]
pub(crate) enum GrantCommand {
    /// Grant a role of a project to a service user.
    Add(GrantArgs),
    /// List the roles granted to a service user.
    List {
        /// The service user.
        #[arg(long)]
        username: String,
    },
    /// Take a role back.
    Remove(GrantArgs),
}

/// One role of one project for one service user.
#[derive(Debug, Args)]
pub(crate) struct GrantArgs {
    /// The service user.
    #[arg(long)]
    pub(crate) username: String,
    /// The project.
    #[arg(long)]
    pub(crate) project: String,
    /// The role.
    #[arg(long)]
    pub(crate) role: String,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TESSERA_LISTEN", default_value = "127.0.0.1:8080")]
    pub(crate) listen: SocketAddr,

    /// Address to serve Prometheus metrics at (GET /metrics) instead of the main
    /// listener; without it, /metrics is answered on the main listener.
    #[arg(long, env = "TESSERA_METRICS_LISTEN", value_name = "ADDR")]
    pub(crate) metrics_listen: Option<SocketAddr>,

    /// Issuer identifier, the base URL clients reach the server at
    /// (default: `http://<listen address>`).
    #[arg(long, env = "TESSERA_ISSUER")]
    pub(crate) issuer: Option<String>,

    /// JSON file of service users to create or update at start-up.
    #[arg(long, env = "TESSERA_BOOTSTRAP")]
    pub(crate) bootstrap: Option<PathBuf>,

    /// Algorithm of new token signing keys: ES256, RS256 or EdDSA [default: ES256, or
    /// RS256 with --compat zitadel].
    #[arg(long, env = "TESSERA_SIGNING_ALG")]
    pub(crate) signing_alg: Option<SigningAlgorithm>,

    /// The `typ` header of JWT access tokens: at+jwt (RFC 9068) or JWT [default:
    /// at+jwt, or JWT with --compat zitadel].
    #[arg(long, env = "TESSERA_ACCESS_TOKEN_TYP")]
    pub(crate) access_token_typ: Option<JwtHeaderType>,

    /// Compatibility setting: `zitadel` signs JWT access tokens as ZITADEL does (RS256,
    /// `typ: JWT`), for validators written for ZITADEL's tokens. --signing-alg and
    /// --access-token-typ still override it.
    #[arg(long, env = "TESSERA_COMPAT", value_enum)]
    pub(crate) compat: Option<Compat>,

    /// Refuse client assertions (jwt-bearer grant, private_key_jwt) without a `jti`.
    /// Without this flag, an assertion with a `jti` is single use, and one without is
    /// accepted until its `exp` (at most an hour), as ZITADEL accepts it.
    #[arg(long, env = "TESSERA_REQUIRE_ASSERTION_JTI")]
    pub(crate) require_assertion_jti: bool,

    /// Name of the organization created when the database has none
    /// [default: Tessera]; change it later with `organization set`.
    #[arg(long, env = "TESSERA_ORGANIZATION_NAME")]
    pub(crate) organization_name: Option<String>,

    /// Primary domain of the organization created when the database has none
    /// [default: the issuer's host]; change it later with `organization set`.
    #[arg(long, env = "TESSERA_ORGANIZATION_DOMAIN")]
    pub(crate) organization_domain: Option<String>,

    /// Seconds each signing key signs before the next takes over (at least 1200).
    #[arg(long, env = "TESSERA_KEY_ROTATION", default_value_t = 21_600,
          value_parser = clap::value_parser!(u64).range(1200..=31_622_400))]
    pub(crate) key_rotation: u64,

    /// Longest lifetime of a JWT access token, in seconds; retired keys stay published
    /// this long.
    #[arg(long, env = "TESSERA_JWT_MAX_LIFETIME", default_value_t = 86_400,
          value_parser = clap::value_parser!(u64).range(60..=31_622_400))]
    pub(crate) jwt_max_lifetime: u64,

    /// Connections served at once; further ones wait in the listen backlog.
    #[arg(long, env = "TESSERA_MAX_CONNECTIONS", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(crate) max_connections: u32,

    /// Seconds a connection may go without a complete request head, counted from its
    /// accept or its last answer: bounds a slow request head and an idle keep-alive
    /// connection alike.
    #[arg(long, env = "TESSERA_HEADER_READ_TIMEOUT", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(crate) header_read_timeout: u64,

    /// Seconds a whole request (reading the body and answering) may take before it is
    /// answered 408.
    #[arg(long, env = "TESSERA_REQUEST_TIMEOUT", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(crate) request_timeout: u64,

    /// Largest request head (request line and headers) in bytes, at least 8192.
    #[arg(long, env = "TESSERA_MAX_HEADER_BYTES", default_value_t = 16_384,
          value_parser = clap::value_parser!(u64).range(8192..=1_048_576))]
    pub(crate) max_header_bytes: u64,

    /// Largest request body in bytes; larger ones are answered 413.
    #[arg(long, env = "TESSERA_MAX_BODY_BYTES", default_value_t = 65_536,
          value_parser = clap::value_parser!(u64).range(1024..=16_777_216))]
    pub(crate) max_body_bytes: u64,

    /// Header a trusted proxy appends the client's address to (such as
    /// X-Forwarded-For): the entry the outermost trusted proxy appended counts (the
    /// last one, with one proxy). Without it, the peer address counts.
    #[arg(long, env = "TESSERA_CLIENT_ADDRESS_HEADER")]
    pub(crate) client_address_header: Option<String>,

    /// How many trusted proxies append to --client-address-header: the address used
    /// is this many entries from the end of its list (all its lines joined in order).
    #[arg(long, env = "TESSERA_TRUSTED_PROXY_HOPS", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=16))]
    pub(crate) trusted_proxy_hops: u32,

    /// Failed client authentications allowed per client ID and address per window.
    #[arg(long, env = "TESSERA_AUTH_FAILURES_PER_CLIENT_ADDRESS", default_value_t = 10)]
    pub(crate) auth_failures_per_client_address: u32,

    /// Failed client authentications allowed per address, across client IDs, per window.
    #[arg(long, env = "TESSERA_AUTH_FAILURES_PER_ADDRESS", default_value_t = 100)]
    pub(crate) auth_failures_per_address: u32,

    /// Failed client authentications allowed per client ID, across addresses, per window.
    #[arg(long, env = "TESSERA_AUTH_FAILURES_PER_CLIENT", default_value_t = 1000)]
    pub(crate) auth_failures_per_client: u32,

    /// Length of a throttling window in seconds.
    #[arg(long, env = "TESSERA_AUTH_FAILURE_WINDOW", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub(crate) auth_failure_window: u64,

    /// Turn throttling of failed client authentication off.
    #[arg(long, env = "TESSERA_NO_THROTTLE")]
    pub(crate) no_throttle: bool,

    /// Seconds to let in-flight requests finish after SIGINT or SIGTERM.
    #[arg(long, env = "TESSERA_SHUTDOWN_GRACE", default_value_t = 30)]
    pub(crate) shutdown_grace: u64,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ServiceUserCommand {
    /// Create a service user and generate its client secret.
    Create {
        /// Username, also the client ID.
        #[arg(long)]
        username: String,
        /// Human-readable name (default: the username).
        #[arg(long)]
        display_name: Option<String>,
        /// opaque (default) or jwt.
        #[arg(long)]
        access_token_type: Option<AccessTokenType>,
        /// Access token lifetime in seconds (default 43200, 12 hours).
        #[arg(long)]
        token_lifetime: Option<u64>,
    },
    /// Generate a new client secret; the old one stops working at once, or after
    /// --keep-old-for seconds.
    Secret {
        /// The service user.
        #[arg(long)]
        username: String,
        #[command(flatten)]
        grace: SecretGraceArgs,
        /// Also revoke every token issued to the user so far (for a leaked secret).
        #[arg(long)]
        revoke_tokens: bool,
    },
    /// Revoke every access token issued to the user so far, opaque and JWT, at once
    /// on every server; tokens issued afterwards work as usual.
    #[command(name = "revoke-tokens")]
    RevokeTokens {
        /// The service user.
        #[arg(long)]
        username: String,
    },
    /// List service users.
    List,
    /// Show one service user.
    Show {
        /// The service user.
        #[arg(long)]
        username: String,
    },
    /// Delete a service user and its tokens.
    Delete {
        /// The service user.
        #[arg(long)]
        username: String,
    },
    /// Manage the key pairs a service user signs assertions with (JWT profile).
    #[command(subcommand)]
    Key(UserKeyCommand),
    /// Manage the personal access tokens of a service user.
    #[command(subcommand)]
    Pat(PatCommand),
    /// Change settings of a service user.
    Set {
        /// The service user.
        #[arg(long)]
        username: String,
        /// opaque or jwt.
        #[arg(long)]
        access_token_type: Option<AccessTokenType>,
        /// Access token lifetime in seconds.
        #[arg(long)]
        token_lifetime: Option<u64>,
        /// Human-readable name.
        #[arg(long)]
        display_name: Option<String>,
        /// Enable (true) or disable (false) the user.
        #[arg(long)]
        enabled: Option<bool>,
        /// Also revoke every token issued to the user so far, so that enabling it
        /// again later does not bring them back.
        #[arg(long)]
        revoke_tokens: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_go_anywhere() -> Result<(), clap::Error> {
        let cli = Cli::try_parse_from([
            "tessera-server",
            "service-user",
            "create",
            "--username",
            "u",
            "--json",
            "--database",
            "memory:",
            "--access-token-type",
            "jwt",
        ])?;
        assert!(cli.json);
        assert_eq!(cli.database, "memory:");
        assert!(matches!(
            cli.command,
            Command::ServiceUser(ServiceUserCommand::Create {
                access_token_type: Some(AccessTokenType::Jwt),
                ..
            })
        ));
        assert!(
            Cli::try_parse_from([
                "tessera-server",
                "service-user",
                "create",
                "--username",
                "u",
                "--access-token-type",
                "paseto"
            ])
            .is_err()
        );
        Ok(())
    }

    #[test]
    fn keep_old_for_is_bounded() -> Result<(), clap::Error> {
        let parse = |command: &str, id_flag: &str, secs: Option<&str>| {
            let mut args = vec!["tessera-server", command, "secret", id_flag, "x"];
            args.extend(secs.map(|s| ["--keep-old-for", s]).into_iter().flatten());
            Cli::try_parse_from(args)
        };
        for (command, id_flag) in [("service-user", "--username"), ("api-app", "--client-id")] {
            let grace = |cli: Cli| match cli.command {
                Command::ServiceUser(ServiceUserCommand::Secret { grace, .. })
                | Command::ApiApp(ApiAppCommand::Secret { grace, .. }) => grace.keep_old_for,
                _ => panic!("not a secret command"),
            };
            assert_eq!(grace(parse(command, id_flag, None)?), None);
            assert_eq!(grace(parse(command, id_flag, Some("1"))?), Some(1));
            assert_eq!(grace(parse(command, id_flag, Some("2592000"))?), Some(2_592_000));
            for bad in ["0", "2592001", "-5", "1h"] {
                assert!(parse(command, id_flag, Some(bad)).is_err(), "{command} {bad}");
            }
        }
        Ok(())
    }
}

/// Compatibility settings of `serve --compat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Compat {
    /// JWT access tokens as ZITADEL signs them: RS256 with `typ: JWT`.
    Zitadel,
}

/// The kinds of key pair `key add` generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum KeyType {
    /// RSA 2048, for RS256 (the default): the only kind ZITADEL's client libraries
    /// load (the Rust zitadel crate, Python zitadel-client, Node @zitadel/node and the
    /// other SDKs sign with RS256).
    Rsa,
    /// ECDSA P-256, for ES256: for clients that sign assertions themselves; their
    /// signatures must be canonical (low s). No ZITADEL client library loads it.
    Ec,
    /// Ed25519, for EdDSA: for clients that sign assertions themselves. No ZITADEL
    /// client library loads it.
    Ed25519,
}

/// Options of `key add`.
#[derive(Debug, Args)]
pub(crate) struct KeyAddArgs {
    /// Days until the key stops being accepted (default: never).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=36_600))]
    pub(crate) expires: Option<u32>,
    /// The kind of key pair: rsa is the only one ZITADEL's client libraries load.
    #[arg(long = "type", value_enum, default_value = "rsa")]
    pub(crate) key_type: KeyType,
}

#[derive(Debug, Subcommand)]
pub(crate) enum UserKeyCommand {
    /// Generate a key pair; prints the private key once, as a key file.
    Add {
        /// The service user.
        #[arg(long)]
        username: String,
        #[command(flatten)]
        options: KeyAddArgs,
    },
    /// List the keys of a service user.
    List {
        /// The service user.
        #[arg(long)]
        username: String,
    },
    /// Remove a key; assertions signed with it stop working at once.
    Remove {
        /// The service user.
        #[arg(long)]
        username: String,
        /// The key id.
        #[arg(long)]
        key_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AppKeyCommand {
    /// Generate a key pair; prints the private key once, as a key file.
    Add {
        /// The API app.
        #[arg(long)]
        client_id: String,
        #[command(flatten)]
        options: KeyAddArgs,
    },
    /// List the keys of an API app.
    List {
        /// The API app.
        #[arg(long)]
        client_id: String,
    },
    /// Remove a key.
    Remove {
        /// The API app.
        #[arg(long)]
        client_id: String,
        /// The key id.
        #[arg(long)]
        key_id: String,
    },
}
