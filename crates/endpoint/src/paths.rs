//! The paths the endpoints answer at, relative to the issuer URL.

/// Path of the authorization endpoint. It exists so that discovery documents name it
/// (OpenID Connect clients require one); it answers every request with an error,
/// since service users have no interactive login.
pub const AUTHORIZE_PATH: &str = "/oauth/v2/authorize";
/// Path of the token endpoint.
pub const TOKEN_PATH: &str = "/oauth/v2/token";
/// Path of token introspection (RFC 7662).
pub const INTROSPECT_PATH: &str = "/oauth/v2/introspect";
/// Path of token revocation (RFC 7009).
pub const REVOKE_PATH: &str = "/oauth/v2/revoke";
/// Path of the userinfo endpoint.
pub const USERINFO_PATH: &str = "/oidc/v1/userinfo";
/// Path of the liveness check: 200 while the process serves and reaches its store.
pub const HEALTH_PATH: &str = "/healthz";
/// Path of the readiness check: 200 when the store can be read and written and a
/// signing key is loaded.
pub const READY_PATH: &str = "/readyz";
/// Path of the JWK Set of the token signing keys.
pub const KEYS_PATH: &str = "/oauth/v2/keys";
/// Path of the OpenID Connect discovery document.
pub const OPENID_CONFIGURATION_PATH: &str = "/.well-known/openid-configuration";
/// Path of the RFC 8414 authorization server metadata (the same document).
pub const OAUTH_METADATA_PATH: &str = "/.well-known/oauth-authorization-server";

/// Every path an endpoint answers at, relative to the issuer URL: mount these (each
/// under the issuer URL's path) to route exactly Tessera's requests to it.
pub const ROUTES: [&str; 10] = [
    TOKEN_PATH,
    INTROSPECT_PATH,
    REVOKE_PATH,
    KEYS_PATH,
    AUTHORIZE_PATH,
    USERINFO_PATH,
    OPENID_CONFIGURATION_PATH,
    OAUTH_METADATA_PATH,
    HEALTH_PATH,
    READY_PATH,
];
