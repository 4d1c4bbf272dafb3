//! Transport: every connection an agent opens, directly or through an HTTP CONNECT proxy, and
//! the two things it does over one: an HTTP/1.1 POST and a websocket dial.
//!
//! A proxied connection is a TcpStream to the proxy on which `CONNECT host:port` got a 200; from
//! then on it is a plain byte tunnel, so HTTP and the websocket run over it unchanged. That is how
//! agents behind corporate proxies reach AWS (the real agent honours `https_proxy`/`no_proxy`).
//! Only plain `http://`/`ws://` endpoints are spoken for now; TLS comes later.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST, USER_AGENT};
use http::{HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// How long one HTTP exchange may take: the real agent's MGS client timeout (§9.1).
pub(crate) const HTTP_TIMEOUT: Duration = Duration::from_secs(15);

/// Where the emulator listens: `http://host:port` (no path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    host: String,
    port: u16,
}

/// An endpoint or proxy URL that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UrlError(String);

impl Endpoint {
    /// Parses `http://host[:port]` (port 80 if absent). `https://` is refused until TLS
    /// support arrives; a path other than `/` is refused because the agent would ignore it.
    pub fn parse(url: &str) -> Result<Endpoint, UrlError> {
        let (host, port) = parse_http_url(url, "endpoint")?;
        Ok(Endpoint { host, port })
    }

    /// The host name or IP literal (without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host:port`, as in the Host header (IPv6 literals bracketed).
    pub fn authority(&self) -> String {
        authority(&self.host, self.port)
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}", self.authority())
    }
}

/// An HTTP proxy that tunnels with CONNECT, and the hosts that bypass it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    host: String,
    port: u16,
    /// `Proxy-Authorization` value for `http://user:password@proxy` URLs.
    authorization: Option<String>,
    /// `no_proxy` entries, lower-cased: `*`, a host, `.domain` or `domain` (suffix match),
    /// optionally with `:port`.
    no_proxy: Vec<String>,
}

impl Proxy {
    /// Parses `http://[user:password@]host[:port]` (port 80 if absent) and a `no_proxy` list
    /// (comma-separated).
    pub fn parse(url: &str, no_proxy: &str) -> Result<Proxy, UrlError> {
        let (userinfo, rest) = match url.split_once("://") {
            Some((scheme, rest)) => match rest.rsplit_once('@') {
                Some((userinfo, host)) => (Some(userinfo), format!("{scheme}://{host}")),
                None => (None, url.to_owned()),
            },
            None => (None, url.to_owned()),
        };
        let (host, port) = parse_http_url(&rest, "proxy")?;
        let authorization = userinfo
            .map(|userinfo| format!("Basic {}", base64(percent_decode(userinfo).as_bytes())));
        let no_proxy = no_proxy
            .split(',')
            .map(|entry| entry.trim().to_ascii_lowercase())
            .filter(|entry| !entry.is_empty())
            .collect();
        Ok(Proxy {
            host,
            port,
            authorization,
            no_proxy,
        })
    }

    /// The proxy from `https_proxy` / `HTTPS_PROXY` and `no_proxy` / `NO_PROXY`, as the real
    /// agent (Go's `http.ProxyFromEnvironment` for its https endpoints) reads them; `None` when
    /// unset or empty.
    pub fn from_env() -> Result<Option<Proxy>, UrlError> {
        let var = |names: [&str; 2]| {
            names
                .iter()
                .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        };
        match var(["https_proxy", "HTTPS_PROXY"]) {
            Some(url) => {
                let no_proxy = var(["no_proxy", "NO_PROXY"]).unwrap_or_default();
                Proxy::parse(&url, &no_proxy).map(Some)
            }
            None => Ok(None),
        }
    }

    /// `host:port` of the proxy.
    pub fn authority(&self) -> String {
        authority(&self.host, self.port)
    }

    /// Whether connections to `host:port` go around the proxy.
    pub fn bypasses(&self, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        self.no_proxy.iter().any(|entry| {
            if entry == "*" {
                return true;
            }
            let (name, entry_port) = match entry.rsplit_once(':') {
                Some((name, p)) if !name.contains(':') => (name, p.parse::<u16>().ok()),
                _ => (entry.as_str(), None),
            };
            if entry_port.is_some_and(|p| p != port) {
                return false;
            }
            let name = name.trim_start_matches('.');
            host == name || host.ends_with(&format!(".{name}"))
        })
    }
}

/// Opens TCP connections to the endpoint, through the proxy when one applies.
#[derive(Debug, Clone)]
pub(crate) struct Connector {
    pub(crate) endpoint: Endpoint,
    pub(crate) proxy: Option<Proxy>,
}

/// Why a connection or an exchange failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NetError {
    #[error("cannot connect to {target}: {source}")]
    Connect {
        target: String,
        source: std::io::Error,
    },
    #[error("proxy {proxy} refused CONNECT {target}: {status_line}")]
    ProxyRefused {
        proxy: String,
        target: String,
        status_line: String,
    },
    #[error("proxy {proxy}: {source}")]
    ProxyIo {
        proxy: String,
        source: std::io::Error,
    },
    #[error("HTTP exchange with {target} failed: {source}")]
    Http {
        target: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("no answer from {target} within {HTTP_TIMEOUT:?}")]
    Timeout { target: String },
    #[error("websocket upgrade at {url} failed: {source}")]
    WebSocket {
        url: String,
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
}

impl Connector {
    /// A TCP stream to the endpoint: direct, or a CONNECT tunnel through the proxy.
    pub(crate) async fn connect(&self) -> Result<TcpStream, NetError> {
        let target = self.endpoint.authority();
        let stream = match &self.proxy {
            Some(proxy) if !proxy.bypasses(&self.endpoint.host, self.endpoint.port) => {
                connect_via_proxy(proxy, &target).await
            }
            _ => TcpStream::connect((self.endpoint.host.as_str(), self.endpoint.port))
                .await
                .map_err(|source| NetError::Connect { target, source }),
        }?;
        // The real agent is Go, whose net package sets TCP_NODELAY on every connection: small
        // frames (acks, keystroke echoes) must not wait ≈40 ms for the peer's delayed ACK.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        Ok(stream)
    }

    /// `POST path` with `headers` and `body` on a fresh connection; the status and the whole
    /// response body.
    pub(crate) async fn post(
        &self,
        path: &str,
        headers: &[(&'static str, String)],
        body: Vec<u8>,
    ) -> Result<(StatusCode, Bytes), NetError> {
        let target = self.endpoint.authority();
        let exchange = async {
            let http_error = |source: Box<dyn std::error::Error + Send + Sync>| NetError::Http {
                target: target.clone(),
                source,
            };
            let stream = self.connect().await?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| http_error(e.into()))?;
            let connection = tokio::spawn(connection);
            let mut request = Request::post(path)
                .header(HOST, target.as_str())
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| http_error(e.into()))?;
            for (name, value) in headers {
                let value = HeaderValue::from_str(value).map_err(|e| http_error(e.into()))?;
                request.headers_mut().append(*name, value);
            }
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| http_error(e.into()))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| http_error(e.into()))?
                .to_bytes();
            connection.abort();
            Ok((status, body))
        };
        tokio::time::timeout(HTTP_TIMEOUT, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(NetError::Timeout {
                    target: target.clone(),
                })
            })
    }

    /// Dials `ws://<endpoint><path_and_query>` with `headers` added to the upgrade request.
    pub(crate) async fn websocket(
        &self,
        path_and_query: &str,
        headers: &[(&'static str, String)],
    ) -> Result<WebSocketStream<TcpStream>, NetError> {
        let url = format!("ws://{}{path_and_query}", self.endpoint.authority());
        let ws_error = |source| NetError::WebSocket {
            url: url.clone(),
            source: Box::new(source),
        };
        let mut request = url.as_str().into_client_request().map_err(ws_error)?;
        for (name, value) in headers {
            let value = HeaderValue::from_str(value).map_err(|e| ws_error(e.into()))?;
            request.headers_mut().append(*name, value);
        }
        let stream = self.connect().await?;
        let dial = tokio_tungstenite::client_async(request, stream);
        match tokio::time::timeout(HTTP_TIMEOUT, dial).await {
            Ok(Ok((socket, _response))) => Ok(socket),
            Ok(Err(source)) => Err(ws_error(source)),
            Err(_) => Err(NetError::Timeout { target: url }),
        }
    }
}

/// The headers of every MGS request (REST and upgrade): Go's default User-Agent.
pub(crate) fn go_user_agent() -> (&'static str, String) {
    (USER_AGENT.as_str(), "Go-http-client/1.1".to_owned())
}

/// A `Content-Type` header.
pub(crate) fn content_type(value: &str) -> (&'static str, String) {
    (CONTENT_TYPE.as_str(), value.to_owned())
}

async fn connect_via_proxy(proxy: &Proxy, target: &str) -> Result<TcpStream, NetError> {
    let proxy_name = proxy.authority();
    let io_error = |source| NetError::ProxyIo {
        proxy: proxy_name.clone(),
        source,
    };
    let mut stream = TcpStream::connect((proxy.host.as_str(), proxy.port))
        .await
        .map_err(|source| NetError::Connect {
            target: format!("proxy {proxy_name}"),
            source,
        })?;
    let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(authorization) = &proxy.authorization {
        request.push_str(&format!("Proxy-Authorization: {authorization}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(io_error)?;
    // Read the response head byte by byte: nothing after its blank line belongs to the proxy,
    // and the tunnel's first bytes must stay in the socket for HTTP or the websocket.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return Err(io_error(std::io::Error::other(
                "CONNECT response head too long",
            )));
        }
        let byte = stream.read_u8().await.map_err(io_error)?;
        head.push(byte);
    }
    let head = String::from_utf8_lossy(&head);
    let status_line = head.lines().next().unwrap_or_default().to_owned();
    let status = status_line.split_whitespace().nth(1).unwrap_or_default();
    if status.len() == 3 && status.starts_with('2') {
        Ok(stream)
    } else {
        Err(NetError::ProxyRefused {
            proxy: proxy_name,
            target: target.to_owned(),
            status_line,
        })
    }
}

fn parse_http_url(url: &str, what: &str) -> Result<(String, u16), UrlError> {
    let uri: Uri = url
        .parse()
        .map_err(|e| UrlError(format!("{what} {url:?} is not a URL: {e}")))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(UrlError(format!(
                "{what} {url:?}: https is not supported yet; use http://host:port"
            )));
        }
        _ => {
            return Err(UrlError(format!(
                "{what} {url:?} must look like http://host:port"
            )));
        }
    }
    let host = uri
        .host()
        .ok_or_else(|| UrlError(format!("{what} {url:?} has no host")))?;
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err(UrlError(format!(
            "{what} {url:?} has a path; give only http://host:port"
        )));
    }
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    Ok((host, uri.port_u16().unwrap_or(80)))
}

fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Standard base64 with padding, for `Proxy-Authorization: Basic`.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> shift & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_http_host_port() {
        let endpoint = Endpoint::parse("http://127.0.0.1:4583").unwrap();
        assert_eq!(endpoint.authority(), "127.0.0.1:4583");
        assert_eq!(endpoint.to_string(), "http://127.0.0.1:4583");
        assert_eq!(Endpoint::parse("http://localhost").unwrap().port(), 80);
        assert_eq!(
            Endpoint::parse("http://[::1]:9").unwrap().authority(),
            "[::1]:9"
        );
        for bad in ["127.0.0.1:4583", "https://x:1", "http://x:1/v1", "ftp://x"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn proxies_parse_credentials_and_no_proxy() {
        let proxy = Proxy::parse(
            "http://user:p%40ss@proxy.corp:3128",
            "localhost, .internal,10.0.0.1:80",
        )
        .unwrap();
        assert_eq!(proxy.authority(), "proxy.corp:3128");
        assert_eq!(
            proxy.authorization.as_deref(),
            Some(format!("Basic {}", base64(b"user:p@ss")).as_str())
        );
        assert!(proxy.bypasses("localhost", 4583));
        assert!(proxy.bypasses("ssm.internal", 4583));
        assert!(proxy.bypasses("internal", 4583));
        assert!(proxy.bypasses("10.0.0.1", 80));
        assert!(!proxy.bypasses("10.0.0.1", 4583));
        assert!(!proxy.bypasses("127.0.0.1", 4583));
        assert!(Proxy::parse("http://p:1", "*").unwrap().bypasses("x", 1));
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(
            base64(b"Aladdin:open sesame"),
            "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }
}
