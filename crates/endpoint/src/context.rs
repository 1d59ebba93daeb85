//! The address of the request being answered, as log events report it.
//!
//! [`TokenEndpoint`](crate::TokenEndpoint) answers a request within the scope of
//! its [`ClientAddr`](crate::ClientAddr), and every event it logs meanwhile carries
//! the field `client_address`. A task-local value costs a few instructions per
//! poll; a `tracing` span per request, which did the same, cost about a fourteenth
//! of a token request's instructions.

use std::future::Future;
use std::net::IpAddr;

use tracing::field::DisplayValue;

use crate::audit::LogAddress;

tokio::task_local! {
    static CLIENT_ADDRESS: IpAddr;
}

/// Runs `future` with `addr` as the address its log events report.
pub(crate) async fn with_client_address<F: Future>(addr: Option<IpAddr>, future: F) -> F::Output {
    match addr {
        Some(addr) => CLIENT_ADDRESS.scope(addr, future).await,
        None => future.await,
    }
}

/// The address of the request being answered, if there is one and the server named
/// it.
pub(crate) fn current_client_address() -> Option<IpAddr> {
    CLIENT_ADDRESS.try_with(|addr| *addr).ok()
}

/// The `client_address` field of a log event: the address of the request being
/// answered, or no field outside a request or when the server named no address.
pub(crate) fn client_address() -> Option<DisplayValue<LogAddress>> {
    current_client_address().map(|addr| tracing::field::display(LogAddress(addr)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_display_as_the_standard_library_displays_them() {
        for addr in [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.0.1",
            "1.22.133.4",
            "100.10.1.0",
            "::1",
            "2001:db8::ff00:42:8329",
            "::ffff:192.0.2.1",
        ] {
            let addr: IpAddr = addr.parse().unwrap_or_else(|e| panic!("{addr}: {e}"));
            assert_displays_as_std(addr);
        }
        for n in (0..=u32::MAX).step_by(7_919_993) {
            assert_displays_as_std(IpAddr::from(n.to_be_bytes()));
        }
    }

    /// Both ways of writing a `LogAddress` give what `IpAddr` displays.
    fn assert_displays_as_std(addr: IpAddr) {
        assert_eq!(LogAddress(addr).to_string(), addr.to_string());
        let mut appended = b"before ".to_vec();
        LogAddress(addr).append_to(&mut appended);
        assert_eq!(appended, format!("before {addr}").into_bytes());
    }

    #[tokio::test]
    async fn the_address_is_known_within_the_scope_only() {
        assert!(client_address().is_none());
        let addr: IpAddr = "192.0.2.7".parse().unwrap_or_else(|e| panic!("{e}"));
        let inside = with_client_address(Some(addr), async {
            tokio::task::yield_now().await;
            client_address().map(|a| format!("{a}"))
        })
        .await;
        assert_eq!(inside.as_deref(), Some("192.0.2.7"));
        assert!(with_client_address(None, async { client_address().is_none() }).await);
        assert!(client_address().is_none());
    }
}
