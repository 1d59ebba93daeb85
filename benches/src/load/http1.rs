//! One HTTP/1.1 request at a time over a fresh connection, with the standard
//! library only: how the harness provisions and checks a server before the load.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A response: status code and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body, as text.
    pub body: String,
}

/// How long one request may take, connecting included.
const TIMEOUT: Duration = Duration::from_secs(10);

/// `POST path` to `addr` with a form `body` and the given `Authorization` value,
/// on a connection closed after the response.
pub fn post_form(
    addr: SocketAddr,
    path: &str,
    authorization: &str,
    body: &str,
) -> Result<Response, String> {
    post(addr, path, FORM, authorization, body)
}

/// The content type of a form body.
pub const FORM: &str = "application/x-www-form-urlencoded";

/// The content type of a JSON body.
pub const JSON: &str = "application/json";

/// `POST path` to `addr` with a `body` of `content_type` and the given
/// `Authorization` value, on a connection closed after the response.
pub fn post(
    addr: SocketAddr,
    path: &str,
    content_type: &str,
    authorization: &str,
    body: &str,
) -> Result<Response, String> {
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\n\
         Authorization: {authorization}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    exchange(addr, request.as_bytes())
}

/// Sends `request` and reads the response until the server closes the connection.
fn exchange(addr: SocketAddr, request: &[u8]) -> Result<Response, String> {
    let failed = |e: std::io::Error| format!("request to {addr}: {e}");
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(failed)?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(failed)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(failed)?;
    stream.write_all(request).map_err(failed)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(failed)?;
    parse(&raw).ok_or_else(|| {
        format!("request to {addr}: malformed response {:?}", String::from_utf8_lossy(&raw))
    })
}

/// Parses a complete response that is not chunked.
fn parse(raw: &[u8]) -> Option<Response> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let status_line = head.lines().next()?;
    let mut words = status_line.split(' ');
    if !words.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status = words.next()?.parse().ok()?;
    let chunked = head.lines().any(|l| {
        l.split_once(':').is_some_and(|(name, value)| {
            name.eq_ignore_ascii_case("transfer-encoding") && value.contains("chunked")
        })
    });
    if chunked {
        return None;
    }
    let body = String::from_utf8_lossy(&raw[end + 4..]).into_owned();
    Some(Response { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_parse() {
        let raw =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse(raw), Some(Response { status: 200, body: "{}".into() }));
        assert_eq!(parse(b"garbage"), None);
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"),
            None
        );
    }
}
