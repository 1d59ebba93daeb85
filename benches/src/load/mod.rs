//! The load harness's building blocks: the credentials the floor server and the
//! harness share, child processes that die with the harness, `wrk`, `/proc`
//! sampling, and the report (table, JSON, SVG).
//!
//! The programs are `src/bin/floor.rs` (the floor server) and `src/bin/harness.rs`
//! (the harness); `benches/README.md` describes how to run them.

pub mod children;
pub mod http1;
pub mod procfs;
pub mod report;
pub mod wrk;

use base64ct::{Base64, Encoding};

/// The client ID of the service user the load is driven with, on the floor server
/// and on `tessera-server` alike.
pub const CLIENT_ID: &str = crate::CLIENT_ID;

/// The client secret of [`CLIENT_ID`]: 43 characters, the shape of a generated one.
/// It protects nothing: both servers listen on loopback only, for one run.
pub const CLIENT_SECRET: &str = "bench-secret-5nQ2vX8kLr1Zt7Wc4Yp0Hs3Jd6Fg9Bm";

/// The client ID of the API app that introspects tokens.
pub const API_CLIENT_ID: &str = "bench-api";

/// The client secret of [`API_CLIENT_ID`].
pub const API_CLIENT_SECRET: &str = "bench-api-secret-Qw3Er5Ty7Ui9Op1As2Df4Gh6Jk";

/// The project whose API app introspects, and whose audience scope the load asks for.
pub const PROJECT_ID: &str = "bench";

/// The scope list of every token request of the load: two standard scopes and the
/// audience scope of [`PROJECT_ID`].
pub const LOAD_SCOPE: &str = "openid profile urn:zitadel:iam:org:project:id:bench:aud";

/// The form body of every token request of the load ([`LOAD_SCOPE`], form-encoded).
pub const LOAD_TOKEN_BODY: &str = "grant_type=client_credentials&scope=openid+profile+urn%3Azitadel%3Aiam%3Aorg%3Aproject%3Aid%3Abench%3Aaud";

/// The `sub` claim the floor server puts in its tokens: a user id of the shape
/// Tessera generates (18 digits).
pub const FLOOR_USER_ID: &str = "318205117447201281";

/// What a server prints to standard error, followed by its address, once it
/// accepts connections (`tessera-server` logs it; the floor prints it).
pub const LISTENING_PREFIX: &str = "listening on http://";

/// The `Authorization` value of `id:secret` with HTTP Basic. Both must need no
/// form-encoding, as the constants of this module do not.
pub fn basic_authorization(id: &str, secret: &str) -> String {
    format!("Basic {}", Base64::encode_string(format!("{id}:{secret}").as_bytes()))
}

/// The address in a line that holds [`LISTENING_PREFIX`]: the text after it, up to
/// the first whitespace, as a socket address.
pub fn listening_address(line: &str) -> Option<std::net::SocketAddr> {
    let (_, rest) = line.split_once(LISTENING_PREFIX)?;
    let end = rest.find(|c: char| c.is_whitespace() || c == '"').unwrap_or(rest.len());
    rest[..end].trim_end_matches('/').parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_enough_for_bootstrap() {
        assert!(CLIENT_SECRET.len() >= 32);
        assert!(API_CLIENT_SECRET.len() >= 32);
    }

    #[test]
    fn listening_lines_parse() {
        let tessera = "2026-01-01T00:00:00.000000Z  INFO tessera_server::serve: listening on \
                       http://127.0.0.1:41234 issuer=http://127.0.0.1:41234 signing_alg=ES256";
        assert_eq!(listening_address(tessera), Some("127.0.0.1:41234".parse().unwrap()));
        assert_eq!(
            listening_address("listening on http://[::1]:8080"),
            Some("[::1]:8080".parse().unwrap())
        );
        assert_eq!(listening_address("starting"), None);
    }

    #[test]
    fn load_body_encodes_load_scope() {
        let encoded = LOAD_SCOPE.replace(' ', "+").replace(':', "%3A");
        assert_eq!(LOAD_TOKEN_BODY, format!("grant_type=client_credentials&scope={encoded}"));
    }
}
