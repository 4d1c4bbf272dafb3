//! The built-in HTTP CONNECT proxy for agents (`--agent-proxy-listen`): agents configured
//! with it (the embedded fleet, `ssm-agent-sim --proxy`, `HTTPS_PROXY` for the real agent)
//! reach the emulator only through it, so a proxy outage is real TCP behaviour:
//!
//! - up: it listens, answers `CONNECT host:port` with `200 Connection established` and copies
//!   bytes both ways (`copy_bidirectional`). Only the emulator's own listeners may be reached
//!   (403 otherwise), so it is no open proxy;
//! - down (`POST /_emulator/proxy {"state":"down"}`): the listener is closed (new connections
//!   are refused by the kernel) and every tunnel is reset;
//! - up again: it listens on the same address.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// The longest CONNECT request head read: a request line and a few headers
/// (`Host`, `Proxy-Authorization`, `User-Agent`).
pub const MAX_CONNECT_HEAD: usize = 8 * 1024;

/// Why the proxy could not start listening.
#[derive(Debug, thiserror::Error)]
#[error("agent proxy cannot listen on {addr}: {source}")]
pub struct ProxyError {
    /// The address.
    pub addr: SocketAddr,
    /// The cause.
    #[source]
    pub source: io::Error,
}

/// Whether the proxy serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ProxyState {
    /// Listening and tunnelling.
    Up,
    /// Not listening; no tunnels.
    Down,
}

/// The proxy: its address, what it may reach, and the token of the current up period.
#[derive(Debug)]
pub struct AgentProxy {
    addr: SocketAddr,
    allowed: Vec<SocketAddr>,
    /// Cancelled by `down`: stops the accept loop and every tunnel of that period.
    up: Mutex<Option<CancellationToken>>,
}

impl AgentProxy {
    /// Starts the proxy on `addr` (port 0: any free port) tunnelling only to `allowed`.
    pub async fn start(
        addr: SocketAddr,
        allowed: Vec<SocketAddr>,
    ) -> Result<Arc<AgentProxy>, ProxyError> {
        let listener = bind(addr).await?;
        let addr = listener
            .local_addr()
            .map_err(|source| ProxyError { addr, source })?;
        let proxy = Arc::new(AgentProxy {
            addr,
            allowed: allowed.into_iter().map(dialable).collect(),
            up: Mutex::new(None),
        });
        proxy.serve(listener);
        tracing::info!(%addr, "agent proxy up");
        Ok(proxy)
    }

    /// Where it listens (when up).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Up or down.
    pub fn state(&self) -> ProxyState {
        match &*self.lock() {
            Some(_) => ProxyState::Up,
            None => ProxyState::Down,
        }
    }

    /// Closes the listener and resets every tunnel. Idempotent.
    pub fn down(&self) {
        if let Some(token) = self.lock().take() {
            token.cancel();
            tracing::info!(addr = %self.addr, "agent proxy down");
        }
    }

    /// Listens again on the same address. Idempotent.
    pub async fn up(&self) -> Result<(), ProxyError> {
        if self.state() == ProxyState::Up {
            return Ok(());
        }
        let listener = bind(self.addr).await?;
        self.serve(listener);
        tracing::info!(addr = %self.addr, "agent proxy up");
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<CancellationToken>> {
        self.up.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs the accept loop on `listener` until the next `down`.
    fn serve(&self, listener: TcpListener) {
        let token = CancellationToken::new();
        if let Some(old) = self.lock().replace(token.clone()) {
            old.cancel();
        }
        let allowed = self.allowed.clone();
        tokio::spawn(async move {
            loop {
                let (client, peer) = tokio::select! {
                    () = token.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            tracing::warn!(error = %e, "agent proxy: accept failed");
                            continue;
                        }
                    },
                };
                super::link::set_nodelay(&client);
                let (token, allowed) = (token.clone(), allowed.clone());
                tokio::spawn(async move {
                    if let Err(e) = tunnel(client, &allowed, &token).await {
                        tracing::debug!(%peer, error = %e, "agent proxy: tunnel ended");
                    }
                });
            }
        });
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ProxyError> {
    // tokio sets SO_REUSEADDR on Unix, so `up` can bind again right after `down`.
    TcpListener::bind(addr)
        .await
        .map_err(|source| ProxyError { addr, source })
}

/// The address to dial for a listener address: an unspecified IP becomes loopback.
fn dialable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// One client: the CONNECT request, the answer, then bytes both ways until either side ends,
/// or until `down` is cancelled, which resets both sockets.
async fn tunnel(
    mut client: TcpStream,
    allowed: &[SocketAddr],
    down: &CancellationToken,
) -> io::Result<()> {
    let head = tokio::select! {
        () = down.cancelled() => None,
        head = read_head(&mut client) => Some(head?),
    };
    let Some((head, rest)) = head else {
        super::link::reset_on_close(&client);
        return Ok(());
    };
    let target = match connect_target(&head) {
        Ok(target) => target,
        Err(status) => return answer(&mut client, status).await,
    };
    if !allowed.contains(&target) {
        tracing::warn!(%target, "agent proxy: refused a target that is not the emulator");
        return answer(&mut client, "403 Forbidden").await;
    }
    let mut upstream = match TcpStream::connect(target).await {
        Ok(upstream) => {
            super::link::set_nodelay(&upstream);
            upstream
        }
        Err(e) => {
            tracing::debug!(%target, error = %e, "agent proxy: upstream unreachable");
            return answer(&mut client, "502 Bad Gateway").await;
        }
    };
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await?;
    upstream.write_all(&rest).await?;
    tokio::select! {
        () = down.cancelled() => {
            tracing::debug!(%target, "agent proxy: tunnel reset (proxy down)");
            super::link::reset_on_close(&client);
            super::link::reset_on_close(&upstream);
            Ok(())
        }
        copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => copied.map(drop),
    }
}

/// Reads up to the end of the request head; returns the head and the bytes after it.
async fn read_head(client: &mut TcpStream) -> io::Result<(String, Vec<u8>)> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((String::from_utf8_lossy(&buf).into_owned(), rest));
        }
        if buf.len() > MAX_CONNECT_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "CONNECT head too long",
            ));
        }
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The `host:port` of a `CONNECT host:port HTTP/1.1` head, resolved without DNS (`localhost`
/// is loopback); or the status to refuse with.
fn connect_target(head: &str) -> Result<SocketAddr, &'static str> {
    let line = head.lines().next().unwrap_or_default();
    let mut words = line.split_whitespace();
    let (Some(method), Some(authority)) = (words.next(), words.next()) else {
        return Err("400 Bad Request");
    };
    if !method.eq_ignore_ascii_case("CONNECT") {
        return Err("405 Method Not Allowed");
    }
    let (host, port) = authority.rsplit_once(':').ok_or("400 Bad Request")?;
    let port: u16 = port.parse().map_err(|_| "400 Bad Request")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = if host.eq_ignore_ascii_case("localhost") {
        Ipv4Addr::LOCALHOST.into()
    } else {
        host.parse().map_err(|_| "403 Forbidden")?
    };
    Ok(SocketAddr::new(ip, port))
}

/// Answers the CONNECT with `status` and no body.
async fn answer(client: &mut TcpStream, status: &str) -> io::Result<()> {
    let response = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    client.write_all(response.as_bytes()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_heads_name_their_target() {
        assert_eq!(
            connect_target("CONNECT 127.0.0.1:4583 HTTP/1.1\r\nHost: 127.0.0.1:4583\r\n"),
            Ok("127.0.0.1:4583".parse().unwrap())
        );
        assert_eq!(
            connect_target("CONNECT localhost:80 HTTP/1.1"),
            Ok("127.0.0.1:80".parse().unwrap())
        );
        assert_eq!(
            connect_target("CONNECT [::1]:443 HTTP/1.1"),
            Ok("[::1]:443".parse().unwrap())
        );
        assert_eq!(
            connect_target("GET / HTTP/1.1"),
            Err("405 Method Not Allowed")
        );
        assert_eq!(
            connect_target("CONNECT example.com:443 HTTP/1.1"),
            Err("403 Forbidden")
        );
        assert_eq!(connect_target(""), Err("400 Bad Request"));
    }
}
