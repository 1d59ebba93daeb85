//! The audit trail of the issuer: typed events, and the sink they are handed to.
//!
//! Every security-relevant thing the [`Issuer`](crate::Issuer) and the
//! [`TokenEndpoint`](crate::TokenEndpoint) do on a request is an [`AuditEvent`],
//! handed to the issuer's [`AuditSink`] with the address the request came from. The
//! default sink, [`TracingAudit`], logs each as a `tracing` event of the target
//! `tessera::audit` (the fields of docs/audit.md). An application that keeps its
//! audit trail elsewhere (a table, a queue) or writes its log lines itself installs
//! its own with [`Issuer::with_audit_sink`](crate::Issuer::with_audit_sink), and may
//! hand the events it does not handle on to [`TracingAudit`].
//!
//! ```
//! use std::net::IpAddr;
//! use std::sync::{Arc, Mutex};
//! use tessera_endpoint::{AuditEvent, AuditSink, Issuer, TracingAudit};
//! use tessera_mint::TokenMinter;
//! use tessera_store::MemoryStore;
//!
//! /// Counts issued tokens, and logs everything as usual.
//! #[derive(Debug, Default)]
//! struct Counting(Mutex<u64>);
//!
//! impl AuditSink for Counting {
//!     fn record(&self, event: &AuditEvent<'_>, client_address: Option<IpAddr>) {
//!         if let AuditEvent::TokenIssued { .. } = event {
//!             *self.0.lock().unwrap() += 1;
//!         }
//!         TracingAudit.record(event, client_address);
//!     }
//! }
//!
//! let issuer = Issuer::new(Arc::new(MemoryStore::new()), TokenMinter::new("https://auth.example.com"))
//!     .with_audit_sink(Arc::new(Counting::default()));
//! # let _ = issuer;
//! ```
//!
//! Fields that come from a request (a presented client ID, say) are as the client
//! sent them, cut to [`MAX_LOGGED_ID_CHARS`] characters: a sink that writes text must
//! escape them, as the log formats of `tracing-subscriber` and `tessera-server` do.

use std::fmt;
use std::net::IpAddr;

use tessera_scope::ScopeSet;
use tessera_store::AccessTokenType;
use time::OffsetDateTime;
use tracing::field::display;

use crate::issuer::AuthMethod;

/// The characters of a presented client ID that an event carries.
pub const MAX_LOGGED_ID_CHARS: usize = 64;

/// One event of the audit trail. Its [`name`](Self::name) is the `event` field of the
/// log line, and stable.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum AuditEvent<'a> {
    /// A client authenticated with a secret (logged at debug level).
    ClientAuthenticated {
        /// The client's ID.
        client_id: &'a str,
        /// How it authenticated.
        method: AuthMethod,
    },
    /// A wrong secret, or an unknown or disabled client.
    ClientAuthenticationFailed {
        /// The client ID as presented, cut to [`MAX_LOGGED_ID_CHARS`] characters.
        client_id: &'a str,
        /// How it tried to authenticate.
        method: AuthMethod,
    },
    /// A JWT-profile assertion was refused.
    AssertionRejected {
        /// `Grant` (the jwt-bearer grant) or `ClientAuth` (client authentication).
        usage: &'static str,
        /// Which kind of check failed.
        reason: &'a str,
    },
    /// An attempt was refused with 429.
    ClientThrottled {
        /// The client ID as presented, cut to [`MAX_LOGGED_ID_CHARS`] characters.
        client_id: &'a str,
        /// The address the attempt was counted against, if known.
        address: Option<IpAddr>,
        /// The seconds the client was told to wait.
        retry_after: u64,
    },
    /// A token was issued (and its record stored, for an opaque token).
    TokenIssued {
        /// The service user's client ID.
        client_id: &'a str,
        /// The token's id.
        jti: &'a str,
        /// Opaque or JWT.
        token_type: AccessTokenType,
        /// The granted scopes.
        scope: &'a ScopeSet,
        /// The token's audience.
        audience: &'a [String],
        /// When the token expires.
        expires_at: OffsetDateTime,
    },
    /// A token was revoked.
    TokenRevoked {
        /// The token's id.
        jti: &'a str,
        /// The client ID of the token's user.
        client_id: &'a str,
        /// The client ID of the revoking client.
        by: &'a str,
    },
}

impl AuditEvent<'_> {
    /// The `event` field: `token_issued` and so on (docs/audit.md).
    pub const fn name(&self) -> &'static str {
        match self {
            AuditEvent::ClientAuthenticated { .. } => "client_authenticated",
            AuditEvent::ClientAuthenticationFailed { .. } => "client_authentication_failed",
            AuditEvent::AssertionRejected { .. } => "assertion_rejected",
            AuditEvent::ClientThrottled { .. } => "client_throttled",
            AuditEvent::TokenIssued { .. } => "token_issued",
            AuditEvent::TokenRevoked { .. } => "token_revoked",
        }
    }

    /// The level [`TracingAudit`] logs the event at.
    pub const fn level(&self) -> tracing::Level {
        match self {
            AuditEvent::ClientAuthenticated { .. } => tracing::Level::DEBUG,
            AuditEvent::ClientThrottled { .. } => tracing::Level::WARN,
            _ => tracing::Level::INFO,
        }
    }
}

/// Where the issuer hands its [`AuditEvent`]s, with the address of the request they
/// belong to (`None` outside a request, or when the server named no address).
///
/// It is called on the request's task, once per event: a sink that does slow work
/// (a network call) should queue the event and do it elsewhere.
pub trait AuditSink: Send + Sync + fmt::Debug + 'static {
    /// Records one event.
    fn record(&self, event: &AuditEvent<'_>, client_address: Option<IpAddr>);
}

/// The default [`AuditSink`]: each event is a `tracing` event of the target
/// `tessera::audit` at the event's [`level`](AuditEvent::level), with the fields
/// docs/audit.md lists and `client_address` when it is known.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingAudit;

impl AuditSink for TracingAudit {
    fn record(&self, event: &AuditEvent<'_>, client_address: Option<IpAddr>) {
        let client_address = client_address.map(|addr| display(LogAddress(addr)));
        match *event {
            AuditEvent::ClientAuthenticated { client_id, method } => tracing::debug!(
                target: "tessera::audit",
                event = "client_authenticated",
                client_id = %client_id,
                method = method.as_str(),
                client_address,
            ),
            AuditEvent::ClientAuthenticationFailed { client_id, method } => tracing::info!(
                target: "tessera::audit",
                event = "client_authentication_failed",
                client_id = %client_id.escape_default(),
                method = method.as_str(),
                client_address,
            ),
            AuditEvent::AssertionRejected { usage, reason } => tracing::info!(
                target: "tessera::audit",
                event = "assertion_rejected",
                usage = %usage,
                reason = %reason,
                client_address,
            ),
            AuditEvent::ClientThrottled { client_id, address, retry_after } => tracing::warn!(
                target: "tessera::audit",
                event = "client_throttled",
                client_id = %client_id,
                address = ?address,
                retry_after,
                client_address,
            ),
            AuditEvent::TokenIssued { client_id, jti, token_type, scope, audience, expires_at } => {
                tracing::info!(
                    target: "tessera::audit",
                    event = "token_issued",
                    client_id = %client_id,
                    jti = %jti,
                    token_type = %token_type,
                    scope = %scope,
                    audience = %SpaceSeparated(audience),
                    expires_at = expires_at.unix_timestamp(),
                    client_address,
                );
            }
            AuditEvent::TokenRevoked { jti, client_id, by } => tracing::info!(
                target: "tessera::audit",
                event = "token_revoked",
                jti = %jti,
                client_id = %client_id,
                by = %by,
                client_address,
            ),
        }
    }
}

/// `id` cut to [`MAX_LOGGED_ID_CHARS`] characters.
pub(crate) fn loggable_id(id: &str) -> &str {
    match id.char_indices().nth(MAX_LOGGED_ID_CHARS) {
        Some((end, _)) => &id[..end],
        None => id,
    }
}

/// A list written as a scope is, its items separated by spaces (`bench-client bench`):
/// one quoted string in a log line, instead of a list's `Debug` form with quotes to
/// escape.
pub(crate) struct SpaceSeparated<'a>(pub(crate) &'a [String]);

impl fmt::Display for SpaceSeparated<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(item)?;
        }
        Ok(())
    }
}

/// An address displayed as [`IpAddr`] displays it, an IPv4 address without the
/// general formatting machinery (a log line per request writes one).
#[derive(Debug, Clone, Copy)]
pub struct LogAddress(pub IpAddr);

impl LogAddress {
    /// Appends the address as it displays to `out`.
    pub fn append_to(&self, out: &mut Vec<u8>) {
        match self.0 {
            IpAddr::V4(v4) => {
                let (text, len) = v4_text(v4);
                out.extend_from_slice(&text[..len]);
            }
            IpAddr::V6(_) => {
                use std::io::Write as _;
                // Writing to a `Vec` cannot fail.
                let _ = write!(out, "{}", self.0);
            }
        }
    }
}

/// `v4` in dotted decimal: the text and its length.
fn v4_text(v4: std::net::Ipv4Addr) -> ([u8; 15], usize) {
    let mut text = [0u8; 15];
    let mut len = 0;
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text[len] = b'.';
            len += 1;
        }
        if octet >= 100 {
            text[len] = b'0' + octet / 100;
            len += 1;
        }
        if octet >= 10 {
            text[len] = b'0' + octet / 10 % 10;
            len += 1;
        }
        text[len] = b'0' + octet % 10;
        len += 1;
    }
    (text, len)
}

impl fmt::Display for LogAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let IpAddr::V4(v4) = self.0 else {
            return fmt::Display::fmt(&self.0, f);
        };
        let (text, len) = v4_text(v4);
        f.write_str(std::str::from_utf8(&text[..len]).map_err(|_| fmt::Error)?)
    }
}
