//! Where a request came from: the peer of its connection, or the address a trusted
//! proxy put in front of it.

use std::net::{IpAddr, SocketAddr};

use http::{HeaderName, Request};

/// The address a request came from, put into the request's extensions by the
/// server that accepted the connection (see [`TokenEndpoint::for_peer`]).
///
/// [`TokenEndpoint::for_peer`]: crate::TokenEndpoint::for_peer
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub IpAddr);

/// How the endpoint learns a request's client address, which throttling counts and
/// the log reports.
///
/// By default it is the connection's peer: a [`ClientAddr`] in the request's
/// extensions (put there by [`TokenEndpoint::for_peer`] or the server), or axum's
/// `ConnectInfo<SocketAddr>` (with the `axum` feature). Behind reverse proxies,
/// [`ClientAddressSource::header`] names the header they append the client's address
/// to (such as `X-Forwarded-For`), and `trusted_hops` how many proxies append to it.
///
/// [`TokenEndpoint::for_peer`]: crate::TokenEndpoint::for_peer
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientAddressSource {
    /// The header a trusted proxy appends the client's address to; `None` to use the
    /// peer address.
    pub header: Option<HeaderName>,
    /// How many trusted proxies append to the header (at least 1): the address used
    /// is the one the outermost trusted proxy appended, this many entries from the end
    /// of the header's list (all its lines, in order, joined). A list with fewer
    /// entries did not pass through every trusted proxy, and the peer counts.
    pub trusted_hops: usize,
}

impl ClientAddressSource {
    /// The address the last trusted proxy appended to `header`.
    pub fn header(header: HeaderName) -> Self {
        Self { header: Some(header), trusted_hops: 1 }
    }

    /// Trusts `hops` proxies that each append to the header.
    pub fn with_trusted_hops(mut self, hops: usize) -> Self {
        self.trusted_hops = hops.max(1);
        self
    }

    /// The client address of `request`: from the configured header, when it has an
    /// address at the trusted position, else the peer's.
    pub fn resolve<B>(&self, request: &Request<B>) -> Option<IpAddr> {
        self.resolve_from(request, None)
    }

    /// As [`resolve`](Self::resolve), with `peer` as the peer's address when the
    /// request carries none of its own (no [`ClientAddr`]).
    pub(crate) fn resolve_from<B>(
        &self,
        request: &Request<B>,
        peer: Option<IpAddr>,
    ) -> Option<IpAddr> {
        let peer = peer_address(request).or(peer);
        let Some(name) = &self.header else { return peer };
        self.forwarded(request, name).or(peer)
    }

    fn forwarded<B>(&self, request: &Request<B>, name: &HeaderName) -> Option<IpAddr> {
        let hops = self.trusted_hops.max(1);
        // The entries of every line, in order; a client writes the first ones, each
        // trusted proxy appends one at the end.
        let mut entries: Vec<&str> = Vec::new();
        for value in request.headers().get_all(name) {
            let value = value.to_str().ok()?;
            entries.extend(value.split(',').map(str::trim));
        }
        let index = entries.len().checked_sub(hops)?;
        parse_address(entries.get(index)?)
    }
}

/// An address as proxies write it: an IP address, optionally with a port
/// (`192.0.2.1:443`, `[2001:db8::1]:443`).
fn parse_address(entry: &str) -> Option<IpAddr> {
    entry.parse::<IpAddr>().ok().or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// The connection's peer, as the server or framework recorded it.
fn peer_address<B>(request: &Request<B>) -> Option<IpAddr> {
    if let Some(ClientAddr(addr)) = request.extensions().get::<ClientAddr>() {
        return Some(*addr);
    }
    #[cfg(feature = "axum")]
    if let Some(info) = request.extensions().get::<axum::extract::ConnectInfo<SocketAddr>>() {
        return Some(info.0.ip());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(lines: &[&str], peer: Option<&str>) -> Request<()> {
        let mut builder = Request::builder();
        for line in lines {
            builder = builder.header("x-forwarded-for", *line);
        }
        let mut request = builder.body(()).unwrap_or_default();
        if let Some(peer) = peer {
            let peer: IpAddr = peer.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
            request.extensions_mut().insert(ClientAddr(peer));
        }
        request
    }

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    #[test]
    fn the_peer_counts_without_a_header() {
        let source = ClientAddressSource::default();
        assert_eq!(source.resolve(&request(&["198.51.100.1"], Some("10.0.0.1"))), ip("10.0.0.1"));
        assert_eq!(source.resolve(&request(&[], None)), None);
    }

    #[test]
    fn the_last_entry_of_the_last_line_is_the_trusted_proxys() {
        let source = ClientAddressSource::header(HeaderName::from_static("x-forwarded-for"));
        let peer = Some("10.0.0.1");
        // One line, a comma list: the client wrote the first entries.
        assert_eq!(source.resolve(&request(&["1.1.1.1, 2.2.2.2"], peer)), ip("2.2.2.2"));
        // The header twice: the client's own line comes first, the proxy's last.
        assert_eq!(source.resolve(&request(&["6.6.6.6", "2.2.2.2"], peer)), ip("2.2.2.2"));
        assert_eq!(source.resolve(&request(&["6.6.6.6, 7.7.7.7", "3.3.3.3"], peer)), ip("3.3.3.3"));
        // With a port, and IPv6.
        assert_eq!(source.resolve(&request(&["2.2.2.2:443"], peer)), ip("2.2.2.2"));
        assert_eq!(source.resolve(&request(&["[2001:db8::1]:443"], peer)), ip("2001:db8::1"));
        assert_eq!(source.resolve(&request(&["2001:db8::2"], peer)), ip("2001:db8::2"));
        // Garbage at the trusted position, or no header: the peer.
        assert_eq!(source.resolve(&request(&["1.1.1.1, junk"], peer)), ip("10.0.0.1"));
        assert_eq!(source.resolve(&request(&[], peer)), ip("10.0.0.1"));
    }

    #[test]
    fn trusted_hops_count_from_the_end() {
        let source = ClientAddressSource::header(HeaderName::from_static("x-forwarded-for"))
            .with_trusted_hops(2);
        let peer = Some("10.0.0.1");
        assert_eq!(source.resolve(&request(&["6.6.6.6, 1.1.1.1, 2.2.2.2"], peer)), ip("1.1.1.1"));
        assert_eq!(source.resolve(&request(&["6.6.6.6, 1.1.1.1", "2.2.2.2"], peer)), ip("1.1.1.1"));
        // Fewer entries than trusted proxies: the request skipped one; the peer counts.
        assert_eq!(source.resolve(&request(&["2.2.2.2"], peer)), ip("10.0.0.1"));
        assert_eq!(ClientAddressSource::default().with_trusted_hops(0).trusted_hops, 1);
    }
}
