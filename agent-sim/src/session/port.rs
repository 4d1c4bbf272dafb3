//! `Port` sessions (§7): AWS-StartPortForwardingSession,
//! AWS-StartPortForwardingSessionToRemoteHost and AWS-StartSSHSession, over real TCP.
//!
//! 1. Handshake (§4): HandshakeRequest (seq 0) with the resolved document `properties`; the
//!    HandshakeResponse is awaited for at most [`HANDSHAKE_TIMEOUT`]; any action with
//!    ActionStatus ≠ 1 fails the session. The ack of the HandshakeResponse is queued while the
//!    frame is handled, so it always goes out *before* HandshakeComplete (§7.4 RECOMMENDATION).
//!    Client Output that arrives before the handshake is done is "not ready" (§3.2): not acked,
//!    so the client resends it.
//! 2. The properties are read as the real agent's `PortParameters` (`portNumber`, `type`,
//!    `host`, all strings): a non-string value fails the session after the handshake with the
//!    real agent's "Unable to remarshal session properties" Output (`agent-port.jsonl`). A `host`
//!    that resolves to an address of the deny list ([`DENIED_REMOTE_IPS`], or the comma-separated
//!    list in [`DENIED_IPS_ENV`]) fails it with "Forwarding to IP address X is forbidden.".
//! 3. Mode (§7.2): mux iff `type` is `LocalPortForwarding`, ClientVersion ≥ 1.1.70 and the
//!    simulated AgentVersion is one the plugin speaks smux to ([`agent_has_smux`]); else basic.
//!    * Basic: the first Output dials `host:portNumber` (host default `localhost`); bytes are
//!      relayed in ≤1024-byte reads. Flag DisconnectToPort closes the connection; the next Output
//!      dials again. TCP EOF: `LocalPortForwarding` waits for the next Output; otherwise (SSH,
//!      stdin/stdout mode) the session ends Success without Terminating.
//!    * Mux: agent-sim is the smux v1 server over the Output byte stream (one smux session per
//!      data channel). SYN dials the destination (failure: Flag ConnectToPortError, then FIN);
//!      PSH ↔ TCP; FIN or TCP EOF closes the TCP connection and the stream (one FIN each way).
//!      smux NOPs are tolerated; NOPs are sent every [`SMUX_KEEPALIVE`] only when ClientVersion is
//!      not > 1.2.331.0 (§7.4).
//! 4. Flag TerminateSession, `channel_closed`: every connection is closed, the stream drains
//!    (≤ [`AGENT_CLOSE_DRAIN`](ssm_protocol::limits::AGENT_CLOSE_DRAIN)), the socket drops
//!    without Terminating, `agent_task_complete` Success.
//!
//! Flow: each TCP connection has a task that owns the socket. Writes to it go through a queue of
//! [`CONN_WRITE_QUEUE`] chunks; when that queue is full the session waits at most
//! [`STREAM_STALL_LIMIT`] for room and then gives up on that connection only (closing it, FIN in
//! mux mode). Reads from all connections share one queue of [`CONN_EVENT_QUEUE`] events, which
//! the session drains only while it may send (not paused, §5), so a full queue holds the readers
//! back instead of growing memory.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value;
use ssm_protocol::limits::{HANDSHAKE_TIMEOUT, SMUX_MAX_FRAME_SIZE, STREAM_DATA_PAYLOAD_SIZE};
use ssm_protocol::payload::{
    AgentTaskPayload, Flag, HandshakeComplete, HandshakeRequest, RequestedClientAction,
    SessionTypeRequest, to_json_bytes,
};
use ssm_protocol::reliable::{Config, Event, ReliableStream};
use ssm_protocol::smux::{Command, Decoder, Frame, psh_frames};
use ssm_protocol::{Message, MessageType, PayloadType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::sync::CancellationToken;

use super::{Outcome, Sessions, Socket, drain_deadline, sleep_until, socket_send};
use crate::agent::now_millis;
use crate::control::{FIRST_PONG_GRACE, KEEPALIVE_DATA, PONG_GRACE};

/// `host` may not resolve to these: IMDS, the Amazon DNS server and the Amazon Time Sync
/// Service, over IPv4 and IPv6 (the real agent's `Mgs.DeniedPortForwardingRemoteIPs`, §7.1).
pub(crate) const DENIED_REMOTE_IPS: &[&str] = &[
    "169.254.169.254",
    "fd00:ec2::254",
    "169.254.169.253",
    "fd00:ec2::253",
    "169.254.169.123",
    "fd00:ec2::123",
];

/// Environment variable that replaces [`DENIED_REMOTE_IPS`]: comma-separated addresses (empty
/// denies nothing).
pub(crate) const DENIED_IPS_ENV: &str = "AGENT_SIM_DENIED_PORT_FORWARDING_REMOTE_IPS";

/// The `type` that selects port forwarding (basic or mux) rather than stdin/stdout mode.
const LOCAL_PORT_FORWARDING: &str = "LocalPortForwarding";
/// ClientVersion from which the agent runs smux (§7.2).
const MUX_MIN_CLIENT_VERSION: &str = "1.1.70";
/// The plugin speaks smux only to agents above this version (§7.2). Which agent release first
/// had smux is UNCONFIRMED; an agent-sim reporting this version or older simulates a release
/// without it, so that both sides choose basic mode.
const MUX_AFTER_AGENT_VERSION: &str = "3.0.196.0";
/// ClientVersion above which the agent's smux keepalive is off (§7.4).
const KEEPALIVE_OFF_ABOVE: &str = "1.2.331.0";
/// smux DefaultConfig KeepAliveInterval.
const SMUX_KEEPALIVE: Duration = Duration::from_secs(10);
/// Handshake timeout Output of the real agent (§4.2).
pub(crate) const HANDSHAKE_TIMED_OUT: &str = "Handshake timed out. Please ensure that you have the latest version of the session manager plugin.";
/// How long dialing the destination may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Chunks queued for writing to one TCP connection.
const CONN_WRITE_QUEUE: usize = 64;
/// Events (reads, closes, dial failures) queued from all connections to the session.
const CONN_EVENT_QUEUE: usize = 16;
/// Longest the session waits for room in one connection's write queue before closing that
/// connection; the bound on how long one slow stream can hold up the others.
const STREAM_STALL_LIMIT: Duration = Duration::from_secs(5);
/// With `real_read_pacing`, the pause after each Output message of the read pump: the real
/// agent reads ≤1024 bytes, sends one message and sleeps 1 ms (§7.4, `transferDataToMgs`),
/// which is what holds a session near ≈0.6 MB/s. A tokio sleep of 1 ms lasts 1–2 ms, about
/// the real 1 ms plus the send.
const READ_PACE: Duration = Duration::from_millis(1);

/// The agent's read pump with `real_read_pacing`: the bytes read from the destination (the
/// smux byte stream in mux mode, one TCP read in basic mode) wait here and leave as Output
/// messages of at most 1024 bytes, one per [`READ_PACE`]. Nothing more is read from the
/// destinations while it holds anything, so the pace reaches the TCP readers.
#[derive(Debug, Default)]
struct Pump {
    /// Bytes read and not sent yet, in order.
    outbox: std::collections::VecDeque<u8>,
    /// When the next message may go.
    next: Option<tokio::time::Instant>,
}

impl Pump {
    fn push(&mut self, bytes: &[u8]) {
        self.outbox.extend(bytes);
    }

    fn is_empty(&self) -> bool {
        self.outbox.is_empty()
    }

    /// When the next message may go, if there is one.
    fn due(&self, now: tokio::time::Instant) -> Option<tokio::time::Instant> {
        if self.outbox.is_empty() {
            return None;
        }
        Some(self.next.map_or(now, |next| next.max(now)))
    }

    /// The next message (≤1024 bytes) if it is due at `now`; the one after waits [`READ_PACE`].
    fn take(&mut self, now: tokio::time::Instant) -> Option<Vec<u8>> {
        if self.due(now).is_none_or(|due| due > now) {
            return None;
        }
        let n = self.outbox.len().min(STREAM_DATA_PAYLOAD_SIZE);
        self.next = Some(now + READ_PACE);
        Some(self.outbox.drain(..n).collect())
    }
}

/// The real agent's `PortParameters` (the fields it reads from the properties).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PortParameters {
    pub(crate) port_number: String,
    pub(crate) port_type: String,
    pub(crate) host: String,
}

impl PortParameters {
    /// Reads the resolved properties as Go's `json.Unmarshal` into `PortParameters` would:
    /// `Err` is the `agent_task_complete` Output.
    pub(crate) fn from_properties(properties: &Value) -> Result<PortParameters, String> {
        let mut parameters = PortParameters::default();
        let Some(object) = properties.as_object() else {
            if properties.is_null() {
                return Ok(parameters);
            }
            return Err(remarshal_error(&format!(
                "json: cannot unmarshal {} into Go value of type PortParameters",
                json_kind(properties)
            )));
        };
        // Go reports the first mismatch in key order (the remarshalled map is sorted).
        for (key, value) in object {
            let slot = match key.as_str() {
                "portNumber" => &mut parameters.port_number,
                "type" => &mut parameters.port_type,
                "host" => &mut parameters.host,
                _ => continue,
            };
            match value {
                Value::String(text) => *slot = text.clone(),
                Value::Null => {}
                other => {
                    return Err(remarshal_error(&format!(
                        "json: cannot unmarshal {} into Go struct field PortParameters.{key} of type string",
                        json_kind(other)
                    )));
                }
            }
        }
        Ok(parameters)
    }

    fn host(&self) -> &str {
        if self.host.is_empty() {
            "localhost"
        } else {
            &self.host
        }
    }
}

fn remarshal_error(detail: &str) -> String {
    format!("Unable to remarshal session properties. {detail}")
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The document `properties` with `{{ name }}` replaced by the StartSession parameter (or the
/// document default). A string that is exactly one placeholder takes the parameter's JSON
/// value as it is (a list stays a list, as `agent-port.jsonl` shows); placeholders inside longer
/// strings are replaced by the parameter's text.
pub(crate) fn resolve_properties(task: &AgentTaskPayload) -> Value {
    let lookup = |name: &str| -> Option<Value> {
        task.parameters.get(name).cloned().or_else(|| {
            task.document_content
                .parameters
                .get(name)
                .and_then(|declared| declared.get("default"))
                .cloned()
        })
    };
    substitute(&task.document_content.properties, &lookup)
}

fn substitute(value: &Value, lookup: &dyn Fn(&str) -> Option<Value>) -> Value {
    match value {
        Value::String(text) => {
            let trimmed = text.trim();
            if let Some(name) = trimmed
                .strip_prefix("{{")
                .and_then(|rest| rest.strip_suffix("}}"))
                .map(str::trim)
                && !name.contains("{{")
                && let Some(found) = lookup(name)
            {
                return found;
            }
            let mut out = String::new();
            let mut rest = text.as_str();
            while let Some(start) = rest.find("{{") {
                let Some(end) = rest[start..].find("}}") else {
                    break;
                };
                let name = rest[start + 2..start + end].trim();
                out.push_str(&rest[..start]);
                match lookup(name) {
                    Some(Value::String(found)) => out.push_str(&found),
                    Some(found) => out.push_str(&found.to_string()),
                    None => out.push_str(&rest[start..start + end + 2]),
                }
                rest = &rest[start + end + 2..];
            }
            out.push_str(rest);
            Value::String(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| substitute(v, lookup)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), substitute(v, lookup)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Dot-separated numeric versions compared component by component, missing components as 0.
/// `None` when either is not a version.
fn compare_versions(a: &str, b: &str) -> Option<std::cmp::Ordering> {
    let parse = |v: &str| -> Option<Vec<u64>> { v.split('.').map(|c| c.parse().ok()).collect() };
    let (a, b) = (parse(a.trim())?, parse(b.trim())?);
    let len = a.len().max(b.len());
    let at = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
    Some(
        (0..len)
            .map(|i| at(&a, i).cmp(&at(&b, i)))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal),
    )
}

/// `version ≥ minimum`; false for something that is not a version.
pub(crate) fn version_at_least(version: &str, minimum: &str) -> bool {
    compare_versions(version, minimum).is_some_and(|o| o.is_ge())
}

/// `version > bound`; false for something that is not a version.
pub(crate) fn version_above(version: &str, bound: &str) -> bool {
    compare_versions(version, bound).is_some_and(|o| o.is_gt())
}

/// Whether an agent reporting `agent_version` runs smux: the plugin's own test (§7.2, the same
/// number of components and greater than [`MUX_AFTER_AGENT_VERSION`]), so that the two sides
/// agree on the mode whatever version an instance is configured with.
fn agent_has_smux(agent_version: &str) -> bool {
    agent_version.split('.').count() == MUX_AFTER_AGENT_VERSION.split('.').count()
        && version_above(agent_version, MUX_AFTER_AGENT_VERSION)
}

/// The deny list in force.
pub(crate) fn denied_ips() -> Vec<IpAddr> {
    match std::env::var(DENIED_IPS_ENV) {
        Ok(list) => list
            .split(',')
            .filter_map(|ip| ip.trim().parse().ok())
            .collect(),
        Err(_) => DENIED_REMOTE_IPS
            .iter()
            .map(|ip| ip.parse().expect("the built-in list is valid"))
            .collect(),
    }
}

/// Where connections go.
#[derive(Debug, Clone)]
struct Target {
    host: String,
    port: String,
    denied: Vec<IpAddr>,
}

impl Target {
    /// Resolves the destination; `Err` names a denied address or the resolution failure.
    async fn resolve(&self) -> Result<Vec<SocketAddr>, String> {
        let port: u16 = self
            .port
            .trim()
            .parse()
            .map_err(|_| format!("invalid port number {:?}", self.port))?;
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), port))
            .await
            .map_err(|e| format!("unable to resolve {}: {e}", self.host))?
            .collect();
        if let Some(denied) = addrs.iter().find(|a| self.is_denied(a.ip())) {
            return Err(format!(
                "Forwarding to IP address {} is forbidden.",
                denied.ip()
            ));
        }
        Ok(addrs)
    }

    fn is_denied(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.denied.contains(&ip)
    }

    async fn dial(&self) -> Result<TcpStream, String> {
        let addrs = self.resolve().await?;
        let mut last = format!("no address for {}", self.host);
        for addr in addrs {
            match tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => return Ok(stream),
                Ok(Err(e)) => last = format!("dial tcp {addr}: {e}"),
                Err(_) => last = format!("dial tcp {addr}: timed out"),
            }
        }
        Err(last)
    }
}

/// What a connection task tells the session.
#[derive(Debug)]
enum ConnEvent {
    Data(u64, Vec<u8>),
    /// The destination closed (EOF or error) after a successful dial.
    Closed(u64),
    DialFailed(u64, String),
}

/// The session's handle on one TCP connection; dropping it closes the connection once the
/// queued writes are written.
#[derive(Debug)]
struct Conn {
    key: u64,
    writes: mpsc::Sender<Vec<u8>>,
    cancel: CancellationToken,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // The task writes what is queued, then shuts the connection down; a destination that
        // does not read gets `STREAM_STALL_LIMIT` from here before the task drops it.
        self.cancel.cancel();
    }
}

fn spawn_conn(key: u64, target: Target, read_size: usize, events: mpsc::Sender<ConnEvent>) -> Conn {
    let (writes, queue) = mpsc::channel(CONN_WRITE_QUEUE);
    let cancel = CancellationToken::new();
    tokio::spawn(conn_task(
        key,
        target,
        read_size,
        queue,
        events,
        cancel.clone(),
    ));
    Conn {
        key,
        writes,
        cancel,
    }
}

async fn conn_task(
    key: u64,
    target: Target,
    read_size: usize,
    mut queue: mpsc::Receiver<Vec<u8>>,
    events: mpsc::Sender<ConnEvent>,
    cancel: CancellationToken,
) {
    let dialed = tokio::select! {
        () = cancel.cancelled() => return,
        dialed = target.dial() => dialed,
    };
    let tcp = match dialed {
        Ok(tcp) => tcp,
        Err(error) => {
            let _ = events.send(ConnEvent::DialFailed(key, error)).await;
            return;
        }
    };
    let _ = tcp.set_nodelay(true);
    let (mut reader, mut writer) = tcp.into_split();
    let read = async {
        let mut buffer = vec![0u8; read_size];
        loop {
            match reader.read(&mut buffer).await {
                Ok(n) if n > 0 => {
                    if events
                        .send(ConnEvent::Data(key, buffer[..n].to_vec()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                _ => {
                    let _ = events.send(ConnEvent::Closed(key)).await;
                    return;
                }
            }
        }
    };
    let write = async {
        while let Some(bytes) = queue.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                // The read side sees the failure too and reports Closed.
                std::future::pending::<()>().await;
            }
        }
        // The session closed the connection: everything queued has been written.
        let _ = writer.shutdown().await;
    };
    tokio::select! {
        () = read => {}
        () = write => {}
        // Closed by the session: the write future flushes what is queued and ends; a
        // destination that does not read gets [`STREAM_STALL_LIMIT`] to take it.
        () = async { cancel.cancelled().await; tokio::time::sleep(STREAM_STALL_LIMIT).await } => {}
    }
}

/// Basic or mux, once the handshake has decided.
#[derive(Debug)]
enum Mode {
    Basic {
        /// Not `LocalPortForwarding`: TCP EOF ends the session (AWS-StartSSHSession).
        stdio: bool,
        conn: Option<Conn>,
    },
    Mux {
        decoder: Decoder,
        /// Open streams by smux stream id.
        streams: Vec<(u32, Conn)>,
        /// The smux byte stream could not be read on.
        broken: bool,
    },
}

/// Why the session is winding down; no mode sends Terminating (§6.4, §7.5).
#[derive(Debug, Clone)]
enum Ending {
    Success,
    Failed(String),
}

enum Step {
    Frame(Option<Result<WsMessage, tokio_tungstenite::tungstenite::Error>>),
    Conn(Option<ConnEvent>),
    Timer,
    Ping,
    ReadDeadline,
    Cancelled,
    DrainOver,
    HandshakeTimeout,
    SmuxKeepalive,
    Pump,
}

/// Runs a Port session on an open data channel.
pub(super) async fn run(
    sessions: &Sessions,
    task: &AgentTaskPayload,
    cancel: &CancellationToken,
    socket: Socket,
) -> Outcome {
    let context = &sessions.0.context;
    let properties = resolve_properties(task);
    let seed = context.random.uuid().as_u64_pair().0;
    let stream = ReliableStream::new(Config::agent(), Instant::now(), now_millis(), seed);
    let (events_tx, events) = mpsc::channel(CONN_EVENT_QUEUE);
    let mut port = Port {
        sessions,
        id: &task.session_id,
        cancel,
        stream,
        socket: Some(socket),
        properties,
        handshake_started: Instant::now(),
        handshake_deadline: Some(tokio::time::Instant::now() + HANDSHAKE_TIMEOUT),
        target: None,
        mode: None,
        events,
        events_tx,
        next_key: 0,
        ending: None,
        keepalive: None,
        pump: Pump::default(),
    };
    port.send_handshake_request();
    port.run().await
}

struct Port<'a> {
    sessions: &'a Sessions,
    id: &'a str,
    cancel: &'a CancellationToken,
    stream: ReliableStream,
    socket: Option<Socket>,
    properties: Value,
    handshake_started: Instant,
    /// Set until the HandshakeResponse arrives.
    handshake_deadline: Option<tokio::time::Instant>,
    target: Option<Target>,
    mode: Option<Mode>,
    events: mpsc::Receiver<ConnEvent>,
    events_tx: mpsc::Sender<ConnEvent>,
    next_key: u64,
    ending: Option<(Ending, tokio::time::Instant)>,
    /// Next smux NOP, when the agent's smux keepalive is on.
    keepalive: Option<tokio::time::Instant>,
    /// Output waiting for its pace (only with `real_read_pacing`).
    pump: Pump,
}

impl Port<'_> {
    fn send_handshake_request(&mut self) {
        let request = HandshakeRequest {
            agent_version: self.sessions.0.context.instance.agent_version.clone(),
            requested_client_actions: vec![RequestedClientAction::SessionType(
                SessionTypeRequest {
                    session_type: "Port".to_owned(),
                    properties: self.properties.clone(),
                },
            )],
        };
        let payload = to_json_bytes(&request).expect("JSON values serialize");
        self.stream
            .send(Instant::now(), PayloadType::HandshakeRequest, payload);
    }

    async fn run(mut self) -> Outcome {
        let timings = self.sessions.0.context.timings;
        let keepalive = timings.keepalive;
        let mut pings =
            tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
        let mut read_deadline = tokio::time::Instant::now() + keepalive + FIRST_PONG_GRACE;
        loop {
            if self.socket.is_none() {
                if self.ending.is_some() {
                    return self.finish();
                }
                let Some(socket) = self.sessions.dial_forever(self.id, self.cancel).await else {
                    return Outcome::Success;
                };
                self.socket = Some(socket);
                self.stream.on_reconnect(Instant::now());
                pings.reset();
                read_deadline = tokio::time::Instant::now() + keepalive + FIRST_PONG_GRACE;
            }
            if !self.flush().await {
                continue;
            }
            if self.ending.is_some() && self.stream.unacked() == 0 {
                return self.finish();
            }
            let sending = self.ending.is_none() && !self.stream.is_paused();
            let reading = sending && self.mode.is_some() && self.pump.is_empty();
            let pump = self
                .pump
                .due(tokio::time::Instant::now())
                .filter(|_| sending);
            let timer = self
                .stream
                .poll_timeout()
                .map(tokio::time::Instant::from_std);
            let drain = self.ending.as_ref().map(|(_, deadline)| *deadline);
            let handshake = self.handshake_deadline.filter(|_| self.ending.is_none());
            let smux_keepalive = self.keepalive.filter(|_| self.ending.is_none());
            let socket = self.socket.as_mut().expect("connected above");
            let step = tokio::select! {
                () = self.cancel.cancelled(), if self.ending.is_none() => Step::Cancelled,
                frame = socket.next() => Step::Frame(frame),
                event = self.events.recv(), if reading => Step::Conn(event),
                () = sleep_until(timer), if timer.is_some() => Step::Timer,
                () = sleep_until(drain), if drain.is_some() => Step::DrainOver,
                () = sleep_until(handshake), if handshake.is_some() => Step::HandshakeTimeout,
                () = sleep_until(smux_keepalive), if smux_keepalive.is_some() => Step::SmuxKeepalive,
                () = sleep_until(pump), if pump.is_some() => Step::Pump,
                _ = pings.tick() => Step::Ping,
                () = tokio::time::sleep_until(read_deadline) => Step::ReadDeadline,
            };
            match step {
                Step::Cancelled => {
                    tracing::info!(session = %self.id, "TerminateSession (channel_closed on the control channel)");
                    self.end(Ending::Success);
                }
                Step::Frame(Some(Ok(WsMessage::Binary(bytes)))) => self.on_frame(&bytes).await,
                Step::Frame(Some(Ok(WsMessage::Text(text)))) => {
                    self.on_frame(text.as_bytes()).await;
                }
                Step::Frame(Some(Ok(WsMessage::Pong(_)))) => {
                    read_deadline = tokio::time::Instant::now() + keepalive + PONG_GRACE;
                }
                Step::Frame(Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None) => {
                    tracing::info!(session = %self.id, "data channel lost; reconnecting");
                    self.socket = None;
                }
                Step::Frame(Some(Ok(_))) => {}
                Step::Conn(Some(event)) => self.on_conn_event(event),
                Step::Pump => {
                    if let Some(chunk) = self.pump.take(tokio::time::Instant::now()) {
                        self.stream.send(Instant::now(), PayloadType::Output, chunk);
                    }
                }
                Step::Conn(None) => {}
                Step::Timer => self.stream.handle_timeout(Instant::now()),
                Step::DrainOver => return self.finish(),
                Step::HandshakeTimeout => {
                    tracing::info!(session = %self.id, "no HandshakeResponse");
                    self.handshake_deadline = None;
                    self.end(Ending::Failed(HANDSHAKE_TIMED_OUT.to_owned()));
                }
                Step::SmuxKeepalive => {
                    self.keepalive = Some(tokio::time::Instant::now() + SMUX_KEEPALIVE);
                    self.send_smux(&Frame::nop().encode());
                }
                Step::Ping => {
                    let ping = WsMessage::Ping(Bytes::from_static(KEEPALIVE_DATA));
                    if socket_send(&mut self.socket, ping).await.is_err() {
                        self.socket = None;
                    }
                }
                Step::ReadDeadline => {
                    tracing::info!(session = %self.id, "no Pong on the data channel; reconnecting");
                    self.socket = None;
                }
            }
        }
    }

    /// Starts the wind-down: connections close, the stream drains.
    fn end(&mut self, ending: Ending) {
        self.mode = None;
        self.handshake_deadline = None;
        self.keepalive = None;
        if self.ending.is_none() {
            self.ending = Some((ending, drain_deadline()));
        }
    }

    /// Drops the socket without Terminating (§6.4, §7.5).
    fn finish(mut self) -> Outcome {
        drop(self.socket.take());
        match self.ending.take() {
            Some((Ending::Failed(output), _)) => Outcome::Failed(output),
            _ => Outcome::Success,
        }
    }

    async fn flush(&mut self) -> bool {
        while let Some(frame) = self.stream.poll_transmit() {
            if socket_send(&mut self.socket, WsMessage::Binary(frame.into()))
                .await
                .is_err()
            {
                self.socket = None;
                return false;
            }
        }
        true
    }

    async fn on_frame(&mut self, frame: &[u8]) {
        let forwarding = self.mode.is_some() && self.ending.is_none();
        let mut ready =
            |message: &Message| message.payload_type != PayloadType::Output || forwarding;
        if let Err(error) = self.stream.handle_frame(Instant::now(), frame, &mut ready) {
            tracing::warn!(session = %self.id, "data frame dropped: {error}");
        }
        while let Some(event) = self.stream.poll_event() {
            match event {
                Event::Stream(message) => self.on_stream_message(message).await,
                Event::Control(message) if message.message_type == MessageType::ChannelClosed => {
                    tracing::info!(session = %self.id, "channel_closed on the data channel");
                    self.end(Ending::Success);
                }
                Event::Control(_) | Event::GaveUp => {}
            }
        }
    }

    async fn on_stream_message(&mut self, message: Message) {
        if self.ending.is_some() {
            return;
        }
        match message.payload_type {
            PayloadType::HandshakeResponse => self.on_handshake_response(&message.payload).await,
            PayloadType::Output => self.on_output(message.payload).await,
            PayloadType::Flag => match Flag::decode(&message.payload) {
                Ok(Flag::TerminateSession) => {
                    tracing::info!(session = %self.id, "Flag TerminateSession");
                    self.end(Ending::Success);
                }
                Ok(Flag::DisconnectToPort) => {
                    if let Some(Mode::Basic { conn, .. }) = &mut self.mode {
                        tracing::debug!(session = %self.id, "DisconnectToPort");
                        *conn = None;
                    }
                }
                Ok(other) => tracing::debug!(session = %self.id, "Flag {other:?} ignored"),
                Err(error) => tracing::warn!(session = %self.id, "Flag ignored: {error}"),
            },
            other => tracing::debug!(session = %self.id, "{other:?} payload ignored"),
        }
    }

    async fn on_handshake_response(&mut self, payload: &[u8]) {
        if self.handshake_deadline.is_none() {
            tracing::debug!(session = %self.id, "HandshakeResponse after the handshake ignored");
            return;
        }
        self.handshake_deadline = None;
        let response = match super::check_handshake_response(payload) {
            Ok(response) => response,
            Err(output) => {
                self.end(Ending::Failed(output));
                return;
            }
        };
        // The ack of the response is already queued: HandshakeComplete follows it (§7.4).
        let complete = HandshakeComplete::new(self.handshake_started.elapsed(), String::new());
        self.stream.send(
            Instant::now(),
            PayloadType::HandshakeComplete,
            to_json_bytes(&complete).expect("numbers and strings serialize"),
        );
        let client_version = response.client_version;
        let parameters = match PortParameters::from_properties(&self.properties) {
            Ok(parameters) => parameters,
            Err(output) => {
                self.end(Ending::Failed(output));
                return;
            }
        };
        let target = Target {
            host: parameters.host().to_owned(),
            port: parameters.port_number.clone(),
            denied: denied_ips(),
        };
        if let Err(error) = target.resolve().await
            && error.ends_with("is forbidden.")
        {
            self.end(Ending::Failed(error));
            return;
        }
        let lpf = parameters.port_type == LOCAL_PORT_FORWARDING;
        let agent_version = &self.sessions.0.context.instance.agent_version;
        let mux = lpf
            && version_at_least(&client_version, MUX_MIN_CLIENT_VERSION)
            && agent_has_smux(agent_version);
        tracing::info!(session = %self.id, client_version, mux, "port session: handshake complete");
        self.mode = Some(if mux {
            if !version_above(&client_version, KEEPALIVE_OFF_ABOVE) {
                self.keepalive = Some(tokio::time::Instant::now() + SMUX_KEEPALIVE);
            }
            Mode::Mux {
                decoder: Decoder::new(),
                streams: Vec::new(),
                broken: false,
            }
        } else {
            Mode::Basic {
                stdio: !lpf,
                conn: None,
            }
        });
        self.target = Some(target);
    }

    fn new_conn(&mut self, read_size: usize) -> Conn {
        self.next_key += 1;
        let target = self.target.clone().expect("set with the mode");
        spawn_conn(self.next_key, target, read_size, self.events_tx.clone())
    }

    async fn on_output(&mut self, payload: Vec<u8>) {
        match &self.mode {
            Some(Mode::Basic { .. }) => self.basic_output(payload).await,
            Some(Mode::Mux { .. }) => self.mux_output(payload).await,
            None => {}
        }
    }

    /// Basic mode: dial on the first Output after (re)connecting, then write.
    async fn basic_output(&mut self, payload: Vec<u8>) {
        if matches!(&self.mode, Some(Mode::Basic { conn: None, .. })) {
            let new = self.new_conn(STREAM_DATA_PAYLOAD_SIZE);
            if let Some(Mode::Basic { conn, .. }) = &mut self.mode {
                *conn = Some(new);
            }
        }
        let Some(Mode::Basic {
            conn: Some(handle), ..
        }) = &self.mode
        else {
            return;
        };
        if !queue_write(handle, payload).await {
            tracing::warn!(session = %self.id, "connection stalled for {STREAM_STALL_LIMIT:?}; closed");
            if let Some(Mode::Basic { conn, .. }) = &mut self.mode {
                *conn = None;
            }
        }
    }

    /// Mux mode: the Output bytes continue the client's smux byte stream.
    async fn mux_output(&mut self, payload: Vec<u8>) {
        let Some(Mode::Mux {
            decoder, broken, ..
        }) = &mut self.mode
        else {
            return;
        };
        if *broken {
            return;
        }
        decoder.push(&payload);
        let mut frames = Vec::new();
        let mut failed = None;
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(error) => {
                    *broken = true;
                    failed = Some(error);
                    break;
                }
            }
        }
        for frame in frames {
            self.on_smux_frame(frame).await;
        }
        if let Some(error) = failed {
            // The real smux session dies: every stream goes with it.
            tracing::warn!(session = %self.id, "smux session broken: {error}");
            self.mux_streams().clear();
        }
    }

    async fn on_smux_frame(&mut self, frame: Frame) {
        let sid = frame.stream_id();
        let known = self.mux_streams().iter().any(|(id, _)| *id == sid);
        match frame.cmd() {
            Command::Syn => {
                if known {
                    tracing::debug!(session = %self.id, sid, "SYN for an open stream ignored");
                    return;
                }
                let conn = self.new_conn(SMUX_MAX_FRAME_SIZE);
                self.mux_streams().push((sid, conn));
            }
            Command::Psh => {
                let Some(index) = self.mux_streams().iter().position(|(id, _)| *id == sid) else {
                    tracing::debug!(session = %self.id, sid, "PSH for no open stream dropped");
                    return;
                };
                let written = queue_write(&self.mux_streams()[index].1, frame.into_data()).await;
                if !written {
                    tracing::warn!(session = %self.id, sid, "stream stalled for {STREAM_STALL_LIMIT:?}; closed");
                    self.close_stream(sid);
                }
            }
            Command::Fin => {
                if known {
                    self.close_stream(sid);
                }
            }
            Command::Nop => {}
        }
    }

    fn mux_streams(&mut self) -> &mut Vec<(u32, Conn)> {
        match &mut self.mode {
            Some(Mode::Mux { streams, .. }) => streams,
            _ => unreachable!("only called in mux mode"),
        }
    }

    /// Closes the TCP connection of `sid` and sends our FIN.
    fn close_stream(&mut self, sid: u32) {
        let streams = self.mux_streams();
        let before = streams.len();
        streams.retain(|(id, _)| *id != sid);
        if streams.len() != before {
            self.send_smux(&Frame::fin(sid).encode());
        }
    }

    fn on_conn_event(&mut self, event: ConnEvent) {
        let key = match &event {
            ConnEvent::Data(key, _) | ConnEvent::Closed(key) | ConnEvent::DialFailed(key, _) => {
                *key
            }
        };
        match &mut self.mode {
            Some(Mode::Basic { stdio, conn }) => {
                if conn.as_ref().is_none_or(|c| c.key != key) {
                    return; // a connection already closed
                }
                let stdio = *stdio;
                match event {
                    ConnEvent::Data(_, bytes) => self.send_read(&bytes),
                    ConnEvent::Closed(_) if stdio => {
                        tracing::info!(session = %self.id, "destination closed the connection");
                        self.end(Ending::Success);
                    }
                    ConnEvent::Closed(_) => *conn = None,
                    ConnEvent::DialFailed(_, error) if stdio => {
                        self.end(Ending::Failed(format!(
                            "Unable to connect to specified port: {error}"
                        )));
                    }
                    ConnEvent::DialFailed(_, error) => {
                        tracing::warn!(session = %self.id, "dial failed: {error}");
                        *conn = None;
                    }
                }
            }
            Some(Mode::Mux { streams, .. }) => {
                let Some(sid) = streams
                    .iter()
                    .find(|(_, conn)| conn.key == key)
                    .map(|(sid, _)| *sid)
                else {
                    return;
                };
                match event {
                    ConnEvent::Data(_, bytes) => {
                        let mut out = Vec::with_capacity(bytes.len() + 8);
                        for frame in psh_frames(sid, &bytes) {
                            frame.encode_into(&mut out);
                        }
                        self.send_smux(&out);
                    }
                    ConnEvent::Closed(_) => self.close_stream(sid),
                    ConnEvent::DialFailed(_, error) => {
                        tracing::warn!(session = %self.id, sid, "dial failed: {error}");
                        self.stream.send(
                            Instant::now(),
                            PayloadType::Flag,
                            Flag::ConnectToPortError.encode().to_vec(),
                        );
                        self.close_stream(sid);
                    }
                }
            }
            None => {}
        }
    }

    /// smux bytes out, in ≤1024-byte Output messages.
    fn send_smux(&mut self, bytes: &[u8]) {
        self.send_read(bytes);
    }

    /// Bytes for the client, in ≤1024-byte Output messages: at once, or through the paced
    /// [`Pump`] with `real_read_pacing`.
    fn send_read(&mut self, bytes: &[u8]) {
        if self.sessions.0.context.timings.real_read_pacing {
            self.pump.push(bytes);
            return;
        }
        for chunk in bytes.chunks(STREAM_DATA_PAYLOAD_SIZE) {
            self.stream
                .send(Instant::now(), PayloadType::Output, chunk.to_vec());
        }
    }
}

/// Queues bytes for a connection, waiting at most [`STREAM_STALL_LIMIT`] for room; false when
/// the connection is stalled (or gone) and should be closed.
async fn queue_write(conn: &Conn, bytes: Vec<u8>) -> bool {
    match conn.writes.try_send(bytes) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Closed(_)) => true, // the task reports why
        Err(mpsc::error::TrySendError::Full(bytes)) => {
            // A closed queue (Ok(Err)) is the task reporting on its own, as above.
            tokio::time::timeout(STREAM_STALL_LIMIT, conn.writes.send(bytes))
                .await
                .is_ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_paced_pump_sends_at_most_1024_bytes_per_read_pace() {
        let t0 = tokio::time::Instant::now();
        let mut pump = Pump::default();
        assert_eq!(pump.due(t0), None);
        // One 32 KiB smux PSH (a mux-mode TCP read) and a FIN behind it, in order.
        let psh: Vec<u8> = (0..32 * 1024 + 8).map(|i| i as u8).collect();
        pump.push(&psh);
        pump.push(b"FIN.....");
        let mut sent = Vec::new();
        let mut at = t0;
        let mut times = Vec::new();
        while let Some(due) = pump.due(at) {
            if due > t0 {
                assert_eq!(pump.take(due - READ_PACE / 2), None, "not before its pace");
            }
            at = due;
            let chunk = pump.take(at).expect("due");
            assert!(chunk.len() <= STREAM_DATA_PAYLOAD_SIZE);
            sent.extend(chunk);
            times.push(at - t0);
        }
        assert_eq!(sent.len(), psh.len() + 8);
        assert_eq!(&sent[..psh.len()], &psh[..]);
        assert_eq!(&sent[psh.len()..], b"FIN.....");
        // 33 messages, one per millisecond: at most 1024 bytes per READ_PACE, never a burst.
        assert_eq!(times.len(), 33);
        assert!(times.windows(2).all(|w| w[1] - w[0] == READ_PACE));
    }

    #[test]
    fn versions() {
        assert!(version_at_least("1.2.677.0", "1.1.70"));
        assert!(version_at_least("1.1.70.0", "1.1.70"));
        assert!(!version_at_least("1.1.0", "1.1.70"));
        assert!(!version_at_least("garbage", "1.1.70"));
        assert!(version_above("1.2.677.0", "1.2.331.0"));
        assert!(!version_above("1.2.331.0", "1.2.331.0"));
        assert!(!version_above("1.2.0.0", "1.2.331.0"));
    }

    #[test]
    fn smux_only_for_agents_the_plugin_speaks_smux_to() {
        assert!(agent_has_smux("3.3.1142.0"));
        assert!(agent_has_smux("3.0.222.0"));
        assert!(!agent_has_smux("3.0.196.0"));
        assert!(!agent_has_smux("2.3.722.0"));
        // The plugin cannot compare a 3-part version and chooses basic mode.
        assert!(!agent_has_smux("3.3.1142"));
        assert!(!agent_has_smux("garbage"));
    }

    #[test]
    fn list_valued_parameter_fails_like_the_real_agent() {
        let properties = serde_json::json!({"localPortNumber": ["0"], "portNumber": ["8090"], "type": "LocalPortForwarding"});
        assert_eq!(
            PortParameters::from_properties(&properties),
            Err("Unable to remarshal session properties. json: cannot unmarshal array into Go struct field PortParameters.portNumber of type string".to_owned())
        );
    }

    #[test]
    fn placeholders_take_parameters_and_defaults() {
        let mut task = AgentTaskPayload::default();
        task.parameters
            .insert("portNumber".into(), serde_json::json!("8090"));
        task.document_content.parameters.insert(
            "localPortNumber".into(),
            serde_json::json!({"type": "String", "default": "0"}),
        );
        task.document_content.properties = serde_json::json!({"portNumber": "{{ portNumber }}", "localPortNumber": "{{localPortNumber}}", "host": "h-{{ portNumber }}"});
        assert_eq!(
            resolve_properties(&task),
            serde_json::json!({"portNumber": "8090", "localPortNumber": "0", "host": "h-8090"})
        );
    }
}
