//! Sessions (§9.1): `interactive_shell` on the control channel starts one, as the real agent's
//! session worker does.
//!
//! 1. CreateDataChannel (`POST /v1/data-channel/<sessionId>`), the data websocket
//!    `…?role=publish_subscribe`, the agent open frame (§2.6), then `agent_session_state`
//!    Connected (seq 0, flags 3). Up to 5 attempts, 100–199 ms apart doubling to 5 s, with one
//!    RequestId; when they all fail the session waits for `channel_closed`.
//! 2. `Standard_Stream`: no handshake; `sh` on a real 24×80 PTY ([`shell`]). PTY output goes out
//!    in ≤1024-byte Output messages through the agent-role [`ReliableStream`]; the client's
//!    Output is written to the PTY, Size resizes it (not ready, so not acked, while there is
//!    no PTY, §6.1). `pause_publication` stops the reads (§5).
//! 3. The shell exits: wait up to [`AGENT_CLOSE_DRAIN`] for acks, `agent_session_state`
//!    Terminating, drop the socket (no Close frame), `agent_task_complete` Success.
//!    `channel_closed` on the control channel, or Flag TerminateSession / `channel_closed` on
//!    the data channel: kill the shell's process group, drain, drop the socket without
//!    Terminating, `agent_task_complete` Success.
//! 4. A data socket that fails (read error, Close, missed read deadline) is re-established:
//!    CreateDataChannel again, a new socket and open frame, Connected; the stream keeps its
//!    sequence numbers and buffers and is un-paused ([`ReliableStream::on_reconnect`]).
//!
//! `agent_task_complete` is resent (same MessageId, RetryNumber + 1) every second until an
//! `agent_task_acknowledge` names its MessageId, at most 3 times. A session that fails before
//! its shell starts (run-as user refused) sends two of them with status Failed, as the real
//! agent does (plugin and document results, `agent-shell-runas-root.jsonl`).
//!
//! `Port` sessions (handshake, basic and smux mux modes over real TCP) are in [`port`];
//! `InteractiveCommands` (a command on a PTY, run by the loop above) and
//! `NonInteractiveCommands` (handshake, a process without PTY, StdErr and ExitCode payloads) in
//! [`commands`]. Other session types fail with a clear Output.

mod commands;
mod port;
mod shell;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use ssm_protocol::limits::{AGENT_CLOSE_DRAIN, STREAM_DATA_PAYLOAD_SIZE};
use ssm_protocol::payload::{
    ActionStatus, AgentOpenDataChannelInput, AgentSessionState, AgentTaskAcknowledge,
    AgentTaskComplete, AgentTaskPayload, ChannelClosed, Flag, HandshakeResponse, MgsPayload,
    ResultStatus, SessionState, Size, TOPIC_AGENT_TASK_COMPLETE, from_json_bytes, to_json_bytes,
};
use ssm_protocol::reliable::{Config, Event, ReliableStream};
use ssm_protocol::{Flags, Message, MessageType, PayloadType};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use self::shell::{PtyInput, Shell};
use crate::agent::{Outbox, Random, now_millis};
use crate::config::{InstanceConfig, Timings};
use crate::control::{FIRST_PONG_GRACE, KEEPALIVE_DATA, PONG_GRACE};
use crate::service::Service;

/// How long the agent waits for `agent_task_acknowledge` before resending.
const TASK_ACK_WAIT: Duration = Duration::from_secs(1);
/// Resends of an unacknowledged `agent_task_complete`.
const TASK_COMPLETE_RETRIES: i64 = 3;
/// Data-channel open attempts (§9.1).
const DIAL_ATTEMPTS: u32 = 5;
/// First delay between open attempts is in `[DIAL_RETRY_INITIAL, 2·DIAL_RETRY_INITIAL)`.
const DIAL_RETRY_INITIAL: Duration = Duration::from_millis(100);
/// Cap of the delay between open attempts.
const DIAL_RETRY_MAX: Duration = Duration::from_secs(5);
/// After the shell is reaped, how long to keep reading output that a background process still
/// holding the terminal might write before the session ends anyway.
const EXIT_OUTPUT_GRACE: Duration = Duration::from_millis(200);

type Socket = WebSocketStream<TcpStream>;

/// What a session needs from its agent.
#[derive(Debug)]
pub(crate) struct SessionContext {
    pub(crate) instance: InstanceConfig,
    pub(crate) service: Service,
    pub(crate) timings: Timings,
    pub(crate) random: Arc<Random>,
    pub(crate) outbox: Outbox,
    /// The shell's working directory when it runs as agent-sim's own user.
    pub(crate) default_working_dir: PathBuf,
}

/// One agent's sessions; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Sessions(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    context: SessionContext,
    /// Running sessions by id; cancelling the token ends the session as TerminateSession does.
    running: Mutex<HashMap<String, CancellationToken>>,
    /// `agent_task_complete` MessageIds waiting for their `agent_task_acknowledge`.
    task_acks: Mutex<HashMap<Uuid, oneshot::Sender<()>>>,
    shutdown: CancellationToken,
}

/// How a session ended: one `agent_task_complete` per entry.
#[derive(Debug)]
enum Outcome {
    Success,
    /// Failed before the shell ran: two `agent_task_complete` Failed with this Output.
    Failed(String),
}

impl Sessions {
    /// No sessions yet; `shutdown` kills every session's shell without reporting.
    pub(crate) fn new(context: SessionContext, shutdown: CancellationToken) -> Sessions {
        Sessions(Arc::new(Inner {
            context,
            running: Mutex::new(HashMap::new()),
            task_acks: Mutex::new(HashMap::new()),
            shutdown,
        }))
    }

    fn instance_id(&self) -> &str {
        &self.0.context.instance.instance_id
    }

    /// `interactive_shell`: starts the session unless it already runs. Not acknowledged.
    pub(crate) fn on_interactive_shell(&self, message: &Message) {
        let task = from_json_bytes::<MgsPayload>(&message.payload)
            .and_then(|payload| payload.task().map(|task| (payload.task_id, task)));
        let (task_id, mut task) = match task {
            Ok(task) => task,
            Err(error) => {
                tracing::warn!(instance = %self.instance_id(), "interactive_shell dropped: {error}");
                return;
            }
        };
        if task.session_id.is_empty() {
            task.session_id = task_id;
        }
        let id = task.session_id.clone();
        let cancel = {
            let mut running = lock(&self.0.running);
            if running.contains_key(&id) {
                tracing::info!(instance = %self.instance_id(), session = %id, "interactive_shell for a running session ignored");
                return;
            }
            let cancel = self.0.shutdown.child_token();
            running.insert(id.clone(), cancel.clone());
            cancel
        };
        tracing::info!(instance = %self.instance_id(), session = %id, "session starting ({})", task.document_content.session_type);
        let sessions = self.clone();
        tokio::spawn(async move {
            sessions.run(task, cancel).await;
            lock(&sessions.0.running).remove(&id);
        });
    }

    /// `channel_closed` on the control channel: TerminateSession for that session.
    pub(crate) fn on_channel_closed(&self, message: &Message) {
        let closed = match from_json_bytes::<ChannelClosed>(&message.payload) {
            Ok(closed) => closed,
            Err(error) => {
                tracing::warn!(instance = %self.instance_id(), "channel_closed dropped: {error}");
                return;
            }
        };
        match lock(&self.0.running).get(&closed.session_id) {
            Some(cancel) => cancel.cancel(),
            None => {
                tracing::debug!(instance = %self.instance_id(), session = %closed.session_id, "channel_closed for no running session");
            }
        }
    }

    /// `agent_task_acknowledge`: stops the resends of the `agent_task_complete` it names.
    pub(crate) fn on_task_acknowledge(&self, message: &Message) {
        let ack = from_json_bytes::<AgentTaskAcknowledge>(&message.payload);
        let Some(id) = ack
            .ok()
            .and_then(|ack| Uuid::parse_str(&ack.message_id).ok())
        else {
            tracing::warn!(instance = %self.instance_id(), "agent_task_acknowledge without a MessageId dropped");
            return;
        };
        if let Some(acked) = lock(&self.0.task_acks).remove(&id) {
            let _ = acked.send(());
        }
    }

    async fn run(&self, task: AgentTaskPayload, cancel: CancellationToken) {
        let id = task.session_id.clone();
        let outcome = tokio::select! {
            // The agent stops: shells die with their `Shell`, nothing is reported.
            () = self.0.shutdown.cancelled() => return,
            outcome = self.session(&task, &cancel) => outcome,
        };
        tracing::info!(instance = %self.instance_id(), session = %id, "session ended: {outcome:?}");
        match outcome {
            Outcome::Success => self.complete(&id, ResultStatus::Success, "").await,
            Outcome::Failed(output) => {
                // Plugin result and document result, each with its own MessageId.
                tokio::join!(
                    self.complete(&id, ResultStatus::Failed, &output),
                    self.complete(&id, ResultStatus::Failed, &output)
                );
            }
        }
    }

    /// `agent_task_complete`, resent until acknowledged (at most [`TASK_COMPLETE_RETRIES`]).
    async fn complete(&self, session_id: &str, status: ResultStatus, output: &str) {
        let context = &self.0.context;
        let id = context.random.uuid();
        let (acked, mut wait) = oneshot::channel();
        lock(&self.0.task_acks).insert(id, acked);
        for retry_number in 1..=1 + TASK_COMPLETE_RETRIES {
            let payload = AgentTaskComplete {
                schema_version: 1,
                task_id: session_id.to_owned(),
                topic: TOPIC_AGENT_TASK_COMPLETE.to_owned(),
                final_task_status: status.clone(),
                is_routing_failure: false,
                aws_account_id: String::new(),
                instance_id: context.instance.instance_id.clone(),
                output: output.to_owned(),
                s3_bucket: String::new(),
                s3_url_suffix: String::new(),
                cwl_group: String::new(),
                cwl_stream: String::new(),
                retry_number,
            };
            let payload = to_json_bytes(&payload).expect("strings and numbers serialize");
            context
                .outbox
                .send_as(MessageType::AgentTaskComplete, id, payload);
            if tokio::time::timeout(TASK_ACK_WAIT, &mut wait).await.is_ok() {
                return;
            }
        }
        lock(&self.0.task_acks).remove(&id);
        tracing::warn!(instance = %self.instance_id(), session = %session_id, "agent_task_complete never acknowledged");
    }

    /// The session from data channel to end; what to report.
    async fn session(&self, task: &AgentTaskPayload, cancel: &CancellationToken) -> Outcome {
        let context = &self.0.context;
        let id = &task.session_id;
        let spec = match task.document_content.session_type.as_str() {
            "Port" => {
                let Some(socket) = self.dial(id, cancel).await else {
                    cancel.cancelled().await;
                    return Outcome::Success;
                };
                return port::run(self, task, cancel, socket).await;
            }
            commands::NON_INTERACTIVE_COMMANDS => {
                let Some(socket) = self.dial(id, cancel).await else {
                    cancel.cancelled().await;
                    return Outcome::Success;
                };
                return commands::run_non_interactive(self, task, cancel, socket).await;
            }
            "Standard_Stream" => shell::resolve(task, &context.default_working_dir),
            commands::INTERACTIVE_COMMANDS => {
                commands::interactive_spec(task, &context.default_working_dir)
            }
            other => Err(format!(
                "\n----------ERROR-------\nagent-sim does not run {other:?} sessions yet\n"
            )),
        };
        let Some(socket) = self.dial(id, cancel).await else {
            // The real agent keeps the session until channel_closed (§9.1).
            cancel.cancelled().await;
            return Outcome::Success;
        };
        let spec = match spec {
            Ok(spec) => spec,
            Err(output) => {
                drop(socket);
                return Outcome::Failed(output);
            }
        };
        let shell = match Shell::spawn(&spec) {
            Ok(shell) => shell,
            Err(error) => {
                drop(socket);
                return Outcome::Failed(format!(
                    "\n----------ERROR-------\nUnable to start command: {error}\n"
                ));
            }
        };
        let seed = context.random.uuid().as_u64_pair().0;
        let stream = ReliableStream::new(Config::agent(), Instant::now(), now_millis(), seed);
        Running {
            sessions: self,
            id,
            cancel,
            stream,
            socket: Some(socket),
            shell: Some(shell),
            ending: None,
            exited_at: None,
        }
        .run()
        .await
    }

    /// Opens the data channel: up to [`DIAL_ATTEMPTS`] tries with one CreateDataChannel
    /// RequestId. `None` when they all failed or the session was cancelled.
    async fn dial(&self, session_id: &str, cancel: &CancellationToken) -> Option<Socket> {
        let random = &self.0.context.random;
        let request_id = random.uuid().to_string();
        let mut delay = DIAL_RETRY_INITIAL + random.below(DIAL_RETRY_INITIAL);
        for attempt in 1..=DIAL_ATTEMPTS {
            let opened = tokio::select! {
                () = cancel.cancelled() => return None,
                opened = self.open(session_id, &request_id) => opened,
            };
            match opened {
                Ok(socket) => return Some(socket),
                Err(error) => {
                    tracing::warn!(instance = %self.instance_id(), session = %session_id, "data channel not open (attempt {attempt}): {error}");
                }
            }
            if attempt == DIAL_ATTEMPTS {
                break;
            }
            tokio::select! {
                () = cancel.cancelled() => return None,
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(DIAL_RETRY_MAX);
        }
        None
    }

    /// CreateDataChannel, dial, open frame, Connected.
    async fn open(&self, session_id: &str, request_id: &str) -> Result<Socket, String> {
        let context = &self.0.context;
        let token = context
            .service
            .create_data_channel(session_id, request_id)
            .await
            .map_err(|e| e.to_string())?;
        let path = format!("/v1/data-channel/{session_id}?role=publish_subscribe");
        let mut socket = context
            .service
            .connector
            .websocket(&path, &context.service.upgrade_headers())
            .await
            .map_err(|e| e.to_string())?;
        let open = AgentOpenDataChannelInput {
            message_schema_version: "1.0".to_owned(),
            request_id: context.random.uuid().to_string(),
            token_value: token,
            client_instance_id: context.instance.instance_id.clone(),
            client_id: String::new(),
        };
        let open = String::from_utf8(to_json_bytes(&open).expect("strings serialize"))
            .expect("serde_json writes UTF-8");
        socket
            .send(WsMessage::Text(open.into()))
            .await
            .map_err(|e| e.to_string())?;
        let connected = self.session_state(session_id, SessionState::Connected);
        socket
            .send(WsMessage::Binary(connected.into()))
            .await
            .map_err(|e| e.to_string())?;
        Ok(socket)
    }

    /// An `agent_session_state` frame: seq 0, flags 3, PayloadType 0 (§4.1).
    fn session_state(&self, session_id: &str, state: SessionState) -> Vec<u8> {
        let context = &self.0.context;
        let mut message = Message::new(
            MessageType::AgentSessionState,
            now_millis(),
            context.random.uuid(),
        );
        message.flags = Flags::ACK;
        message.payload = to_json_bytes(&AgentSessionState {
            schema_version: 1,
            session_state: state,
            session_id: session_id.to_owned(),
        })
        .expect("strings serialize");
        message.encode()
    }
}

/// Why the session is winding down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The shell exited: Terminating before the socket drops.
    Exited,
    /// TerminateSession: the shell was killed; no Terminating.
    Terminated,
}

/// One turn of the session loop.
enum Step {
    Frame(Option<Result<WsMessage, tokio_tungstenite::tungstenite::Error>>),
    Output(std::io::Result<usize>),
    Reaped,
    ExitGraceOver,
    Timer,
    Ping,
    ReadDeadline,
    Cancelled,
    DrainOver,
}

/// The running session: shell, stream and socket.
struct Running<'a> {
    sessions: &'a Sessions,
    id: &'a str,
    cancel: &'a CancellationToken,
    stream: ReliableStream,
    /// `None` while the data channel is being re-established.
    socket: Option<Socket>,
    /// `None` once the shell has ended or been killed.
    shell: Option<Shell>,
    /// Set when the session winds down, with the end of the drain wait.
    ending: Option<(Ending, tokio::time::Instant)>,
    /// When the shell was reaped while its terminal may still hold output.
    exited_at: Option<tokio::time::Instant>,
}

impl Running<'_> {
    async fn run(mut self) -> Outcome {
        let timings = self.sessions.0.context.timings;
        let keepalive = timings.keepalive;
        let mut pings =
            tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
        let mut read_deadline = tokio::time::Instant::now() + keepalive + FIRST_PONG_GRACE;
        let mut buffer = vec![0u8; STREAM_DATA_PAYLOAD_SIZE];
        loop {
            if self.socket.is_none() {
                if self.ending.is_some() {
                    return Outcome::Success;
                }
                let Some(socket) = self.sessions.dial_forever(self.id, self.cancel).await else {
                    self.terminate();
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
            if let Some((ending, _)) = self.ending
                && self.stream.unacked() == 0
            {
                return self.finish(ending).await;
            }
            let reading = self.ending.is_none() && self.shell.is_some() && !self.stream.is_paused();
            let reaping = self.shell.as_ref().is_some_and(|shell| !shell.exited);
            let timer = self
                .stream
                .poll_timeout()
                .map(tokio::time::Instant::from_std);
            let drain = self.ending.map(|(_, deadline)| deadline);
            let exit_grace = self.exited_at.map(|at| at + EXIT_OUTPUT_GRACE);
            let socket = self.socket.as_mut().expect("connected above");
            let step = {
                let shell = self.shell.as_mut();
                let (output, child) = match shell {
                    Some(shell) => (Some(&mut shell.output), Some(&mut shell.child)),
                    None => (None, None),
                };
                tokio::select! {
                    () = self.cancel.cancelled(), if self.ending.is_none() => Step::Cancelled,
                    frame = socket.next() => Step::Frame(frame),
                    read = async { output.expect("guarded").read(&mut buffer).await }, if reading => Step::Output(read),
                    _ = async { child.expect("guarded").wait().await }, if reaping => Step::Reaped,
                    () = sleep_until(exit_grace), if exit_grace.is_some() => Step::ExitGraceOver,
                    () = sleep_until(timer), if timer.is_some() => Step::Timer,
                    () = sleep_until(drain), if drain.is_some() => Step::DrainOver,
                    _ = pings.tick() => Step::Ping,
                    () = tokio::time::sleep_until(read_deadline) => Step::ReadDeadline,
                }
            };
            match step {
                Step::Cancelled => {
                    tracing::info!(session = %self.id, "TerminateSession (channel_closed on the control channel)");
                    self.terminate();
                }
                Step::Frame(Some(Ok(WsMessage::Binary(bytes)))) => self.on_frame(&bytes),
                Step::Frame(Some(Ok(WsMessage::Text(text)))) => self.on_frame(text.as_bytes()),
                Step::Frame(Some(Ok(WsMessage::Pong(_)))) => {
                    read_deadline = tokio::time::Instant::now() + keepalive + PONG_GRACE;
                }
                Step::Frame(Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None) => {
                    tracing::info!(session = %self.id, "data channel lost; reconnecting");
                    self.socket = None;
                }
                Step::Frame(Some(Ok(_))) => {}
                Step::Output(Ok(read)) if read > 0 => {
                    self.stream
                        .send(Instant::now(), PayloadType::Output, buffer[..read].to_vec());
                    if timings.real_read_pacing {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                // EOF or EIO: every holder of the terminal has closed it.
                Step::Output(_) => {
                    if let Some(shell) = self.shell.as_mut()
                        && !shell.exited
                    {
                        let _ = shell.child.wait().await;
                        shell.exited = true;
                    }
                    self.shell_ended();
                }
                Step::Reaped => {
                    if let Some(shell) = self.shell.as_mut() {
                        shell.exited = true;
                    }
                    self.exited_at = Some(tokio::time::Instant::now());
                }
                Step::ExitGraceOver => self.shell_ended(),
                Step::Timer => self.stream.handle_timeout(Instant::now()),
                Step::DrainOver => {
                    let (ending, _) = self.ending.expect("guarded");
                    return self.finish(ending).await;
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

    /// Feeds one received frame to the stream and acts on what it delivers.
    fn on_frame(&mut self, frame: &[u8]) {
        let pty_up = self.shell.is_some() && self.ending.is_none();
        let mut ready = |message: &Message| message.payload_type != PayloadType::Size || pty_up;
        if let Err(error) = self.stream.handle_frame(Instant::now(), frame, &mut ready) {
            tracing::warn!(session = %self.id, "data frame dropped: {error}");
        }
        while let Some(event) = self.stream.poll_event() {
            match event {
                Event::Stream(message) => self.on_stream_message(&message),
                Event::Control(message) if message.message_type == MessageType::ChannelClosed => {
                    tracing::info!(session = %self.id, "channel_closed on the data channel");
                    self.terminate();
                }
                Event::Control(_) | Event::GaveUp => {}
            }
        }
    }

    fn on_stream_message(&mut self, message: &Message) {
        match message.payload_type {
            PayloadType::Output => {
                if let Some(shell) = &self.shell {
                    let _ = shell.input.send(PtyInput::Data(message.payload.clone()));
                }
            }
            PayloadType::Size => match from_json_bytes::<Size>(&message.payload) {
                Ok(size) if size.cols > 0 && size.rows > 0 => {
                    if let Some(shell) = &self.shell {
                        let clamp = |n: u32| u16::try_from(n).unwrap_or(u16::MAX);
                        let _ = shell.input.send(PtyInput::Resize {
                            rows: clamp(size.rows),
                            cols: clamp(size.cols),
                        });
                    }
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(session = %self.id, "Size ignored: {error}"),
            },
            PayloadType::Flag => {
                if matches!(Flag::decode(&message.payload), Ok(Flag::TerminateSession)) {
                    tracing::info!(session = %self.id, "Flag TerminateSession");
                    self.terminate();
                }
            }
            other => tracing::debug!(session = %self.id, "{other:?} payload ignored"),
        }
    }

    /// Kills the shell's process group and starts the drain wait, without Terminating.
    fn terminate(&mut self) {
        if let Some(shell) = self.shell.take() {
            shell.kill_group();
        }
        if self.ending.is_none() {
            self.ending = Some((Ending::Terminated, drain_deadline()));
        }
    }

    /// The shell exited and its output has been read: start the drain wait.
    fn shell_ended(&mut self) {
        self.shell = None;
        self.exited_at = None;
        if self.ending.is_none() {
            self.ending = Some((Ending::Exited, drain_deadline()));
        }
    }

    /// Terminating (after a normal exit), then the socket drops without a Close frame.
    async fn finish(mut self, ending: Ending) -> Outcome {
        if ending == Ending::Exited {
            let terminating = self
                .sessions
                .session_state(self.id, SessionState::Terminating);
            let _ = socket_send(&mut self.socket, WsMessage::Binary(terminating.into())).await;
        }
        drop(self.socket.take());
        Outcome::Success
    }

    /// Writes every frame the stream has queued; false (and no socket) when a write failed.
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
}

impl Sessions {
    /// Re-establishes a lost data channel, retrying (capped at [`DIAL_RETRY_MAX`]) until it
    /// works or the session is cancelled.
    async fn dial_forever(&self, session_id: &str, cancel: &CancellationToken) -> Option<Socket> {
        loop {
            if let Some(socket) = self.dial(session_id, cancel).await {
                return Some(socket);
            }
            if cancel.is_cancelled() {
                return None;
            }
        }
    }
}

async fn socket_send(
    socket: &mut Option<Socket>,
    message: WsMessage,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    match socket {
        Some(socket) => socket.send(message).await,
        None => Err(tokio_tungstenite::tungstenite::Error::AlreadyClosed),
    }
}

/// Reads a HandshakeResponse as the real agent's `handleHandshakeResponse` does (§4.2): any
/// action with ActionStatus ≠ 1 fails the session; `Err` is the `agent_task_complete` Output.
fn check_handshake_response(payload: &[u8]) -> Result<HandshakeResponse, String> {
    let response = from_json_bytes::<HandshakeResponse>(payload)
        .map_err(|error| format!("Unable to process HandshakeResponse: {error}"))?;
    if let Some(failed) = response
        .processed_client_actions
        .iter()
        .find(|action| action.action_status != ActionStatus::Success)
    {
        let status = i64::from(failed.action_status);
        return Err(format!(
            "{} failed on client with status {status} error: {}",
            failed.action_type.as_str(),
            failed.error
        ));
    }
    Ok(response)
}

fn drain_deadline() -> tokio::time::Instant {
    tokio::time::Instant::now() + AGENT_CLOSE_DRAIN
}

/// Sleeps until `deadline` (guarded: only polled when it is `Some`).
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
