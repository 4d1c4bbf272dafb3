//! One session of `ssm-session`: the data channel, the reliable stream (client role), the
//! shell handler and the reconnect path (spec §2, §3, §4.3, §6, §8.2, §8.3).
//!
//! Everything runs on one task around one `select!`: websocket frames, stdin chunks (read by a
//! thread), signals, the 500 ms size poll, the 5-minute keepalive and the stream's resend
//! deadline. After each input the stream's frames are written and its events handled, so the
//! order on the wire is the order in which the stream produced the frames (for the first
//! output: its ack, then the Size message, as the plugin sends them).

use std::future::pending;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use rand::RngExt;
use rand::rngs::StdRng;
use ssm_protocol::limits::STREAM_DATA_PAYLOAD_SIZE;
use ssm_protocol::payload::{
    ActionStatus, ActionType, ChannelClosed, ExitCode, Flag, HandshakeComplete, HandshakeRequest,
    HandshakeResponse, OpenDataChannelInput, ProcessedClientAction, RequestedClientAction, Size,
    from_json_bytes, to_json_bytes, to_json_string,
};
use ssm_protocol::reliable::{Config, Event, ReliableStream};
use ssm_protocol::{Message, MessageType, PayloadType};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use uuid::Uuid;

use crate::api::Api;
use crate::argv::{StartArgs, StartSessionResponse, VERSION};
use crate::port::{
    BASIC_READ_SIZE, Listener, Local, MUX_READ_SIZE, MuxClient, Properties, version_greater,
};
use crate::sigv4::Credentials;
use crate::terminal::{TerminalMode, stdout_size};
use crate::transport::{self, Ws};

/// The plugin's websocket keepalive period (§2 item 4).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// How often stdout's terminal size is looked at (§6.1).
pub const SIZE_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// gorilla's default handshake timeout, which the plugin dials with (§2 item 1).
const DIAL_TIMEOUT: Duration = Duration::from_secs(45);

/// Calls of the plugin's `RepeatableExponentialRetryer`: the first and up to 5 retries (§8.2).
const RETRY_ATTEMPTS: u32 = 6;

/// The retryer's delay is reset to its initial value when doubling would pass this (§8.2).
const RETRY_MAX_DELAY: Duration = Duration::from_secs(5);

/// How long a port session's exit waits for the TerminateSession call of old agents.
const TERMINATE_TIMEOUT: Duration = Duration::from_secs(5);

/// Unacknowledged messages above which local connections are not read. A deliberate
/// deviation: the plugin keeps reading and, with its 10,000-entry outgoing buffer full, evicts
/// the oldest unacked message (§3.3), which is then never resent: on a lossy link a lost
/// frame waiting for front-only repair is dropped for good and the transfer stalls. Holding
/// the local reader back instead lets TCP push back on the local application. Far above what
/// a healthy link has in flight (≈ one RTT of frames).
pub const MAX_UNACKED_BEFORE_BACKPRESSURE: usize = 2_000;

/// The smux keepalive period of the plugin's smux DefaultConfig (§7.4).
pub const SMUX_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// What the session has become (§4.3, §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SessionType {
    /// No stream message delivered yet.
    Unknown,
    /// A HandshakeRequest was answered; waiting for HandshakeComplete. Other output is "not
    /// ready" meanwhile (§3.2).
    Handshake,
    /// Port forwarding, basic mode (§7.3).
    Basic,
    /// Port forwarding, smux mode (§7.4).
    Mux,
    /// stdin/stdout forwarding (§7.5).
    Stdio,
    /// The first output was PayloadType 1: a shell (`Standard_Stream`).
    StandardStream,
    /// The first output had another PayloadType: the plugin never sets a type, and acks and
    /// prints nothing more; only `channel_closed` ends it.
    Stuck,
}

/// A chunk of stdin, or its end.
#[derive(Debug)]
enum Input {
    Data(Vec<u8>),
    End(String),
}

/// SIGINT, SIGQUIT and SIGTSTP, forwarded as bytes once the shell handler runs (§4.3); in
/// port sessions these and SIGTERM end the session (§6.4).
struct Signals {
    interrupt: Signal,
    quit: Signal,
    stop: Signal,
    term: Option<Signal>,
}

impl Signals {
    fn install(with_term: bool) -> std::io::Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            quit: signal(SignalKind::quit())?,
            stop: signal(SignalKind::from_raw(rustix::process::Signal::TSTP.as_raw()))?,
            term: if with_term {
                Some(signal(SignalKind::terminate())?)
            } else {
                None
            },
        })
    }

    /// The byte a shell session sends for the signal.
    async fn next(&mut self) -> u8 {
        let term = async {
            match &mut self.term {
                Some(term) => term.recv().await,
                None => pending().await,
            }
        };
        tokio::select! {
            _ = self.interrupt.recv() => 0x03,
            _ = self.quit.recv() => 0x1c,
            _ = self.stop.recv() => 0x1a,
            _ = term => 0x03,
        }
    }
}

/// How the session ended: the process exit status, after everything has been printed.
pub type ExitStatus = i32;

/// A running session.
struct Session {
    id: String,
    stream_url: String,
    client_id: Uuid,
    api: Option<Api>,
    rng: StdRng,
    stream: ReliableStream,
    session_type: SessionType,
    exit_code: Option<i64>,
    terminal: TerminalMode,
    last_size: Option<Size>,
    stdin: Option<mpsc::UnboundedReceiver<Input>>,
    signals: Option<Signals>,
    /// From the HandshakeRequest: the agent version and the SessionType action's outcome.
    agent_version: String,
    handshake_type: Option<HandshakeType>,
    properties: Properties,
    /// Port sessions: local listener events, the basic-mode connection, the smux client.
    local: Option<mpsc::UnboundedReceiver<Local>>,
    basic_connection: Option<(u64, mpsc::UnboundedSender<Vec<u8>>)>,
    accepted_once: bool,
    mux: MuxClient,
    mux_keepalive: Option<tokio::time::Interval>,
}

/// What the SessionType action of the handshake asked for (§4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HandshakeType {
    Shell,
    Port,
}

/// Runs a session to its end and returns the exit status. Prints what the plugin prints.
pub async fn run(args: StartArgs, response: StartSessionResponse) -> ExitStatus {
    let mut rng: StdRng = rand::make_rng();
    let now = Instant::now();
    let wall_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_millis() as u64);
    let api = if args.endpoint.is_empty() {
        None
    } else {
        match Api::new(&args.endpoint, &args.region, Credentials::from_env()) {
            Ok(api) => Some(api),
            Err(e) => {
                eprintln!("ssm-session: {e}; the session cannot be resumed or terminated");
                None
            }
        }
    };
    // A deliberate deviation from the plugin: duplicates are acked again, so one lost ack
    // cannot stall the agent's resends for the rest of the session (§3.3; README).
    let stream = ReliableStream::new(Config::client_re_acking(), now, wall_ms, rng.random());
    let mut session = Session {
        id: response.session_id,
        stream_url: response.stream_url,
        client_id: uuid_v4(&mut rng),
        api,
        rng,
        stream,
        session_type: SessionType::Unknown,
        exit_code: None,
        terminal: TerminalMode::default(),
        last_size: None,
        stdin: None,
        signals: None,
        agent_version: String::new(),
        handshake_type: None,
        properties: Properties::default(),
        local: None,
        basic_connection: None,
        accepted_once: false,
        mux: MuxClient::default(),
        mux_keepalive: None,
    };
    print(format!("\nStarting session with SessionId: {}\n", session.id).as_bytes());
    let ws = match session.dial_with_retries(&response.token_value).await {
        Ok(ws) => ws,
        Err(e) => {
            print(format!("Cannot perform start session: {e}\n").as_bytes());
            return 1;
        }
    };
    let status = session.drive(ws).await;
    session.terminal.restore();
    status
}

impl Session {
    /// The main loop, over successive connections.
    async fn drive(&mut self, mut ws: Ws) -> ExitStatus {
        let mut keepalive = tokio::time::interval_at(
            tokio::time::Instant::now() + KEEPALIVE_INTERVAL,
            KEEPALIVE_INTERVAL,
        );
        let mut size_poll = tokio::time::interval(SIZE_POLL_INTERVAL);
        size_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = self.stream.poll_timeout();
            let shell = self.session_type == SessionType::StandardStream;
            let mut lost = false;
            let mut terminate = false;
            let port = matches!(self.session_type, SessionType::Basic | SessionType::Mux);
            tokio::select! {
                frame = ws.next() => match frame {
                    Some(Ok(WsMessage::Binary(bytes))) => self.on_frame(&bytes),
                    // A valid ClientMessage in a text frame is processed like a binary one (§2).
                    Some(Ok(WsMessage::Text(text))) => self.on_frame(text.as_bytes()),
                    Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => lost = true,
                    Some(Ok(_)) => {}
                },
                input = next_input(&mut self.stdin) => match input {
                    Input::Data(data) => self.send_input(data),
                    Input::End(_) if self.session_type == SessionType::Stdio => {
                        // §7.5: stdin EOF ends a stdin/stdout session silently.
                        self.flush(&mut ws).await;
                        return 0;
                    }
                    Input::End(reason) => {
                        // §6.2: the plugin prints this, sends nothing and exits 0.
                        self.flush(&mut ws).await;
                        print(format!("Cannot perform start session: {reason}\n").as_bytes());
                        return 0;
                    }
                },
                byte = next_signal(&mut self.signals) => {
                    if port {
                        terminate = true;
                    } else {
                        self.send_input(vec![byte]);
                    }
                }
                event = next_local(&mut self.local),
                    if self.stream.unacked() < MAX_UNACKED_BEFORE_BACKPRESSURE =>
                {
                    self.on_local(event)
                }
                _ = next_tick(&mut self.mux_keepalive) => self.send_chunks(&MuxClient::nop()),
                _ = sleep_until(deadline) => self.stream.handle_timeout(Instant::now()),
                _ = size_poll.tick(), if shell => self.poll_size(),
                _ = keepalive.tick() => {
                    let _ = ws.send(WsMessage::Ping("keepalive".into())).await;
                }
            }
            if terminate {
                return self.terminate(&mut ws).await;
            }
            if !lost {
                lost = !self.flush(&mut ws).await;
            }
            if let Some(status) = self.handle_events() {
                self.flush(&mut ws).await;
                return status;
            }
            if lost {
                let _ = ws.close(None).await;
                match self.resume().await {
                    Ok(new_ws) => {
                        ws = new_ws;
                        keepalive.reset();
                    }
                    Err(status) => return status,
                }
                // Whatever the stream queued meanwhile (acks cannot be among it) is stale:
                // unacked data goes out again through the resend scheduler.
                while self.stream.poll_transmit().is_some() {}
            }
        }
    }

    /// Writes the stream's pending frames; false when the connection failed.
    async fn flush(&mut self, ws: &mut Ws) -> bool {
        while let Some(frame) = self.stream.poll_transmit() {
            if ws.send(WsMessage::Binary(frame.into())).await.is_err() {
                return false;
            }
        }
        true
    }

    fn on_frame(&mut self, frame: &[u8]) {
        // §3.2 "handler not ready": a stuck session, a handshake not yet complete, a basic port
        // session without a local connection.
        let ready_now = match self.session_type {
            SessionType::Stuck | SessionType::Handshake => false,
            SessionType::Basic => self.basic_connection.is_some(),
            _ => true,
        };
        let mut ready = |_: &Message| ready_now;
        // A frame the plugin's reader refuses is logged and dropped (§1.4).
        let _ = self.stream.handle_frame(Instant::now(), frame, &mut ready);
    }

    /// Handles the stream's events; `Some` when the session is over.
    fn handle_events(&mut self) -> Option<ExitStatus> {
        while let Some(event) = self.stream.poll_event() {
            match event {
                Event::Stream(message) => {
                    if let Some(status) = self.on_output(&message) {
                        return Some(status);
                    }
                }
                Event::Control(message) if message.message_type == MessageType::ChannelClosed => {
                    if let Some(status) = self.on_channel_closed(&message) {
                        return Some(status);
                    }
                }
                Event::Control(_) => {}
                Event::GaveUp => self.terminate_in_background(),
            }
        }
        None
    }

    /// An in-order `output_stream_data` (§4.3, §6.3, §7); `Some` when the session is over.
    fn on_output(&mut self, message: &Message) -> Option<ExitStatus> {
        match self.session_type {
            SessionType::StandardStream => self.on_shell_output(message),
            SessionType::Stuck => {}
            SessionType::Unknown => {
                if message.payload_type == PayloadType::HandshakeRequest {
                    self.on_handshake_request(&message.payload);
                } else if message.payload_type == PayloadType::Output {
                    self.session_type = SessionType::StandardStream;
                    print(&message.payload);
                    self.start_shell();
                } else {
                    // The plugin's first-message handler: no session type, nothing more
                    // printed (§4.3).
                    self.session_type = SessionType::Stuck;
                }
            }
            SessionType::Handshake => {
                if message.payload_type == PayloadType::HandshakeComplete {
                    return self.on_handshake_complete(&message.payload);
                }
            }
            SessionType::Basic => {
                if message.payload_type == PayloadType::Flag {
                    on_agent_flag(&message.payload);
                } else if let Some((_, tx)) = &self.basic_connection {
                    let _ = tx.send(message.payload.clone());
                }
            }
            SessionType::Mux => {
                if message.payload_type == PayloadType::Flag {
                    on_agent_flag(&message.payload);
                } else {
                    match self.mux.receive(&message.payload) {
                        Ok(reply) => self.send_chunks(&reply),
                        Err(e) => eprintln!("ssm-session: smux: {e}"),
                    }
                }
            }
            SessionType::Stdio => print(&message.payload),
        }
        None
    }

    /// HandshakeRequest (§4.2): answer every action as the plugin does, as input seq 0.
    fn on_handshake_request(&mut self, payload: &[u8]) {
        self.session_type = SessionType::Handshake;
        let request: HandshakeRequest = from_json_bytes(payload).unwrap_or_default();
        self.agent_version = request.agent_version;
        let mut processed = Vec::new();
        for action in request.requested_client_actions {
            processed.push(match action {
                RequestedClientAction::SessionType(params) => {
                    let kind = match params.session_type.as_str() {
                        "Port" => Some(HandshakeType::Port),
                        "Standard_Stream" | "InteractiveCommands" | "NonInteractiveCommands" => {
                            Some(HandshakeType::Shell)
                        }
                        _ => None,
                    };
                    match kind {
                        Some(kind) => {
                            self.handshake_type = Some(kind);
                            self.properties = Properties::from_value(&params.properties);
                            ProcessedClientAction::success(ActionType::SessionType)
                        }
                        None => ProcessedClientAction {
                            action_type: ActionType::SessionType,
                            action_status: ActionStatus::Failed,
                            action_result: serde_json::Value::Null,
                            error: format!(
                                "Failed to process action SessionType: Unknown session type {}",
                                params.session_type
                            ),
                        },
                    }
                }
                RequestedClientAction::KmsEncryption(_) => ProcessedClientAction {
                    action_type: ActionType::KmsEncryption,
                    action_status: ActionStatus::Failed,
                    action_result: serde_json::Value::Null,
                    error: "Failed to process action KMSEncryption: ssm-session is an offline \
                            emulator client and cannot call AWS KMS"
                        .to_owned(),
                },
                // The plugin's bug for unknown actions: status 0, `3` as the result (§4.2).
                RequestedClientAction::Other { action_type, .. } => ProcessedClientAction {
                    error: format!("Unsupported action {}", action_type.as_str()),
                    action_type,
                    action_status: ActionStatus::Other(0),
                    action_result: serde_json::Value::from(3),
                },
            });
        }
        let response = HandshakeResponse {
            client_version: VERSION.to_owned(),
            processed_client_actions: processed,
            errors: None,
        };
        let payload = to_json_bytes(&response).expect("strings and numbers serialize");
        self.stream
            .send(Instant::now(), PayloadType::HandshakeResponse, payload);
    }

    /// HandshakeComplete (§4.2, §4.3): the customer message, then the session's handler.
    fn on_handshake_complete(&mut self, payload: &[u8]) -> Option<ExitStatus> {
        let complete: HandshakeComplete = from_json_bytes(payload).unwrap_or_default();
        if !complete.customer_message.is_empty() {
            print(format!("{}\n", complete.customer_message).as_bytes());
        }
        match self.handshake_type {
            None => {
                print(b"Cannot perform start session: unable to determine SessionType\n");
                Some(0)
            }
            Some(HandshakeType::Shell) => {
                self.session_type = SessionType::StandardStream;
                self.start_shell();
                None
            }
            Some(HandshakeType::Port) if !self.properties.is_local_port_forwarding() => {
                self.session_type = SessionType::Stdio;
                self.stdin = Some(spawn_stdin_reader());
                None
            }
            Some(HandshakeType::Port) => self.start_port(),
        }
    }

    /// Basic or mux port forwarding (§7.2–§7.4): listen, print the plugin's lines.
    fn start_port(&mut self) -> Option<ExitStatus> {
        let mux = version_greater(&self.agent_version, "3.0.196.0") == Some(true);
        let listener = match Listener::bind(&self.properties) {
            Ok(listener) => listener,
            Err(e) => {
                print(format!("Cannot perform start session: {e}\n").as_bytes());
                return Some(0);
            }
        };
        let opened = listener.opened_line(&self.properties, &self.id);
        let (tx, rx) = mpsc::unbounded_channel();
        self.local = Some(rx);
        self.signals = Signals::install(true).ok();
        if mux {
            self.session_type = SessionType::Mux;
            print(format!("{opened}\nWaiting for connections...\n").as_bytes());
            if version_greater(&self.agent_version, "3.1.1511.0") != Some(true) {
                self.mux_keepalive = Some(tokio::time::interval_at(
                    tokio::time::Instant::now() + SMUX_KEEPALIVE_INTERVAL,
                    SMUX_KEEPALIVE_INTERVAL,
                ));
            }
            tokio::spawn(listener.serve(false, MUX_READ_SIZE, tx));
        } else {
            self.session_type = SessionType::Basic;
            print(format!("{opened}\n").as_bytes());
            tokio::spawn(listener.serve(true, BASIC_READ_SIZE, tx));
        }
        None
    }

    /// A local connection event in a port session.
    fn on_local(&mut self, event: Local) {
        let mux = self.session_type == SessionType::Mux;
        match event {
            Local::Accepted { id, tx } => {
                if !self.accepted_once {
                    self.accepted_once = true;
                    let line = if mux {
                        format!("\nConnection accepted for session [{}]\n", self.id)
                    } else {
                        format!("Connection accepted for session {}.\n", self.id)
                    };
                    print(line.as_bytes());
                }
                if mux {
                    let syn = self.mux.open(id, tx);
                    self.send_chunks(&syn);
                } else {
                    self.basic_connection = Some((id, tx));
                }
            }
            Local::Data { id, bytes } => {
                if mux {
                    let psh = self.mux.data(id, &bytes);
                    self.send_chunks(&psh);
                } else if self
                    .basic_connection
                    .as_ref()
                    .is_some_and(|(c, _)| *c == id)
                {
                    self.send_input(bytes);
                }
            }
            Local::Closed { id } => {
                if mux {
                    let fin = self.mux.local_closed(id);
                    self.send_chunks(&fin);
                } else if self
                    .basic_connection
                    .as_ref()
                    .is_some_and(|(c, _)| *c == id)
                {
                    self.basic_connection = None;
                    self.send_flag(Flag::DisconnectToPort);
                }
            }
        }
    }

    /// Bytes as Output payloads of at most 1024 bytes (§7.4).
    fn send_chunks(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(STREAM_DATA_PAYLOAD_SIZE) {
            self.send_input(chunk.to_vec());
        }
    }

    fn send_flag(&mut self, flag: Flag) {
        self.stream
            .send(Instant::now(), PayloadType::Flag, flag.encode().to_vec());
    }

    /// A control signal in a port session (§6.4, §7.4): the line, Flag TerminateSession (or
    /// the API for old basic-mode agents), DisconnectToPort if a basic connection is open, the
    /// exit line, exit 0.
    async fn terminate(&mut self, ws: &mut Ws) -> ExitStatus {
        print(b"Terminate signal received, exiting.\n");
        let mux = self.session_type == SessionType::Mux;
        if mux || version_greater(&self.agent_version, "2.3.722.0") == Some(true) {
            self.send_flag(Flag::TerminateSession);
        } else if let Some(api) = self.api.clone() {
            match tokio::time::timeout(TERMINATE_TIMEOUT, api.terminate_session(&self.id)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => eprintln!("ssm-session: TerminateSession: {e}"),
                Err(_) => eprintln!("ssm-session: TerminateSession: timed out"),
            }
        }
        if !mux && self.basic_connection.take().is_some() {
            self.send_flag(Flag::DisconnectToPort);
        }
        self.flush(ws).await;
        print(format!("\n\nExiting session with sessionId: {}.\n\n", self.id).as_bytes());
        0
    }

    /// Every payload is printed raw, whatever its type; an ExitCode payload is also kept as
    /// our exit status.
    fn on_shell_output(&mut self, message: &Message) {
        if message.payload_type == PayloadType::ExitCode
            && let Ok(ExitCode(code)) = ExitCode::parse(&message.payload)
        {
            self.exit_code = Some(code);
        }
        print(&message.payload);
    }

    /// The shell handler starts: terminal mode, signals, stdin, and the first Size at once.
    fn start_shell(&mut self) {
        self.terminal = TerminalMode::cbreak();
        self.signals = Signals::install(false).ok();
        self.stdin = Some(spawn_stdin_reader());
        self.poll_size();
    }

    fn poll_size(&mut self) {
        let size = stdout_size();
        if self.last_size == Some(size) {
            return;
        }
        self.last_size = Some(size);
        let payload = to_json_string(&size).expect("two numbers serialize");
        self.stream
            .send(Instant::now(), PayloadType::Size, payload.into_bytes());
    }

    /// stdin bytes and signal bytes as Output; a lone LF becomes CR (§3.4).
    fn send_input(&mut self, mut data: Vec<u8>) {
        if data == b"\n" {
            data = b"\r".to_vec();
        }
        self.stream.send(Instant::now(), PayloadType::Output, data);
    }

    /// `channel_closed` (§6.5): the exit line, then the end.
    fn on_channel_closed(&mut self, message: &Message) -> Option<ExitStatus> {
        let closed: ChannelClosed = serde_json::from_slice(&message.payload).ok()?;
        let line = if closed.output.is_empty() {
            format!("\n\nExiting session with sessionId: {}.\n\n", self.id)
        } else {
            format!("\n\nSessionId: {} : {}\n\n", self.id, closed.output)
        };
        print(line.as_bytes());
        Some(self.exit_code.map_or(0, |code| (code & 0xff) as i32))
    }

    /// After 3000 resends of one message the plugin calls TerminateSession and carries on
    /// (§3.3); so do we, without waiting for the answer.
    fn terminate_in_background(&self) {
        let Some(api) = self.api.clone() else {
            return;
        };
        let id = self.id.clone();
        tokio::spawn(async move {
            if let Err(e) = api.terminate_session(&id).await {
                eprintln!("ssm-session: TerminateSession: {e}");
            }
        });
    }

    /// The reconnect path (§8.2, §8.3): ResumeSession, then the original StreamUrl again with
    /// the new token, under the plugin's retry schedule. `Err` carries the exit status.
    async fn resume(&mut self) -> Result<Ws, ExitStatus> {
        let Some(api) = self.api.clone() else {
            eprintln!(
                "ssm-session: connection lost and no endpoint (argument 6) to resume session {}",
                self.id
            );
            return Err(1);
        };
        let mut delay = self.initial_retry_delay();
        let initial = delay;
        let mut last_error = String::new();
        for attempt in 0..RETRY_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(delay).await;
                delay = if delay * 2 > RETRY_MAX_DELAY {
                    initial
                } else {
                    delay * 2
                };
            }
            match api.resume_session(&self.id).await {
                Ok(None) => {
                    print(format!("Session: {} timed out.\n", self.id).as_bytes());
                    return Err(0);
                }
                Ok(Some(token)) => match self.dial(&token).await {
                    Ok(ws) => return Ok(ws),
                    Err(e) => last_error = e,
                },
                Err(e) => last_error = e.to_string(),
            }
        }
        // The plugin stays alive and silent here, forever; a reference client says why and
        // stops.
        eprintln!(
            "ssm-session: could not resume session {}: {last_error}",
            self.id
        );
        Err(1)
    }

    /// The first connection, with the same retry schedule and no API call (§8.3).
    async fn dial_with_retries(&mut self, token: &str) -> Result<Ws, String> {
        let mut delay = self.initial_retry_delay();
        let initial = delay;
        let mut last_error = String::new();
        for attempt in 0..RETRY_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(delay).await;
                delay = if delay * 2 > RETRY_MAX_DELAY {
                    initial
                } else {
                    delay * 2
                };
            }
            match self.dial(token).await {
                Ok(ws) => return Ok(ws),
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    /// Dials the StreamUrl verbatim and sends the open frame and the first keepalive (§2).
    async fn dial(&mut self, token: &str) -> Result<Ws, String> {
        let url = self.stream_url.clone();
        let mut ws = tokio::time::timeout(DIAL_TIMEOUT, transport::connect_websocket(&url))
            .await
            .map_err(|_| format!("dialing {url}: timed out"))?
            .map_err(|e| format!("dialing {url}: {e}"))?;
        let open = OpenDataChannelInput {
            message_schema_version: "1.0".to_owned(),
            request_id: uuid_v4(&mut self.rng).to_string(),
            token_value: token.to_owned(),
            client_id: self.client_id.to_string(),
            client_version: Some(VERSION.to_owned()),
        };
        let open = to_json_string(&open).expect("strings serialize");
        ws.send(WsMessage::Text(open.into()))
            .await
            .map_err(|e| format!("sending the open frame: {e}"))?;
        ws.send(WsMessage::Ping("keepalive".into()))
            .await
            .map_err(|e| format!("sending keepalive: {e}"))?;
        Ok(ws)
    }

    /// A random 100–199 ms, the initial delay of the plugin's retryer.
    fn initial_retry_delay(&mut self) -> Duration {
        Duration::from_millis(self.rng.random_range(100..200))
    }
}

fn uuid_v4(rng: &mut StdRng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid()
}

/// Writes to stdout and flushes; a closed stdout is not an error worth dying for.
fn print(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes);
    let _ = out.flush();
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => pending().await,
    }
}

async fn next_input(stdin: &mut Option<mpsc::UnboundedReceiver<Input>>) -> Input {
    match stdin {
        Some(rx) => match rx.recv().await {
            Some(input) => input,
            None => pending().await,
        },
        None => pending().await,
    }
}

async fn next_local(local: &mut Option<mpsc::UnboundedReceiver<Local>>) -> Local {
    match local {
        Some(rx) => match rx.recv().await {
            Some(event) => event,
            None => pending().await,
        },
        None => pending().await,
    }
}

async fn next_tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => pending().await,
    }
}

/// A Flag from the agent in a port session: ConnectToPortError is printed (§6.4).
fn on_agent_flag(payload: &[u8]) {
    if matches!(Flag::decode(payload), Ok(Flag::ConnectToPortError)) {
        print(b"\nConnection to destination port failed, check SSM Agent logs.\n");
    }
}

async fn next_signal(signals: &mut Option<Signals>) -> u8 {
    match signals {
        Some(signals) => signals.next().await,
        None => pending().await,
    }
}

/// Reads stdin on a thread in chunks of up to 1024 bytes, one `read(2)` each (§6.2).
fn spawn_stdin_reader() -> mpsc::UnboundedReceiver<Input> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut buf = vec![0u8; STREAM_DATA_PAYLOAD_SIZE];
        loop {
            match rustix::io::read(&stdin, &mut buf[..]) {
                Ok(0) => {
                    let _ = tx.send(Input::End("EOF".to_owned()));
                    return;
                }
                Ok(n) => {
                    if tx.send(Input::Data(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    let _ = tx.send(Input::End(std::io::Error::from(e).to_string()));
                    return;
                }
            }
        }
    });
    rx
}
