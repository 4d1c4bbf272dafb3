//! Session benchmark: the emulator and one simulated agent in this process, a minimal
//! Session Manager client on loopback TCP, as a user of `aws ssm start-session` would meet them.
//!
//! ```sh
//! cargo bench -p ssm-emulator --bench sessions                       # 100 sessions, 64 MiB
//! cargo bench -p ssm-emulator --bench sessions -- sessions=200 mib=16 paced-mib=4
//! ```
//!
//! It starts [`ssm_emulator::serve`] on `127.0.0.1:0` with one ssm-agent-sim agent (the
//! embedded fleet's timings) and prints:
//!
//! - **StartSession to first output**: from the StartSession request (a JSON 1.1 call over a
//!   keep-alive loopback HTTP/1.1 connection) until the first byte of the shell's output (its
//!   prompt) is delivered by the client's reliable stream: the API call, the `interactive_shell`
//!   to the agent, the agent's CreateDataChannel and websocket, the client's websocket and open
//!   frame, a real `/bin/sh` on a real PTY, and the relay. p50/p90/p99/max over the sessions,
//!   run one after the other; each is ended with TerminateSession and its `channel_closed`
//!   awaited before the next starts.
//! - **Port forwarding throughput, mux mode**: one AWS-StartPortForwardingSession to a TCP
//!   server this process runs; the client does the handshake as session-manager-plugin 1.2.677.0
//!   (so agent-sim runs smux, §7.2) and opens smux streams (ids 3, 5) whose bytes it carries as
//!   the plugin does: the smux byte stream cut into Output payloads of 1,024 bytes (§7.4).
//!   *client → target*: from the first byte sent until the server has read all of them;
//!   *target → client*: from the SYN until the client has all of them. Next to each, the same
//!   bytes over a plain loopback TCP connection to the same server, measured in the same run.
//!   agent-sim reads its TCP side in 1,024-byte reads with no pacing (its default).
//! - the same with agent-sim's `real_read_pacing` (1 ms after every read, as the real agent's
//!   port pump does), for a smaller size (`paced-mib`, 0 to skip): the ≈0.6 MB/s of real tunnels.
//!
//! The client keeps at most [`CLIENT_BUFFER_CAPACITY`] messages unacknowledged, the plugin's
//! outgoing buffer (it would otherwise evict the oldest, §3.3); it needs no other window.
//! MB/s are 10⁶ bytes per second; sizes are MiB.
//!
//! A bench target with `harness = false`, as `fleet.rs`: `cargo bench` builds it with the bench
//! profile and `cargo test` never runs it; without `--bench` (as `cargo test --benches` would
//! run it) it does a quick check: 5 sessions, 1 MiB, no paced run. Logs are off.
//!
//! The figures measured on the project's 2-core machine are in `BENCHMARKS.md`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use ssm_emulator::fleet::{FleetSetup, embedded_timings};
use ssm_emulator::{Config, Emulator, SystemClock, serve};
use ssm_protocol::limits::{CLIENT_BUFFER_CAPACITY, STREAM_DATA_PAYLOAD_SIZE};
use ssm_protocol::payload::{
    HandshakeRequest, HandshakeResponse, OpenDataChannelInput, ProcessedClientAction,
    RequestedClientAction, from_json_bytes, to_json_bytes, to_json_string,
};
use ssm_protocol::reliable::{Event, ReliableStream};
use ssm_protocol::smux::{Command, Decoder, Frame, psh_frames};
use ssm_protocol::{MessageType, PayloadType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const SEED: u64 = 11;
/// A hang guard for every wait (not a target): the bench gives up after this.
const GIVE_UP: Duration = Duration::from_secs(300);
/// The ClientVersion the client announces: session-manager-plugin 1.2.677.0, which gets smux
/// from the agent and no smux keepalive (§7.2, §7.4).
const CLIENT_VERSION: &str = "1.2.677.0";
/// The smux stream ids of the two transfers: the plugin's first two (§7.4).
const UPLOAD_STREAM: u32 = 3;
const DOWNLOAD_STREAM: u32 = 5;
/// What the bench's TCP server is asked to do, the first byte of a connection, followed by the
/// byte count (u64 little-endian).
const SINK: u8 = b'U';
const SOURCE: u8 = b'D';
const MIB: usize = 1 << 20;

/// What to run, from the command line.
struct Plan {
    sessions: usize,
    mib: usize,
    paced_mib: usize,
}

impl Plan {
    fn from_args() -> Plan {
        let bench = std::env::args().any(|a| a == "--bench");
        let mut plan = if bench {
            Plan {
                sessions: 100,
                mib: 64,
                paced_mib: 4,
            }
        } else {
            Plan {
                sessions: 5,
                mib: 1,
                paced_mib: 0,
            }
        };
        for arg in std::env::args().skip(1) {
            let Some((key, value)) = arg.split_once('=') else {
                continue;
            };
            let Ok(value) = value.parse() else {
                panic!("{arg}: not a number");
            };
            match key {
                "sessions" => plan.sessions = value,
                "mib" => plan.mib = value,
                "paced-mib" => plan.paced_mib = value,
                _ => panic!("unknown option {key} (sessions=, mib=, paced-mib=)"),
            }
        }
        plan
    }
}

fn main() {
    let plan = Plan::from_args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    println!(
        "sessions benchmark: {} cores, {} build",
        std::thread::available_parallelism().map_or(0, usize::from),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    runtime.block_on(async {
        let mut server = TestServer::start().await;
        let setup = Setup::start(false).await;
        start_to_first_output(&setup, plan.sessions).await;
        throughput(&setup, &mut server, plan.mib, "no read pacing").await;
        setup.stop().await;
        if plan.paced_mib > 0 {
            let setup = Setup::start(true).await;
            throughput(&setup, &mut server, plan.paced_mib, "real read pacing").await;
            setup.stop().await;
        }
    });
}

/// The emulator and one agent, served in this process.
struct Setup {
    api: Api,
    target: String,
    stop: oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), ssm_emulator::fleet::ServeError>>,
    work_dir: PathBuf,
}

impl Setup {
    async fn start(real_read_pacing: bool) -> Setup {
        let work_dir = std::env::temp_dir().join(format!(
            "ssm-emulator-bench-sessions-{}-{real_read_pacing}",
            std::process::id()
        ));
        let instances = ssm_agent_sim::default_instances(1, SEED);
        let target = instances[0].instance_id.clone();
        let mut timings = embedded_timings();
        timings.real_read_pacing = real_read_pacing;
        let fleet = FleetSetup {
            instances,
            timings,
            work_dir: work_dir.clone(),
            seed: SEED,
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let emulator = Emulator::new(Config::local(SEED), Arc::new(SystemClock));
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, emulator.clone(), fleet, async {
            let _ = stopped.await;
        }));
        let scope = emulator.scope(emulator.default_region());
        wait("the agent connected", || {
            emulator
                .instances(&scope)
                .iter()
                .any(|node| node.connected)
                .then_some(())
        })
        .await;
        Setup {
            api: Api::connect(addr).await,
            target,
            stop,
            server,
            work_dir,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.server
            .await
            .expect("serve task")
            .expect("serve ends cleanly");
        let _ = std::fs::remove_dir_all(&self.work_dir);
    }
}

/// StartSession to the first shell output byte, `n` sessions one after the other.
async fn start_to_first_output(setup: &Setup, n: usize) {
    let mut samples = Vec::with_capacity(n);
    // Where the time goes: the StartSession reply, and the client's websocket open.
    let mut replies = Vec::with_capacity(n);
    let mut opens = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let (session_id, mut channel, [replied, opened]) =
            setup.start_session(json!({"Target": setup.target})).await;
        replies.push(replied - started);
        opens.push(opened - replied);
        let mut first_output = None;
        while first_output.is_none() {
            match channel.next_event().await {
                Some(Event::Stream(m))
                    if m.payload_type == PayloadType::Output && !m.payload.is_empty() =>
                {
                    first_output = Some(started.elapsed());
                }
                Some(_) => {}
                None => panic!("session {session_id} ended before any output"),
            }
        }
        samples.extend(first_output);
        setup
            .api
            .call("TerminateSession", &json!({"SessionId": session_id}))
            .await;
        channel.wait_closed().await;
    }
    samples.sort();
    replies.sort();
    opens.sort();
    println!(
        "\nStartSession to first shell output, {n} sessions: p50 {:?}, p90 {:?}, p99 {:?}, \
         max {:?}",
        percentile(&samples, 50),
        percentile(&samples, 90),
        percentile(&samples, 99),
        samples.last().copied().unwrap_or_default()
    );
    println!(
        "  of which: StartSession reply p50 {:?}, client websocket open p50 {:?}",
        percentile(&replies, 50),
        percentile(&opens, 50)
    );
}

/// Both directions of one mux-mode port session, each next to plain loopback TCP.
async fn throughput(setup: &Setup, server: &mut TestServer, mib: usize, label: &str) {
    let bytes = mib * MIB;
    let (session_id, mut channel, _) = setup
        .start_session(json!({
            "Target": setup.target,
            "DocumentName": "AWS-StartPortForwardingSession",
            "Parameters": {"portNumber": [server.addr.port().to_string()]},
        }))
        .await;
    channel.handshake().await;

    println!("\nport forwarding, mux mode, agent-sim with {label}, {mib} MiB each way:");
    let through = channel.upload(server, bytes).await;
    let plain = server.plain_upload(bytes).await;
    report("client → target", bytes, through, plain);
    let through = channel.download(bytes).await;
    let plain = server.plain_download(bytes).await;
    report("target → client", bytes, through, plain);

    setup
        .api
        .call("TerminateSession", &json!({"SessionId": session_id}))
        .await;
    channel.wait_closed().await;
}

fn report(direction: &str, bytes: usize, through: Duration, plain: Duration) {
    let rate = |d: Duration| bytes as f64 / d.as_secs_f64() / 1e6;
    println!(
        "  {direction}: {:.1} MB/s through the emulator ({through:.2?}); plain loopback TCP \
         {:.0} MB/s ({plain:.2?})",
        rate(through),
        rate(plain)
    );
}

impl Setup {
    /// StartSession with `request`, then the client's websocket and open frame; also when the
    /// reply came and when the open frame was sent.
    async fn start_session(&self, request: Value) -> (String, DataChannel, [Instant; 2]) {
        let reply = self.api.call("StartSession", &request).await;
        let replied = Instant::now();
        let field = |name: &str| {
            reply[name]
                .as_str()
                .unwrap_or_else(|| panic!("StartSession reply without {name}: {reply}"))
                .to_owned()
        };
        let channel = DataChannel::open(&field("StreamUrl"), &field("TokenValue")).await;
        (field("SessionId"), channel, [replied, Instant::now()])
    }
}

/// The client end of one data channel: a websocket and a client-role [`ReliableStream`].
struct DataChannel {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    stream: ReliableStream,
    /// The smux byte stream received so far, for the download.
    smux: Decoder,
}

impl DataChannel {
    async fn open(url: &str, token: &str) -> DataChannel {
        // TCP_NODELAY, as Go (the plugin) sets by default.
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
            .await
            .expect("data-channel websocket");
        let open = OpenDataChannelInput {
            message_schema_version: "1.0".to_owned(),
            request_id: next_uuid().to_string(),
            token_value: token.to_owned(),
            client_id: next_uuid().to_string(),
            client_version: Some(CLIENT_VERSION.to_owned()),
        };
        let open = to_json_string(&open).expect("open frame");
        ws.send(WsMessage::Text(open.into()))
            .await
            .expect("open frame sent");
        let stream = ReliableStream::new(
            ssm_protocol::reliable::Config::client(),
            Instant::now(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("after 1970")
                .as_millis() as u64,
            SEED,
        );
        DataChannel {
            ws,
            stream,
            smux: Decoder::new(),
        }
    }

    /// Writes every frame the stream has for the wire (acks and data), then flushes once.
    async fn flush(&mut self) {
        let mut any = false;
        while let Some(frame) = self.stream.poll_transmit() {
            self.ws
                .feed(WsMessage::Binary(frame.into()))
                .await
                .expect("websocket write");
            any = true;
        }
        if any {
            self.ws.flush().await.expect("websocket flush");
        }
    }

    /// The next event of the reliable stream; `None` once the websocket has ended.
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.stream.poll_event() {
                return Some(event);
            }
            self.flush().await;
            if !self.receive().await {
                return None;
            }
        }
    }

    /// Waits for one websocket message (or the resend deadline) and feeds it to the stream;
    /// false once the websocket has ended.
    async fn receive(&mut self) -> bool {
        let deadline = self.stream.poll_timeout();
        let message = tokio::select! {
            message = self.ws.next() => message,
            () = sleep_until_option(deadline) => {
                self.stream.handle_timeout(Instant::now());
                return true;
            }
        };
        let bytes = match message {
            Some(Ok(WsMessage::Binary(bytes))) => bytes,
            Some(Ok(WsMessage::Text(text))) => Bytes::from(text.as_str().to_owned()),
            Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => return false,
            Some(Ok(_)) => return true,
        };
        // Malformed frames are dropped, as the plugin does (§1.4).
        let _ = self
            .stream
            .handle_frame(Instant::now(), &bytes, &mut |_| true);
        true
    }

    /// Answers the HandshakeRequest as the plugin does (SessionType Success) and waits for
    /// HandshakeComplete.
    async fn handshake(&mut self) {
        loop {
            let Some(event) = self.next_event().await else {
                panic!("the data channel ended during the handshake");
            };
            let Event::Stream(message) = event else {
                continue;
            };
            match message.payload_type {
                PayloadType::HandshakeRequest => {
                    let request: HandshakeRequest =
                        from_json_bytes(&message.payload).expect("a HandshakeRequest");
                    let processed = request
                        .requested_client_actions
                        .iter()
                        .map(|action| match action {
                            RequestedClientAction::SessionType(_) => {
                                ProcessedClientAction::success(
                                    ssm_protocol::payload::ActionType::SessionType,
                                )
                            }
                            other => panic!("unexpected handshake action {other:?}"),
                        })
                        .collect();
                    let response = HandshakeResponse {
                        client_version: CLIENT_VERSION.to_owned(),
                        processed_client_actions: processed,
                        errors: None,
                    };
                    let payload = to_json_bytes(&response).expect("a HandshakeResponse");
                    self.stream
                        .send(Instant::now(), PayloadType::HandshakeResponse, payload);
                }
                PayloadType::HandshakeComplete => {
                    self.flush().await;
                    return;
                }
                other => panic!("unexpected {other:?} during the handshake"),
            }
        }
    }

    /// Sends `bytes` on a new smux stream to the server's sink; the time from the first byte
    /// sent until the sink has read them all.
    async fn upload(&mut self, server: &mut TestServer, bytes: usize) -> Duration {
        let mut smux = Frame::syn(UPLOAD_STREAM).encode();
        let mut request = vec![SINK];
        request.extend_from_slice(&(bytes as u64).to_le_bytes());
        request.extend(pattern(bytes));
        for frame in psh_frames(UPLOAD_STREAM, &request) {
            frame.encode_into(&mut smux);
        }
        let started = Instant::now();
        let mut chunks = smux.chunks(STREAM_DATA_PAYLOAD_SIZE);
        let mut remaining = true;
        loop {
            while remaining && self.stream.unacked() < CLIENT_BUFFER_CAPACITY {
                match chunks.next() {
                    Some(chunk) => {
                        self.stream
                            .send(Instant::now(), PayloadType::Output, chunk.to_vec());
                    }
                    None => remaining = false,
                }
            }
            self.flush().await;
            tokio::select! {
                at = server.sink_done.recv() => {
                    let elapsed = at.expect("the sink reports") - started;
                    self.close_stream(UPLOAD_STREAM).await;
                    return elapsed;
                }
                alive = self.receive() => assert!(alive, "the data channel ended during the upload"),
            }
            self.drain_events();
        }
    }

    /// Asks the server's source for `bytes` on a new smux stream; the time from the SYN until
    /// the client has them all.
    async fn download(&mut self, bytes: usize) -> Duration {
        let mut request = Frame::syn(DOWNLOAD_STREAM).encode();
        let mut command = vec![SOURCE];
        command.extend_from_slice(&(bytes as u64).to_le_bytes());
        for frame in psh_frames(DOWNLOAD_STREAM, &command) {
            frame.encode_into(&mut request);
        }
        let started = Instant::now();
        self.stream
            .send(Instant::now(), PayloadType::Output, request);
        let mut received = 0;
        while received < bytes {
            let Some(event) = self.next_event().await else {
                panic!("the data channel ended after {received} of {bytes} bytes");
            };
            if let Event::Stream(message) = event {
                self.smux.push(&message.payload);
                while let Some(frame) = self.smux.next_frame().expect("valid smux") {
                    if frame.cmd() == Command::Psh && frame.stream_id() == DOWNLOAD_STREAM {
                        received += frame.data().len();
                    }
                }
            }
        }
        let elapsed = started.elapsed();
        self.close_stream(DOWNLOAD_STREAM).await;
        elapsed
    }

    /// Our FIN for `stream_id`.
    async fn close_stream(&mut self, stream_id: u32) {
        self.stream.send(
            Instant::now(),
            PayloadType::Output,
            Frame::fin(stream_id).encode(),
        );
        self.flush().await;
    }

    /// Events that need no answer during a transfer (acks are handled inside the stream).
    fn drain_events(&mut self) {
        while let Some(event) = self.stream.poll_event() {
            if let Event::Stream(message) = event {
                self.smux.push(&message.payload);
                while let Ok(Some(_)) = self.smux.next_frame() {}
            }
        }
    }

    /// Reads until the emulator's `channel_closed` or the end of the websocket.
    async fn wait_closed(mut self) {
        let closed = async {
            while let Some(event) = self.next_event().await {
                if let Event::Control(m) = event
                    && m.message_type == MessageType::ChannelClosed
                {
                    return;
                }
            }
        };
        tokio::time::timeout(GIVE_UP, closed)
            .await
            .expect("the session closes after TerminateSession");
    }
}

/// A UUID unique in this process (the emulator only passes RequestId and ClientId through;
/// the uuid crate here has no v4 feature).
fn next_uuid() -> uuid::Uuid {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    uuid::Uuid::from_u128((0x5e55_1045_u128 << 96) | u128::from(n))
}

async fn sleep_until_option(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// The destination of the port sessions: a loopback TCP server whose connections are sinks
/// ([`SINK`]: read n bytes, report when all are in) or sources ([`SOURCE`]: write n bytes).
struct TestServer {
    addr: SocketAddr,
    /// When each sink connection had read all its bytes (one transfer runs at a time).
    sink_done: mpsc::UnboundedReceiver<Instant>,
}

impl TestServer {
    async fn start() -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let (done, sink_done) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let done = done.clone();
                tokio::spawn(serve_connection(socket, done));
            }
        });
        TestServer { addr, sink_done }
    }

    /// The same upload over plain loopback TCP.
    async fn plain_upload(&mut self, bytes: usize) -> Duration {
        let mut socket = TcpStream::connect(self.addr).await.expect("connect");
        socket.set_nodelay(true).expect("TCP_NODELAY");
        let mut request = vec![SINK];
        request.extend_from_slice(&(bytes as u64).to_le_bytes());
        let data = pattern(bytes);
        let started = Instant::now();
        socket.write_all(&request).await.expect("write");
        socket.write_all(&data).await.expect("write");
        self.sink_done.recv().await.expect("the sink reports") - started
    }

    /// The same download over plain loopback TCP.
    async fn plain_download(&self, bytes: usize) -> Duration {
        let started = Instant::now();
        let mut socket = TcpStream::connect(self.addr).await.expect("connect");
        socket.set_nodelay(true).expect("TCP_NODELAY");
        let mut request = vec![SOURCE];
        request.extend_from_slice(&(bytes as u64).to_le_bytes());
        socket.write_all(&request).await.expect("write");
        let mut buf = vec![0u8; 64 * 1024];
        let mut received = 0;
        while received < bytes {
            let n = socket.read(&mut buf).await.expect("read");
            assert!(n > 0, "the source closed after {received} bytes");
            received += n;
        }
        started.elapsed()
    }
}

/// One connection of the [`TestServer`].
async fn serve_connection(mut socket: TcpStream, done: mpsc::UnboundedSender<Instant>) {
    let _ = socket.set_nodelay(true);
    let mut command = [0u8; 9];
    if socket.read_exact(&mut command).await.is_err() {
        return;
    }
    let bytes = u64::from_le_bytes(command[1..].try_into().expect("8 bytes")) as usize;
    match command[0] {
        SINK => {
            let mut buf = vec![0u8; 64 * 1024];
            let mut received = 0;
            while received < bytes {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => received += n,
                }
            }
            let _ = done.send(Instant::now());
        }
        SOURCE => {
            let data = pattern(bytes);
            let _ = socket.write_all(&data).await;
            // Keep the connection until the client closes it, so no FIN races the data.
            let mut rest = [0u8; 1];
            let _ = socket.read(&mut rest).await;
        }
        _ => {}
    }
}

/// `n` bytes that are not all alike.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i.wrapping_mul(31) >> 3) as u8).collect()
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// Polls `check` every 10 ms until it gives `Some`; gives up after [`GIVE_UP`].
async fn wait<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + GIVE_UP;
    while Instant::now() < deadline {
        if let Some(value) = check() {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("gave up waiting for {what}");
}

/// One keep-alive HTTP/1.1 connection to the SSM API.
struct Api {
    addr: SocketAddr,
    sender: tokio::sync::Mutex<SendRequest<Full<Bytes>>>,
}

impl Api {
    async fn connect(addr: SocketAddr) -> Api {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("HTTP/1.1 handshake");
        tokio::spawn(connection);
        Api {
            addr,
            sender: tokio::sync::Mutex::new(sender),
        }
    }

    /// `AmazonSSM.<op>` with `body`; the JSON reply of a success, panics on an error.
    async fn call(&self, op: &str, body: &Value) -> Value {
        let request = http::Request::post("/")
            .header(http::header::HOST, self.addr.to_string())
            .header(http::header::CONTENT_TYPE, "application/x-amz-json-1.1")
            .header("x-amz-target", format!("AmazonSSM.{op}"))
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("a valid request");
        let mut sender = self.sender.lock().await;
        sender.ready().await.expect("connection ready");
        let response = sender.send_request(request).await.expect("response");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("response body")
            .to_bytes();
        let reply: Value = serde_json::from_slice(&bytes).expect("a JSON reply");
        assert!(status.is_success(), "{op} {body} failed: {status} {reply}");
        reply
    }
}
