//! Standard_Stream shell sessions against a fake MGS that also plays the client end of the
//! data channel with a client-role `ReliableStream`, checked against the real agent's traffic
//! (`shared/spec/traces/agent-shell.jsonl`, `agent-shell-terminate.jsonl`,
//! `agent-shell-runas-root.jsonl`; payloads copied below).
//!
//! The shells are real `sh` processes on real PTYs. Waits are bounded ([`WAIT`]).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use ssm_agent_sim::net::Endpoint;
use ssm_agent_sim::{FleetConfig, InstanceConfig, Timings};
use ssm_protocol::payload::{AgentTaskAcknowledge, Size, to_json_bytes};
use ssm_protocol::reliable::{Config, Event as StreamEvent, ReliableStream};
use ssm_protocol::{Flags, Message, MessageType, PayloadType, Validation};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(15);
const INSTANCE: &str = "i-0123456789abcdef0";
const WALL: u64 = 1_795_387_366_832;

/// The `interactive_shell` payload of agent-shell.jsonl, verbatim (session `sess-shell-0002`,
/// `runAsDefaultUser` `nobody`).
const INTERACTIVE_SHELL: &str = r#"{"Content": "{\"DocumentName\": \"SSM-SessionManagerRunShell\", \"SessionId\": \"sess-shell-0002\", \"RunAsUser\": \"\", \"SessionOwner\": \"arn:aws:iam::123456789012:user/admin\", \"Parameters\": {}, \"DocumentContent\": {\"schemaVersion\": \"1.0\", \"description\": \"Session document\", \"sessionType\": \"Standard_Stream\", \"inputs\": {\"s3BucketName\": \"\", \"s3KeyPrefix\": \"\", \"s3EncryptionEnabled\": false, \"cloudWatchLogGroupName\": \"\", \"cloudWatchStreamingEnabled\": false, \"cloudWatchEncryptionEnabled\": false, \"kmsKeyId\": \"\", \"runAsEnabled\": true, \"runAsDefaultUser\": \"nobody\", \"shellProfile\": {\"windows\": \"\", \"linux\": \"\"}}, \"parameters\": {}, \"properties\": {}}}", "TaskId": "sess-shell-0002", "Topic": "aws.ssm.startSession", "SchemaVersion": 1}"#;

/// The control-channel `channel_closed` of agent-shell-terminate.jsonl.
const CHANNEL_CLOSED: &str = r#"{"MessageType": "channel_closed", "MessageId": "2c77bf54-75ca-45b4-921c-54d2346df916", "DestinationId": "i-0123456789abcdef0", "SessionId": "sess-shell-0003", "SchemaVersion": 1, "CreatedDate": "2026-11-22T22:44:08.114Z", "Output": ""}"#;

/// A distinct MessageId for each frame the fake sends.
fn next_id() -> Uuid {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0x5000);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    uuid::Builder::from_random_bytes(u128::from(n).to_be_bytes()).into_uuid()
}

/// The recorded payload for `session` as the user `user` (the recorded ones differ only there).
fn interactive_shell(session: &str, user: &str) -> String {
    INTERACTIVE_SHELL
        .replace("sess-shell-0002", session)
        .replace(
            r#"\"runAsDefaultUser\": \"nobody\""#,
            &format!(r#"\"runAsDefaultUser\": \"{user}\""#),
        )
}

/// The recorded user `nobody` when the test runs as root (agent-sim then switches to it, as
/// the real agent does); otherwise the current user, the one other user agent-sim accepts.
fn session_user() -> String {
    let id = |flag: &str| {
        let out = std::process::Command::new("id").arg(flag).output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    if id("-u") == "0" {
        "nobody".to_owned()
    } else {
        id("-un")
    }
}

/// The agent_task_complete payload, byte for byte as agent-shell.jsonl records it.
fn task_complete(session: &str, status: &str, output: &str) -> String {
    format!(
        r#"{{"SchemaVersion":1,"TaskId":"{session}","Topic":"agent_task_complete","FinalTaskStatus":"{status}","IsRoutingFailure":false,"AwsAccountId":"","InstanceId":"{INSTANCE}","Output":{},"S3Bucket":"","S3UrlSuffix":"","CwlGroup":"","CwlStream":"","RetryNumber":1}}"#,
        serde_json::to_string(output).unwrap()
    )
}

// ---------------------------------------------------------------------------------------------
// The fake service.
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
enum Event {
    ControlOpen,
    CreateDataChannel {
        path: String,
        body: String,
        token: String,
    },
    DataUpgrade {
        uri: String,
        headers: HeaderMap,
    },
    DataOpen(String),
    /// A binary frame from the agent on the data channel.
    Data(Vec<u8>),
    DataClosed,
    /// A frame from the agent on the control channel.
    Control(Message),
}

struct Fake {
    events: mpsc::UnboundedSender<Event>,
    control: Mutex<Option<mpsc::UnboundedSender<Message>>>,
    data: Mutex<Option<mpsc::UnboundedSender<Vec<u8>>>>,
    tokens: Mutex<u64>,
}

fn app(fake: Arc<Fake>) -> Router {
    Router::new()
        .route("/", post(|| async { "{}" }))
        .route(
            "/v1/control-channel/{id}",
            post(create_control_channel).get(control_socket),
        )
        .route(
            "/v1/data-channel/{id}",
            post(create_data_channel).get(data_socket),
        )
        .with_state(fake)
}

fn created(token: &str, root: &str) -> Response {
    let xml = format!(
        "<{root}><MessageSchemaVersion>1.0</MessageSchemaVersion><TokenValue>{token}</TokenValue></{root}>"
    );
    (
        StatusCode::CREATED,
        [("content-type", "application/xml")],
        xml,
    )
        .into_response()
}

async fn create_control_channel() -> Response {
    created("cc-token", "CreateControlChannelResponse")
}

async fn create_data_channel(State(fake): State<Arc<Fake>>, uri: Uri, body: String) -> Response {
    let token = {
        let mut tokens = fake.tokens.lock().unwrap();
        *tokens += 1;
        format!("dc-token-{tokens}")
    };
    fake.events
        .send(Event::CreateDataChannel {
            path: uri.path().to_owned(),
            body,
            token: token.clone(),
        })
        .ok();
    created(&token, "CreateDataChannelResponse")
}

async fn control_socket(State(fake): State<Arc<Fake>>, upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(move |socket| serve_control(fake, socket))
}

async fn serve_control(fake: Arc<Fake>, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    *fake.control.lock().unwrap() = Some(tx.clone());
    loop {
        tokio::select! {
            Some(message) = rx.recv() => {
                if sink.send(WsMessage::Binary(message.encode().into())).await.is_err() {
                    break;
                }
            }
            frame = stream.next() => match frame {
                Some(Ok(WsMessage::Text(_))) => { fake.events.send(Event::ControlOpen).ok(); }
                Some(Ok(WsMessage::Binary(bytes))) => {
                    let message = Message::decode(&bytes, Validation::Client).unwrap();
                    if message.message_type == MessageType::AgentTaskComplete {
                        // As the service does: agent_task_acknowledge naming the MessageId.
                        let complete: Value = serde_json::from_slice(&message.payload).unwrap();
                        let ack = AgentTaskAcknowledge {
                            schema_version: 1,
                            message_id: message.message_id.to_string(),
                            task_id: complete["TaskId"].as_str().unwrap().to_owned(),
                            topic: "agent_task_complete".to_owned(),
                        };
                        let mut frame = Message::new(MessageType::AgentTaskAcknowledge, WALL, next_id());
                        frame.payload = to_json_bytes(&ack).unwrap();
                        tx.send(frame).ok();
                    }
                    fake.events.send(Event::Control(message)).ok();
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            },
        }
    }
}

async fn data_socket(
    State(fake): State<Arc<Fake>>,
    UrlPath(_id): UrlPath<String>,
    uri: Uri,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    fake.events
        .send(Event::DataUpgrade {
            uri: uri.to_string(),
            headers,
        })
        .ok();
    upgrade.on_upgrade(move |socket| serve_data(fake, socket))
}

async fn serve_data(fake: Arc<Fake>, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    *fake.data.lock().unwrap() = Some(tx);
    loop {
        tokio::select! {
            Some(frame) = rx.recv() => {
                if sink.send(WsMessage::Binary(frame.into())).await.is_err() {
                    break;
                }
            }
            frame = stream.next() => match frame {
                Some(Ok(WsMessage::Text(text))) => { fake.events.send(Event::DataOpen(text.to_string())).ok(); }
                Some(Ok(WsMessage::Binary(bytes))) => { fake.events.send(Event::Data(bytes.to_vec())).ok(); }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            },
        }
    }
    fake.events.send(Event::DataClosed).ok();
}

// ---------------------------------------------------------------------------------------------
// The harness: one agent, the fake, and the client end.
// ---------------------------------------------------------------------------------------------

struct Harness {
    fake: Arc<Fake>,
    events: mpsc::UnboundedReceiver<Event>,
    shutdown: CancellationToken,
    fleet: tokio::task::JoinHandle<()>,
    _work: TempDir,
    /// The client end of the data channel.
    client: ReliableStream,
    /// Output delivered to the client so far.
    output: Vec<u8>,
    /// Frames of the data channel that are not stream data or acks, in order.
    controls: Vec<Message>,
    /// Agent stream messages delivered to the client, as received.
    delivered: Vec<Message>,
    data_closed: bool,
}

impl Harness {
    async fn start() -> Harness {
        let (events_tx, events) = mpsc::unbounded_channel();
        let fake = Arc::new(Fake {
            events: events_tx,
            control: Mutex::new(None),
            data: Mutex::new(None),
            tokens: Mutex::new(0),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let server_shutdown = shutdown.clone();
        let router = app(fake.clone());
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(server_shutdown.cancelled_owned())
                .await
                .unwrap();
        });
        let work = TempDir::new().unwrap();
        let config = FleetConfig {
            endpoint: Endpoint::parse(&format!("http://{addr}")).unwrap(),
            instances: vec![InstanceConfig {
                instance_id: INSTANCE.to_owned(),
                platform_name: "Debian GNU/Linux".to_owned(),
                platform_version: "12".to_owned(),
                agent_version: "3.3.1142.0".to_owned(),
                computer_name: "ip-192-0-2-2".to_owned(),
                ip_address: "192.0.2.2".to_owned(),
                tags: Default::default(),
            }],
            timings: Timings {
                heartbeat: Duration::from_secs(3600),
                ..Timings::fast()
            },
            proxy: None,
            work_dir: work.path().join("state"),
            default_working_dir: work.path().to_path_buf(),
            region: "us-east-1".to_owned(),
            seed: 1,
        };
        let fleet_shutdown = shutdown.clone();
        let fleet = tokio::spawn(async move {
            ssm_agent_sim::run_fleet(config, fleet_shutdown)
                .await
                .unwrap();
        });
        let mut harness = Harness {
            fake,
            events,
            shutdown,
            fleet,
            _work: work,
            client: ReliableStream::new(Config::client(), Instant::now(), WALL, 99),
            output: Vec::new(),
            controls: Vec::new(),
            delivered: Vec::new(),
            data_closed: false,
        };
        harness
            .next("control channel", |e| {
                matches!(e, Event::ControlOpen).then_some(())
            })
            .await;
        harness
    }

    /// The next event `pick` accepts. Control-channel frames and the data socket's end, which
    /// race with data-channel events across the fake's two sockets, are recorded, not skipped.
    async fn next<T>(&mut self, what: &str, mut pick: impl FnMut(Event) -> Option<T>) -> T {
        let wait = async {
            loop {
                match self.events.recv().await.expect("the fake is running") {
                    Event::Control(message) => self.controls.push(message),
                    Event::DataClosed => self.data_closed = true,
                    event => {
                        if let Some(found) = pick(event) {
                            return found;
                        }
                    }
                }
            }
        };
        tokio::time::timeout(WAIT, wait)
            .await
            .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
    }

    fn to_control(&self, message_type: MessageType, payload: &str) {
        let mut message = Message::new(message_type, WALL, next_id());
        message.payload = payload.as_bytes().to_vec();
        self.fake
            .control
            .lock()
            .unwrap()
            .as_ref()
            .unwrap()
            .send(message)
            .unwrap();
    }

    /// Starts a session and checks everything up to Connected against agent-shell.jsonl.
    async fn start_session(&mut self, session: &str, user: &str) {
        self.to_control(
            MessageType::InteractiveShell,
            &interactive_shell(session, user),
        );
        let (path, body, token) = self
            .next("CreateDataChannel", |e| match e {
                Event::CreateDataChannel { path, body, token } => Some((path, body, token)),
                _ => None,
            })
            .await;
        assert_eq!(path, format!("/v1/data-channel/{session}"));
        let request: Value = serde_json::from_str(&body).unwrap();
        let request_id = request["RequestId"].as_str().unwrap();
        Uuid::parse_str(request_id).unwrap();
        assert_eq!(
            body,
            format!(r#"{{"MessageSchemaVersion":"1.0","RequestId":"{request_id}","ClientId":""}}"#)
        );

        let (uri, headers) = self
            .next("data upgrade", |e| match e {
                Event::DataUpgrade { uri, headers } => Some((uri, headers)),
                _ => None,
            })
            .await;
        assert_eq!(
            uri,
            format!("/v1/data-channel/{session}?role=publish_subscribe")
        );
        assert_eq!(headers["user-agent"], "Go-http-client/1.1");
        let authorization = headers["authorization"].to_str().unwrap();
        assert!(
            authorization
                .contains("/us-east-1/ssmmessages/aws4_request, SignedHeaders=host;x-amz-date,"),
            "{authorization}"
        );

        let open = self
            .next("open frame", |e| match e {
                Event::DataOpen(text) => Some(text),
                _ => None,
            })
            .await;
        let parsed: Value = serde_json::from_str(&open).unwrap();
        let open_request = parsed["RequestId"].as_str().unwrap();
        Uuid::parse_str(open_request).unwrap();
        assert_ne!(open_request, request_id, "a fresh RequestId, as recorded");
        assert_eq!(
            open,
            format!(
                r#"{{"MessageSchemaVersion":"1.0","RequestId":"{open_request}","TokenValue":"{token}","ClientInstanceId":"{INSTANCE}","ClientId":""}}"#
            )
        );

        let frame = self
            .next("Connected", |e| match e {
                Event::Data(bytes) => Some(bytes),
                _ => None,
            })
            .await;
        let connected = Message::decode(&frame, Validation::Client).unwrap();
        assert_eq!(
            connected.encode(),
            frame,
            "canonical header (HL 116, padding, digest)"
        );
        assert_eq!(connected.message_type, MessageType::AgentSessionState);
        assert_eq!(
            (
                connected.sequence_number,
                connected.flags,
                connected.payload_type
            ),
            (0, Flags::ACK, PayloadType::Undefined)
        );
        assert_eq!(
            String::from_utf8(connected.payload).unwrap(),
            format!(r#"{{"SchemaVersion":1,"SessionState":"Connected","SessionId":"{session}"}}"#)
        );
    }

    /// Plays the client until `done` holds (frames fed to the client stream, its acks and
    /// resends written back).
    async fn pump_until(&mut self, what: &str, done: impl Fn(&Harness) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !done(self) {
            self.flush();
            let timer = self
                .client
                .poll_timeout()
                .map(tokio::time::Instant::from_std)
                .unwrap_or(deadline)
                .min(deadline);
            tokio::select! {
                event = self.events.recv() => match event.expect("the fake is running") {
                    Event::Data(frame) => {
                        self.client.handle_frame(Instant::now(), &frame, &mut |_| true).unwrap();
                        while let Some(event) = self.client.poll_event() {
                            match event {
                                StreamEvent::Stream(message) => {
                                    self.output.extend_from_slice(&message.payload);
                                    self.delivered.push(message);
                                }
                                StreamEvent::Control(message) => self.controls.push(message),
                                StreamEvent::GaveUp => panic!("the agent stopped acking"),
                            }
                        }
                    }
                    Event::DataClosed => self.data_closed = true,
                    Event::Control(message) => self.controls.push(message),
                    _ => {}
                },
                () = tokio::time::sleep_until(timer) => {
                    assert!(tokio::time::Instant::now() < deadline, "no {what} within {WAIT:?}; output so far: {:?}; closed: {}; controls: {:?}", String::from_utf8_lossy(&self.output), self.data_closed, self.controls);
                    self.client.handle_timeout(Instant::now());
                }
            }
        }
        self.flush();
    }

    fn flush(&mut self) {
        let data = self.fake.data.lock().unwrap().clone();
        while let Some(frame) = self.client.poll_transmit() {
            if let Some(data) = &data {
                data.send(frame).ok();
            }
        }
    }

    fn type_in(&mut self, text: &str) {
        self.client.send(
            Instant::now(),
            PayloadType::Output,
            text.as_bytes().to_vec(),
        );
        self.flush();
    }

    fn resize(&mut self, cols: u32, rows: u32) {
        let size = to_json_bytes(&Size { cols, rows }).unwrap();
        assert_eq!(
            size,
            format!(r#"{{"cols":{cols},"rows":{rows}}}"#).into_bytes()
        );
        self.client.send(Instant::now(), PayloadType::Size, size);
        self.flush();
    }

    fn output_text(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }

    fn controls_of(&self, message_type: &MessageType) -> Vec<&Message> {
        self.controls
            .iter()
            .filter(|m| m.message_type == *message_type)
            .collect()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.fleet.await.unwrap();
    }
}

fn text(message: &Message) -> String {
    String::from_utf8(message.payload.clone()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Tests.
// ---------------------------------------------------------------------------------------------

/// agent-shell.jsonl: Connected, the prompt as output seq 0 with SYN, Size, `echo hi`, `exit`,
/// Terminating, socket dropped, agent_task_complete Success (acknowledged: not resent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_session_follows_the_real_agent() {
    let mut h = Harness::start().await;
    let session = "sess-shell-0002";
    h.start_session(session, &session_user()).await;

    h.pump_until("prompt", |h| !h.delivered.is_empty()).await;
    let prompt = &h.delivered[0];
    assert_eq!(prompt.message_type, MessageType::OutputStreamData);
    assert_eq!(
        (prompt.sequence_number, prompt.flags, prompt.payload_type),
        (0, Flags::SYN, PayloadType::Output)
    );

    h.resize(120, 40);
    h.type_in("echo hi\n");
    h.pump_until("hi", |h| h.output_text().contains("\r\nhi\r\n"))
        .await;
    assert!(
        h.delivered[1..].iter().all(|m| m.flags == Flags::NONE),
        "only seq 0 carries SYN"
    );

    h.type_in("exit\n");
    h.pump_until("agent_task_complete", |h| {
        h.data_closed && !h.controls_of(&MessageType::AgentTaskComplete).is_empty()
    })
    .await;
    let terminating = h.controls_of(&MessageType::AgentSessionState);
    assert_eq!(terminating.len(), 1, "{:?}", h.controls);
    assert_eq!(
        (terminating[0].sequence_number, terminating[0].flags),
        (0, Flags::ACK)
    );
    assert_eq!(
        text(terminating[0]),
        format!(r#"{{"SchemaVersion":1,"SessionState":"Terminating","SessionId":"{session}"}}"#)
    );
    let complete = h.controls_of(&MessageType::AgentTaskComplete)[0].clone();
    assert_eq!((complete.flags, complete.sequence_number), (Flags::NONE, 0));
    assert_eq!(text(&complete), task_complete(session, "Success", ""));
    assert_eq!(h.client.unacked(), 0, "every input acked");

    // Acknowledged at once by the fake, so never resent (the agent waits 1 s per try).
    tokio::time::sleep(Duration::from_millis(1300)).await;
    while let Ok(event) = h.events.try_recv() {
        if let Event::Control(message) = event {
            assert_ne!(
                message.message_type,
                MessageType::AgentTaskComplete,
                "resent"
            );
        }
    }
    h.stop().await;
}

/// Whether a process with exactly this command line exists.
fn process_running(argv: &[&str]) -> bool {
    let wanted: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
        std::fs::read(entry.path().join("cmdline")).is_ok_and(|cmdline| cmdline == wanted)
    })
}

/// agent-shell-terminate.jsonl: `channel_closed` on the control channel kills the running
/// `sleep`, drops the data socket without Terminating, and reports Success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_closed_on_the_control_channel_kills_the_shell() {
    let mut h = Harness::start().await;
    let session = "sess-shell-0003";
    h.start_session(session, &session_user()).await;
    h.pump_until("prompt", |h| !h.delivered.is_empty()).await;

    // A duration no other test uses, to find the process.
    let sleep = ["sleep", "4117"];
    h.type_in("sleep 4117\n");
    h.pump_until("sleep started", |_| process_running(&sleep))
        .await;

    h.to_control(MessageType::ChannelClosed, CHANNEL_CLOSED);
    h.pump_until("agent_task_complete", |h| {
        h.data_closed && !h.controls_of(&MessageType::AgentTaskComplete).is_empty()
    })
    .await;
    assert!(
        h.controls_of(&MessageType::AgentSessionState).is_empty(),
        "no Terminating after TerminateSession"
    );
    let complete = h.controls_of(&MessageType::AgentTaskComplete)[0];
    assert_eq!(text(complete), task_complete(session, "Success", ""));

    let gone = async {
        while process_running(&sleep) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), gone)
        .await
        .expect("the shell's process group was killed");
    h.stop().await;
}

/// The PTY starts at 24×80 and follows Size messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_resizes_the_pty() {
    let mut h = Harness::start().await;
    h.start_session("sess-resize-0001", &session_user()).await;
    h.pump_until("prompt", |h| !h.delivered.is_empty()).await;

    h.type_in("stty size\n");
    h.pump_until("24 80", |h| h.output_text().contains("\r\n24 80\r\n"))
        .await;
    h.resize(132, 43);
    h.type_in("stty size\n");
    h.pump_until("43 132", |h| h.output_text().contains("\r\n43 132\r\n"))
        .await;
    h.type_in("exit\n");
    h.pump_until("agent_task_complete", |h| {
        h.data_closed && !h.controls_of(&MessageType::AgentTaskComplete).is_empty()
    })
    .await;
    h.stop().await;
}

/// agent-shell-runas-root.jsonl: a root run-as user fails after Connected, the data socket
/// drops, and two agent_task_complete Failed carry the real agent's Output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_as_root_fails_like_the_real_agent() {
    let mut h = Harness::start().await;
    let session = "sess-shell-0001";
    h.start_session(session, "root").await;
    h.pump_until("two agent_task_complete", |h| {
        h.data_closed && h.controls_of(&MessageType::AgentTaskComplete).len() == 2
    })
    .await;
    assert!(h.delivered.is_empty(), "no output");
    let completes = h.controls_of(&MessageType::AgentTaskComplete);
    let expected = task_complete(
        session,
        "Failed",
        "\n----------ERROR-------\nUnable to start command: invalid uid and gid\n",
    );
    assert_eq!(text(completes[0]), expected);
    assert_eq!(text(completes[1]), expected);
    assert_ne!(completes[0].message_id, completes[1].message_id);
    h.stop().await;
}
