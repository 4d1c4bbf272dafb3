//! Port forwarding pieces of `ssm-session` (spec §7): the handshake Properties, the plugin's
//! version comparison, the local listener and its connections, and the smux v1 client state.
//!
//! The local side runs on tasks that report to the session loop through one channel of
//! [`Local`] events; the loop writes to a connection through the sender it got with
//! [`Local::Accepted`] and closes it by dropping that sender.

use std::collections::HashMap;
use std::pin::Pin;

use serde::Deserialize;
use ssm_protocol::limits::{SMUX_MAX_FRAME_SIZE, STREAM_DATA_PAYLOAD_SIZE};
use ssm_protocol::smux::{Command, Decoder, Frame, SmuxError, psh_frames};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::mpsc;

/// The handshake `Properties` the plugin reads (§7.1); everything is a string.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Properties {
    /// Destination port on the instance side.
    #[serde(rename = "portNumber")]
    pub port_number: String,
    /// Local listen port; empty means "0", an OS-chosen port.
    #[serde(rename = "localPortNumber")]
    pub local_port_number: String,
    /// `LocalPortForwarding` selects basic/mux mode; anything else stdin/stdout mode.
    #[serde(rename = "type")]
    pub kind: String,
    /// `unix` listens on [`Properties::local_unix_socket`] instead of TCP.
    #[serde(rename = "localConnectionType")]
    pub local_connection_type: String,
    /// The Unix socket path.
    #[serde(rename = "localUnixSocket")]
    pub local_unix_socket: String,
}

impl Properties {
    /// Reads the Properties value of the SessionType action; anything that is not an object of
    /// strings gives the defaults.
    pub fn from_value(value: &serde_json::Value) -> Properties {
        serde_json::from_value(value.clone()).unwrap_or_default()
    }

    /// True for `type: LocalPortForwarding` (basic or mux mode).
    pub fn is_local_port_forwarding(&self) -> bool {
        self.kind == "LocalPortForwarding"
    }
}

/// The plugin's `versionutil` comparison (§7.2): dot-split, the same number of numeric
/// components on both sides. `None` when the versions cannot be compared, which the plugin
/// treats as "not greater".
pub fn version_greater(version: &str, than: &str) -> Option<bool> {
    let parse = |v: &str| {
        v.split('.')
            .map(|part| part.parse::<u64>().ok())
            .collect::<Option<Vec<u64>>>()
    };
    let (a, b) = (parse(version)?, parse(than)?);
    if a.len() != b.len() {
        return None;
    }
    Some(a > b)
}

/// Something that happened on the local side.
#[derive(Debug)]
pub enum Local {
    /// A local client connected; bytes sent to `tx` are written to it, dropping `tx` closes it.
    Accepted {
        /// Connection number, from 1.
        id: u64,
        /// The connection's writer.
        tx: mpsc::UnboundedSender<Vec<u8>>,
    },
    /// Bytes read from connection `id`.
    Data {
        /// Connection number.
        id: u64,
        /// At most the read size of the mode.
        bytes: Vec<u8>,
    },
    /// Connection `id` reached EOF or failed.
    Closed {
        /// Connection number.
        id: u64,
    },
}

/// The local listener: TCP on localhost, or a Unix socket.
#[derive(Debug)]
pub enum Listener {
    /// `localhost:<localPortNumber>`.
    Tcp(TcpListener),
    /// `localConnectionType: unix`.
    Unix(UnixListener),
}

impl Listener {
    /// Binds as the plugin does: an empty port is "0" (an OS-chosen port).
    pub fn bind(properties: &Properties) -> std::io::Result<Listener> {
        if properties.local_connection_type == "unix" {
            let listener = std::os::unix::net::UnixListener::bind(&properties.local_unix_socket)?;
            listener.set_nonblocking(true)?;
            return Ok(Listener::Unix(UnixListener::from_std(listener)?));
        }
        let port = if properties.local_port_number.is_empty() {
            "0"
        } else {
            properties.local_port_number.as_str()
        };
        let port: u16 = port.parse().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("invalid localPortNumber {port:?}"),
            )
        })?;
        // Go's net.Listen on "localhost:<port>" takes the IPv4 loopback address.
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        listener.set_nonblocking(true)?;
        Ok(Listener::Tcp(TcpListener::from_std(listener)?))
    }

    /// The line the plugin prints once listening (without any newline).
    pub fn opened_line(&self, properties: &Properties, session_id: &str) -> String {
        match self {
            Listener::Tcp(listener) => {
                let port = listener.local_addr().map_or(0, |addr| addr.port());
                format!("Port {port} opened for sessionId {session_id}.")
            }
            Listener::Unix(_) => format!(
                "Unix socket {} opened for sessionId {session_id}.",
                properties.local_unix_socket
            ),
        }
    }

    /// Accepts local connections until the session ends. In basic mode (`one_at_a_time`) a
    /// connection is served to its end before the next accept, as the plugin does.
    pub async fn serve(
        self,
        one_at_a_time: bool,
        read_size: usize,
        events: mpsc::UnboundedSender<Local>,
    ) {
        let mut id = 0;
        loop {
            id += 1;
            let (tx, rx) = mpsc::unbounded_channel();
            let connection: Pin<Box<dyn Future<Output = ()> + Send>> = match &self {
                Listener::Tcp(listener) => match listener.accept().await {
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        Box::pin(run_connection(id, stream, rx, events.clone(), read_size))
                    }
                    Err(_) => continue,
                },
                Listener::Unix(listener) => match listener.accept().await {
                    Ok((stream, _)) => {
                        Box::pin(run_connection(id, stream, rx, events.clone(), read_size))
                    }
                    Err(_) => continue,
                },
            };
            if events.send(Local::Accepted { id, tx }).is_err() {
                return;
            }
            if one_at_a_time {
                connection.await;
            } else {
                tokio::spawn(connection);
            }
        }
    }
}

/// One local connection: reads go to `events`, `rx` is written; when `rx` ends the connection
/// is dropped (closed).
async fn run_connection<S>(
    id: u64,
    stream: S,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    events: mpsc::UnboundedSender<Local>,
    read_size: usize,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut buf = vec![0u8; read_size];
    loop {
        tokio::select! {
            read = reader.read(&mut buf) => match read {
                Ok(0) | Err(_) => {
                    let _ = events.send(Local::Closed { id });
                    return;
                }
                Ok(n) => {
                    if events.send(Local::Data { id, bytes: buf[..n].to_vec() }).is_err() {
                        return;
                    }
                }
            },
            write = rx.recv() => match write {
                Some(bytes) => {
                    if writer.write_all(&bytes).await.is_err() {
                        let _ = events.send(Local::Closed { id });
                        return;
                    }
                }
                None => return,
            },
        }
    }
}

/// How much a local read takes in basic and stdin/stdout mode (§7.3).
pub const BASIC_READ_SIZE: usize = STREAM_DATA_PAYLOAD_SIZE;

/// How much a local read takes in mux mode: one smux frame's worth.
pub const MUX_READ_SIZE: usize = SMUX_MAX_FRAME_SIZE;

/// The smux v1 client (§7.4): stream ids 3, 5, 7, …; local connections are streams.
#[derive(Debug)]
pub struct MuxClient {
    decoder: Decoder,
    next_stream_id: u32,
    /// smux stream id → local writer.
    streams: HashMap<u32, mpsc::UnboundedSender<Vec<u8>>>,
    /// local connection id → smux stream id.
    by_connection: HashMap<u64, u32>,
    broken: bool,
}

impl Default for MuxClient {
    fn default() -> MuxClient {
        MuxClient {
            decoder: Decoder::new(),
            next_stream_id: 3,
            streams: HashMap::new(),
            by_connection: HashMap::new(),
            broken: false,
        }
    }
}

impl MuxClient {
    /// A local connection was accepted: a new stream; returns the SYN bytes.
    pub fn open(&mut self, connection: u64, tx: mpsc::UnboundedSender<Vec<u8>>) -> Vec<u8> {
        let sid = self.next_stream_id;
        self.next_stream_id += 2;
        self.streams.insert(sid, tx);
        self.by_connection.insert(connection, sid);
        Frame::syn(sid).encode()
    }

    /// Local bytes: PSH frames of at most 32 768 bytes; empty if the stream is gone.
    pub fn data(&mut self, connection: u64, bytes: &[u8]) -> Vec<u8> {
        let Some(&sid) = self.by_connection.get(&connection) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for frame in psh_frames(sid, bytes) {
            frame.encode_into(&mut out);
        }
        out
    }

    /// The local connection closed: FIN for its stream (unless the agent closed it first).
    pub fn local_closed(&mut self, connection: u64) -> Vec<u8> {
        match self.by_connection.remove(&connection) {
            Some(sid) if self.streams.remove(&sid).is_some() => Frame::fin(sid).encode(),
            _ => Vec::new(),
        }
    }

    /// Bytes of the smux stream from the agent; returns bytes to send back (our FINs).
    pub fn receive(&mut self, bytes: &[u8]) -> Result<Vec<u8>, SmuxError> {
        if self.broken {
            return Ok(Vec::new());
        }
        self.decoder.push(bytes);
        let mut reply = Vec::new();
        loop {
            let frame = match self.decoder.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(reply),
                Err(e) => {
                    self.broken = true;
                    return Err(e);
                }
            };
            match frame.cmd() {
                Command::Psh => {
                    if let Some(tx) = self.streams.get(&frame.stream_id()) {
                        let _ = tx.send(frame.into_data());
                    }
                }
                Command::Fin => {
                    // Dropping the writer closes the local connection; then our own FIN.
                    if self.streams.remove(&frame.stream_id()).is_some() {
                        self.by_connection
                            .retain(|_, sid| *sid != frame.stream_id());
                        Frame::fin(frame.stream_id()).encode_into(&mut reply);
                    }
                }
                // A client is not opened to; keepalives need no answer.
                Command::Syn | Command::Nop => {}
            }
        }
    }

    /// The keepalive frame.
    pub fn nop() -> Vec<u8> {
        Frame::nop().encode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_like_the_plugin() {
        assert_eq!(version_greater("3.3.1142.0", "3.0.196.0"), Some(true));
        assert_eq!(version_greater("3.0.196.0", "3.0.196.0"), Some(false));
        assert_eq!(version_greater("3.3.1142", "3.0.196.0"), None);
        assert_eq!(version_greater("3.1.1511.0", "3.1.1511.0"), Some(false));
        assert_eq!(version_greater("3.10.0.0", "3.9.99.0"), Some(true));
    }

    #[test]
    fn mux_client_streams() {
        let mut mux = MuxClient::default();
        let (tx1, mut rx1) = mpsc::unbounded_channel();
        let (tx2, _rx2) = mpsc::unbounded_channel();
        assert_eq!(mux.open(1, tx1), [1, 0, 0, 0, 3, 0, 0, 0]);
        assert_eq!(mux.open(2, tx2), [1, 0, 0, 0, 5, 0, 0, 0]);
        let psh = mux.data(1, b"ping-from-tcp-client");
        assert_eq!(&psh[..8], [1, 2, 20, 0, 3, 0, 0, 0]);
        let mut from_agent = Frame::psh(3, b"pong".to_vec()).unwrap().encode();
        from_agent.extend(Frame::fin(5).encode());
        assert_eq!(mux.receive(&from_agent[..5]).unwrap(), b"");
        assert_eq!(
            mux.receive(&from_agent[5..]).unwrap(),
            [1, 1, 0, 0, 5, 0, 0, 0]
        );
        assert_eq!(rx1.try_recv().unwrap(), b"pong");
        assert_eq!(mux.local_closed(2), b"");
        assert_eq!(mux.local_closed(1), [1, 1, 0, 0, 3, 0, 0, 0]);
    }
}
