//! The fake MGS of agent-sim's session tests, shared by the test files that `mod common;` it:
//! the service's REST calls and both channels, with a client-role `ReliableStream` playing the
//! client end of the data channel.
//! Waits are bounded ([`WAIT`]).

#![allow(dead_code, unreachable_pub)]

pub mod jobs;

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

pub const WAIT: Duration = Duration::from_secs(15);
pub const INSTANCE: &str = "i-0123456789abcdef0";
pub const WALL: u64 = 1_795_387_366_832;

/// A distinct MessageId for each frame the fake sends.
pub fn next_id() -> Uuid {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0x5000);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    uuid::Builder::from_random_bytes(u128::from(n).to_be_bytes()).into_uuid()
}

/// The recorded user `nobody` when the test runs as root (agent-sim then switches to it, as
/// the real agent does); otherwise the current user, the one other user agent-sim accepts.
pub fn session_user() -> String {
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
pub fn task_complete(session: &str, status: &str, output: &str) -> String {
    format!(
        r#"{{"SchemaVersion":1,"TaskId":"{session}","Topic":"agent_task_complete","FinalTaskStatus":"{status}","IsRoutingFailure":false,"AwsAccountId":"","InstanceId":"{INSTANCE}","Output":{},"S3Bucket":"","S3UrlSuffix":"","CwlGroup":"","CwlStream":"","RetryNumber":1}}"#,
        serde_json::to_string(output).unwrap()
    )
}

/// Serves `router` on a free loopback port until `shutdown` is cancelled.
pub async fn serve(router: Router, shutdown: &CancellationToken) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .unwrap();
    });
    addr
}

/// The one simulated instance: [`INSTANCE`], Debian 12, agent 3.3.1142.0, no tags.
pub fn instance() -> InstanceConfig {
    InstanceConfig {
        instance_id: INSTANCE.to_owned(),
        platform_name: "Debian GNU/Linux".to_owned(),
        platform_version: "12".to_owned(),
        agent_version: "3.3.1142.0".to_owned(),
        computer_name: "ip-192-0-2-2".to_owned(),
        ip_address: "192.0.2.2".to_owned(),
        tags: Default::default(),
    }
}

/// A fleet of [`instance`] against the fake at `addr`, its state in `work`, fast timings with
/// no heartbeat during a test; tests change the fields they are about.
pub fn fleet_config(addr: SocketAddr, work: &TempDir) -> FleetConfig {
    FleetConfig {
        endpoint: Endpoint::parse(&format!("http://{addr}")).unwrap(),
        instances: vec![instance()],
        timings: Timings {
            heartbeat: Duration::from_secs(3600),
            ..Timings::fast()
        },
        proxy: None,
        work_dir: work.path().join("state"),
        default_working_dir: work.path().to_path_buf(),
        region: "us-east-1".to_owned(),
        seed: 1,
    }
}

// ---------------------------------------------------------------------------------------------
// The fake service.
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
pub enum Event {
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

pub struct Fake {
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

pub struct Harness {
    pub fake: Arc<Fake>,
    pub events: mpsc::UnboundedReceiver<Event>,
    pub shutdown: CancellationToken,
    pub fleet: tokio::task::JoinHandle<()>,
    pub _work: TempDir,
    /// The client end of the data channel.
    pub client: ReliableStream,
    /// Every frame of the agent on the data channel, decoded, in order.
    pub raw: Vec<Message>,
    /// Output delivered to the client so far.
    pub output: Vec<u8>,
    /// Frames of the data channel that are not stream data or acks, in order.
    pub controls: Vec<Message>,
    /// Agent stream messages delivered to the client, as received.
    pub delivered: Vec<Message>,
    pub data_closed: bool,
}

impl Harness {
    pub async fn start() -> Harness {
        let (events_tx, events) = mpsc::unbounded_channel();
        let fake = Arc::new(Fake {
            events: events_tx,
            control: Mutex::new(None),
            data: Mutex::new(None),
            tokens: Mutex::new(0),
        });
        let shutdown = CancellationToken::new();
        let addr = serve(app(fake.clone()), &shutdown).await;
        let work = TempDir::new().unwrap();
        let config = fleet_config(addr, &work);
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
            raw: Vec::new(),
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
    pub async fn next<T>(&mut self, what: &str, mut pick: impl FnMut(Event) -> Option<T>) -> T {
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

    pub fn to_control(&self, message_type: MessageType, payload: &str) {
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

    /// Sends `interactive_shell` with `payload` and checks everything up to Connected against
    /// agent-shell.jsonl.
    pub async fn start_session(&mut self, session: &str, payload: &str) {
        self.to_control(MessageType::InteractiveShell, payload);
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
    pub async fn pump_until(&mut self, what: &str, done: impl Fn(&Harness) -> bool) {
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
                        self.raw.push(Message::decode(&frame, Validation::Client).unwrap());
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

    pub fn flush(&mut self) {
        let data = self.fake.data.lock().unwrap().clone();
        while let Some(frame) = self.client.poll_transmit() {
            if let Some(data) = &data {
                data.send(frame).ok();
            }
        }
    }

    /// Sends one input message of `payload_type` from the client.
    pub fn send(&mut self, payload_type: PayloadType, bytes: Vec<u8>) {
        self.client.send(Instant::now(), payload_type, bytes);
        self.flush();
    }

    pub fn type_in(&mut self, text: &str) {
        self.send(PayloadType::Output, text.as_bytes().to_vec());
    }

    pub fn resize(&mut self, cols: u32, rows: u32) {
        let size = to_json_bytes(&Size { cols, rows }).unwrap();
        assert_eq!(
            size,
            format!(r#"{{"cols":{cols},"rows":{rows}}}"#).into_bytes()
        );
        self.client.send(Instant::now(), PayloadType::Size, size);
        self.flush();
    }

    pub fn output_text(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }

    pub fn controls_of(&self, message_type: &MessageType) -> Vec<&Message> {
        self.controls
            .iter()
            .filter(|m| m.message_type == *message_type)
            .collect()
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.fleet.await.unwrap();
    }
}

/// Whether a process with exactly this command line exists.
pub fn process_running(argv: &[&str]) -> bool {
    let wanted: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
        std::fs::read(entry.path().join("cmdline")).is_ok_and(|cmdline| cmdline == wanted)
    })
}

/// Waits until a process with exactly this command line runs (`running`) or is gone (not
/// `running`); panics with `what` after [`WAIT`]. Polled apart from [`Harness::pump_until`],
/// whose checks run only when a frame comes.
pub async fn until_process(argv: &[&str], running: bool, what: &str) {
    let wait = async {
        while process_running(argv) != running {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {WAIT:?}"));
}

pub fn text(message: &Message) -> String {
    String::from_utf8(message.payload.clone()).unwrap()
}
