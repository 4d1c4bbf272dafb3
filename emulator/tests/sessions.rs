//! The session service inside one process, over real sockets: a fake agent (control channel,
//! CreateDataChannel, data websocket, shaped like agent-shell.jsonl) and a fake client (data
//! websocket, shaped like plugin-shell.jsonl) talk through the emulator's relay; the API goes
//! through `app().oneshot`.
//!
//! Run with `cargo test -p ssm-emulator --test sessions`.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use ssm_emulator::sessions::SessionStatus;
use ssm_emulator::{app, run};
use ssm_protocol::payload::{ChannelClosed, MgsPayload};
use ssm_protocol::{Flags, Message, MessageType, PayloadType, Validation};
use support::TestEmu;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tower::ServiceExt;
use uuid::Uuid;

const A: &str = "i-0123456789abcdef0";
const B: &str = "i-0123456789abcdef1";

/// How long a test waits for something before failing (a hang guard, never a timing check).
const HANG: Duration = Duration::from_secs(10);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn fresh() -> Uuid {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    Uuid::from_u128(0xfeed_0000_0000_0000_0000 + u128::from(NEXT.fetch_add(1, Ordering::Relaxed)))
}

async fn serve(t: &TestEmu) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(run(listener, t.emu.clone(), std::future::pending()));
    addr
}

/// POSTs `path` with `body` through `app().oneshot`; returns the status and body text.
async fn post(t: &TestEmu, path: &str, body: &str) -> (u16, String) {
    let request = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = app(t.emu.clone()).oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

fn token_of(xml: &str) -> String {
    let token = xml.split("<TokenValue>").nth(1).unwrap();
    token.split("</TokenValue>").next().unwrap().to_owned()
}

fn frame(
    message_type: MessageType,
    seq: i64,
    flags: Flags,
    ptype: PayloadType,
    p: &[u8],
) -> Vec<u8> {
    let mut m = Message::new(message_type, 1_795_387_417_975, fresh());
    m.sequence_number = seq;
    m.flags = flags;
    m.payload_type = ptype;
    m.payload = p.to_vec();
    m.encode()
}

/// The next data frame (pings skipped); `None` once the socket is closed.
async fn next_frame(ws: &mut Socket) -> Option<Vec<u8>> {
    loop {
        let next = tokio::time::timeout(HANG, ws.next()).await.expect("hang");
        match next {
            Some(Ok(Ws::Binary(bytes))) => return Some(bytes.to_vec()),
            Some(Ok(Ws::Ping(_) | Ws::Pong(_) | Ws::Frame(_))) => {}
            Some(Ok(Ws::Text(t))) => panic!("unexpected text frame {t}"),
            Some(Ok(Ws::Close(_))) | None | Some(Err(_)) => return None,
        }
    }
}

/// The fake agent: its control channel, and its data channel once a session starts.
struct Agent {
    id: &'static str,
    control: Socket,
}

impl Agent {
    async fn connect(t: &TestEmu, addr: SocketAddr, id: &'static str) -> Agent {
        t.report(id).await;
        let (status, xml) = post(
            t,
            &format!("/v1/control-channel/{id}"),
            r#"{"MessageSchemaVersion":"1.0","RequestId":"725389f2-0211-41b3-bdea-aec11a06c7d3"}"#,
        )
        .await;
        assert_eq!(status, 201);
        let url = format!("ws://{addr}/v1/control-channel/{id}?role=subscribe&stream=input");
        let (mut control, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let open = json!({"Cookie": null, "MessageSchemaVersion": "1.0",
            "RequestId": "219af1cf-1949-4c2d-a554-c21031acb7cd", "TokenValue": token_of(&xml),
            "AgentVersion": "3.3.1142.0", "PlatformType": "linux"});
        control
            .send(Ws::Text(open.to_string().into()))
            .await
            .unwrap();
        let scope = t.emu.scope("us-east-1");
        while !t.emu.control_channel_open(&scope, id) {
            tokio::task::yield_now().await;
        }
        Agent { id, control }
    }

    async fn control_frame(&mut self) -> Message {
        let bytes = next_frame(&mut self.control)
            .await
            .expect("control channel closed");
        Message::decode(&bytes, Validation::Agent).unwrap()
    }

    /// Receives `interactive_shell` and returns its task as JSON (field order kept).
    async fn interactive_shell(&mut self) -> (MgsPayload, Value) {
        let m = self.control_frame().await;
        assert_eq!(m.message_type, MessageType::InteractiveShell);
        let payload: MgsPayload = serde_json::from_slice(&m.payload).unwrap();
        let task: Value = serde_json::from_str(&payload.content).unwrap();
        (payload, task)
    }

    /// CreateDataChannel, then the data websocket with the agent's open frame.
    async fn open_data(&self, t: &TestEmu, addr: SocketAddr, session: &str) -> Socket {
        let (status, xml) = post(
            t,
            &format!("/v1/data-channel/{session}"),
            r#"{"MessageSchemaVersion":"1.0","RequestId":"00000000-0000-4000-8000-000000000001","ClientId":""}"#,
        )
        .await;
        assert_eq!(status, 201, "{xml}");
        let url = format!("ws://{addr}/v1/data-channel/{session}?role=publish_subscribe");
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let open = json!({"MessageSchemaVersion": "1.0", "RequestId": fresh().to_string(),
            "TokenValue": token_of(&xml), "ClientInstanceId": self.id, "ClientId": ""});
        ws.send(Ws::Text(open.to_string().into())).await.unwrap();
        ws
    }

    async fn task_complete(&mut self, session: &str, status: &str, output: &str) {
        let payload = json!({"SchemaVersion": 1, "TaskId": session, "Topic": "agent_task_complete",
            "FinalTaskStatus": status, "IsRoutingFailure": false, "AwsAccountId": "",
            "InstanceId": self.id, "Output": output, "S3Bucket": "", "S3UrlSuffix": "",
            "CwlGroup": "", "CwlStream": "", "RetryNumber": 1});
        let f = frame(
            MessageType::AgentTaskComplete,
            0,
            Flags::NONE,
            PayloadType::Undefined,
            payload.to_string().as_bytes(),
        );
        self.control.send(Ws::Binary(f.into())).await.unwrap();
        let ack = self.control_frame().await;
        assert_eq!(ack.message_type, MessageType::AgentTaskAcknowledge);
    }
}

fn session_state(session: &str, state: &str) -> Vec<u8> {
    let p = json!({"SchemaVersion": 1, "SessionState": state, "SessionId": session});
    frame(
        MessageType::AgentSessionState,
        0,
        Flags::ACK,
        PayloadType::Undefined,
        p.to_string().as_bytes(),
    )
}

/// The fake client's data websocket with the plugin's open frame.
async fn open_client(addr: SocketAddr, session: &str, token: &str) -> Socket {
    let url = format!("ws://{addr}/v1/data-channel/{session}?role=publish_subscribe");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    // The plugin's first keepalive may come before its open frame (§2 item 4).
    ws.send(Ws::Ping(b"keepalive".to_vec().into()))
        .await
        .unwrap();
    let open = json!({"MessageSchemaVersion": "1.0", "RequestId": fresh().to_string(),
        "TokenValue": token, "ClientId": "6e1f0c2d-3b4a-4d5e-8f90-a1b2c3d4e5f6",
        "ClientVersion": "1.2.677.0"});
    ws.send(Ws::Text(open.to_string().into())).await.unwrap();
    ws
}

async fn start(t: &TestEmu, body: Value) -> Value {
    t.call("StartSession", body).await.ok()
}

async fn describe(t: &TestEmu, body: Value) -> Vec<Value> {
    let r = t.call("DescribeSessions", body).await.ok();
    r["Sessions"].as_array().unwrap().clone()
}

async fn wait_status(t: &TestEmu, session: &str, want: SessionStatus) {
    tokio::time::timeout(HANG, async {
        while t.emu.session_status(session) != Some(want) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{session} never became {want:?}"));
}

fn id_of(started: &Value) -> String {
    started["SessionId"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn start_session_sends_interactive_shell_with_the_resolved_document() {
    let t = TestEmu::new();
    let addr = serve(&t).await;
    let mut agent = Agent::connect(&t, addr, A).await;

    let started = start(&t, json!({"Target": A})).await;
    let id = id_of(&started);
    assert!(
        id.starts_with("emulator-") && id.len() == "emulator-".len() + 17,
        "{id}"
    );
    assert!(
        id["emulator-".len()..]
            .chars()
            .all(|c| c.is_ascii_hexdigit())
    );
    assert_eq!(
        started["StreamUrl"],
        format!("ws://localhost/v1/data-channel/{id}?role=publish_subscribe")
    );
    assert!(!started["TokenValue"].as_str().unwrap().is_empty());
    let (payload, task) = agent.interactive_shell().await;
    assert_eq!(payload.task_id, id);
    assert_eq!(payload.topic, "aws.ssm.startSession");
    assert_eq!(payload.schema_version, 1);
    assert_eq!(
        task,
        json!({"DocumentName": "SSM-SessionManagerRunShell", "SessionId": id, "RunAsUser": "",
            "SessionOwner": "arn:aws:iam::123456789012:user/emulator", "Parameters": {},
            "DocumentContent": {"schemaVersion": "1.0",
                "description": "Document to hold regional settings for Session Manager",
                "sessionType": "Standard_Stream",
                "inputs": {"s3BucketName": "", "s3KeyPrefix": "", "s3EncryptionEnabled": false,
                    "cloudWatchLogGroupName": "", "cloudWatchStreamingEnabled": false,
                    "cloudWatchEncryptionEnabled": false, "kmsKeyId": "", "runAsEnabled": false,
                    "runAsDefaultUser": "", "shellProfile": {"windows": "", "linux": ""}},
                "parameters": {}, "properties": {}}})
    );
    // The exact key order the agent sees.
    assert!(payload.content.starts_with(&format!(
        "{{\"DocumentName\":\"SSM-SessionManagerRunShell\",\"SessionId\":\"{id}\",\"RunAsUser\":\"\",\"SessionOwner\":"
    )));

    // Port forwarding: a String parameter goes out as a JSON string, defaults filled in.
    let started = start(
        &t,
        json!({"Target": A, "DocumentName": "AWS-StartPortForwardingSession",
               "Parameters": {"portNumber": ["80"]}, "Reason": "tests"}),
    )
    .await;
    let (_, task) = agent.interactive_shell().await;
    assert_eq!(task["SessionId"], started["SessionId"]);
    assert_eq!(task["DocumentName"], "AWS-StartPortForwardingSession");
    assert_eq!(task["Parameters"]["portNumber"], "80");
    assert!(task["Parameters"]["localPortNumber"].is_string());
    assert_eq!(task["DocumentContent"]["sessionType"], "Port");
    assert_eq!(task["DocumentContent"]["properties"]["portNumber"], "80");

    // The caller's access key names the session; Host makes the StreamUrl.
    let request = Request::post("/")
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", "AmazonSSM.StartSession")
        .header("host", "emu.test:4583")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDSESSION/20240101/us-east-1/ssm/aws4_request, \
             SignedHeaders=host, Signature=0",
        )
        .body(Body::from(json!({"Target": A}).to_string()))
        .unwrap();
    let response = app(t.emu.clone()).oneshot(request).await.unwrap();
    let body: Value = serde_json::from_slice(
        &axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap(),
    )
    .unwrap();
    let id = id_of(&body);
    assert!(id.starts_with("AKIDSESSION-"), "{id}");
    assert_eq!(
        body["StreamUrl"],
        format!("ws://emu.test:4583/v1/data-channel/{id}?role=publish_subscribe")
    );
    let (_, task) = agent.interactive_shell().await;
    assert_eq!(
        task["SessionOwner"],
        "arn:aws:iam::123456789012:user/AKIDSESSION"
    );
}

#[tokio::test]
async fn frames_are_relayed_unchanged_and_early_agent_output_waits_for_the_client() {
    let t = TestEmu::new();
    let addr = serve(&t).await;
    let mut agent = Agent::connect(&t, addr, A).await;
    let started = start(&t, json!({"Target": A})).await;
    let id = id_of(&started);
    agent.interactive_shell().await;
    assert_eq!(t.emu.session_status(&id), Some(SessionStatus::Connecting));

    // The agent is first: Connected (consumed), then its prompt, before the client is there.
    let mut data = agent.open_data(&t, addr, &id).await;
    data.send(Ws::Binary(session_state(&id, "Connected").into()))
        .await
        .unwrap();
    let prompt = frame(
        MessageType::OutputStreamData,
        0,
        Flags::SYN,
        PayloadType::Output,
        b"$ ",
    );
    data.send(Ws::Binary(prompt.clone().into())).await.unwrap();
    wait_status(&t, &id, SessionStatus::Connected).await;

    let mut client = open_client(addr, &id, started["TokenValue"].as_str().unwrap()).await;
    assert_eq!(
        next_frame(&mut client).await.unwrap(),
        prompt,
        "held prompt, byte for byte"
    );

    // Client → agent: ack, Size, keystrokes, in order and unchanged (the ack held briefly).
    let ack = frame(MessageType::Acknowledge, 0, Flags::ACK, PayloadType::Undefined,
        br#"{"AcknowledgedMessageType":"output_stream_data","AcknowledgedMessageId":"x","AcknowledgedMessageSequenceNumber":0,"IsSequentialMessage":true}"#);
    let size = frame(
        MessageType::InputStreamData,
        0,
        Flags::SYN,
        PayloadType::Size,
        br#"{"cols":300,"rows":100}"#,
    );
    let keys = frame(
        MessageType::InputStreamData,
        1,
        Flags::NONE,
        PayloadType::Output,
        b"echo hi\r",
    );
    for f in [&ack, &size, &keys] {
        client.send(Ws::Binary(f.clone().into())).await.unwrap();
    }
    for want in [&ack, &size, &keys] {
        assert_eq!(&next_frame(&mut data).await.unwrap(), want);
    }
    // Agent → client, including a frame the relay cannot parse (forwarded, not judged).
    let out = frame(
        MessageType::OutputStreamData,
        1,
        Flags::NONE,
        PayloadType::Output,
        b"hi\r\n$ ",
    );
    let junk = b"not a frame".to_vec();
    data.send(Ws::Binary(out.clone().into())).await.unwrap();
    data.send(Ws::Binary(junk.clone().into())).await.unwrap();
    assert_eq!(next_frame(&mut client).await.unwrap(), out);
    assert_eq!(next_frame(&mut client).await.unwrap(), junk);

    // Pings are answered by the relay itself.
    client
        .send(Ws::Ping(b"keepalive".to_vec().into()))
        .await
        .unwrap();
    match tokio::time::timeout(HANG, client.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        Ws::Pong(p) => assert_eq!(&p[..], b"keepalive"),
        other => panic!("expected a pong, got {other:?}"),
    }

    assert_eq!(t.emu.session_transcript(&id).unwrap(), b"$ hi\r\n$ ");
    let stats = t.emu.session_relay_stats(&id).unwrap();
    assert_eq!(
        stats.session_states, 1,
        "agent_session_state consumed, not forwarded"
    );
    assert_eq!((stats.client_frames, stats.agent_frames), (3, 3));
    let (status, body) = {
        let request = Request::get(format!("/_emulator/sessions/{id}/transcript"))
            .body(Body::empty())
            .unwrap();
        let response = app(t.emu.clone()).oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        (
            status,
            axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap(),
        )
    };
    assert_eq!((status, &body[..]), (200, &b"$ hi\r\n$ "[..]));

    let active = describe(&t, json!({"State": "Active"})).await;
    assert_eq!(active.len(), 1);
    assert_eq!(active[0]["Status"], "Connected");
}

/// Checks a `channel_closed` frame as the plugin would and returns its payload.
fn channel_closed(bytes: &[u8]) -> ChannelClosed {
    let m = Message::decode(bytes, Validation::Client).expect("valid header and digest");
    assert_eq!(m.message_type, MessageType::ChannelClosed);
    let closed: ChannelClosed = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(closed.message_type, "channel_closed");
    assert_eq!(closed.schema_version, 1);
    assert!(
        closed.created_date.parse::<u64>().is_ok(),
        "{}",
        closed.created_date
    );
    // The plugin's field order (§6.5).
    let text = String::from_utf8(m.payload.clone()).unwrap();
    let at = |k: &str| text.find(&format!("\"{k}\":")).unwrap();
    let order = [
        "MessageId",
        "CreatedDate",
        "DestinationId",
        "SessionId",
        "MessageType",
        "SchemaVersion",
        "Output",
    ];
    assert!(order.windows(2).all(|w| at(w[0]) < at(w[1])), "{text}");
    closed
}

#[tokio::test]
async fn agent_task_complete_ends_the_session_with_channel_closed() {
    let t = TestEmu::new();
    let addr = serve(&t).await;
    let mut agent = Agent::connect(&t, addr, A).await;
    let started = start(&t, json!({"Target": A})).await;
    let id = id_of(&started);
    agent.interactive_shell().await;
    let mut client = open_client(addr, &id, started["TokenValue"].as_str().unwrap()).await;
    let mut data = agent.open_data(&t, addr, &id).await;
    data.send(Ws::Binary(session_state(&id, "Connected").into()))
        .await
        .unwrap();
    wait_status(&t, &id, SessionStatus::Connected).await;
    data.send(Ws::Binary(session_state(&id, "Terminating").into()))
        .await
        .unwrap();
    wait_status(&t, &id, SessionStatus::Terminating).await;
    drop(data);

    agent.task_complete(&id, "Success", "").await;
    let closed = channel_closed(&next_frame(&mut client).await.unwrap());
    assert_eq!(
        (closed.session_id.as_str(), closed.destination_id.as_str()),
        (id.as_str(), A)
    );
    assert_eq!(
        closed.output, "",
        "empty Output: the plugin prints its own exit line"
    );
    assert!(
        next_frame(&mut client).await.is_none(),
        "the client socket is closed"
    );
    assert_eq!(t.emu.session_status(&id), Some(SessionStatus::Terminated));
    let history = describe(&t, json!({"State": "History"})).await;
    assert_eq!(history[0]["SessionId"], id.as_str());
    assert_eq!(history[0]["Status"], "Terminated");
    assert!(history[0]["EndDate"].is_number());

    // A failed session: Failed, and the agent's error text reaches the client.
    let started = start(&t, json!({"Target": A})).await;
    let id = id_of(&started);
    agent.interactive_shell().await;
    let mut client = open_client(addr, &id, started["TokenValue"].as_str().unwrap()).await;
    let text = "\n----------ERROR-------\nUnable to start command: invalid uid and gid\n";
    agent.task_complete(&id, "Failed", text).await;
    let closed = channel_closed(&next_frame(&mut client).await.unwrap());
    assert_eq!(closed.output, text);
    assert_eq!(t.emu.session_status(&id), Some(SessionStatus::Failed));
    // A late CreateDataChannel for an ended session is refused with 400, not a socket.
    let (status, _) = post(&t, &format!("/v1/data-channel/{id}"), "{}").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn terminate_session_closes_both_ends() {
    let t = TestEmu::new();
    let addr = serve(&t).await;
    let mut agent = Agent::connect(&t, addr, A).await;
    let started = start(&t, json!({"Target": A})).await;
    let id = id_of(&started);
    agent.interactive_shell().await;
    let mut client = open_client(addr, &id, started["TokenValue"].as_str().unwrap()).await;
    let mut data = agent.open_data(&t, addr, &id).await;
    data.send(Ws::Binary(session_state(&id, "Connected").into()))
        .await
        .unwrap();
    wait_status(&t, &id, SessionStatus::Connected).await;

    let r = t
        .call("TerminateSession", json!({"SessionId": id}))
        .await
        .ok();
    assert_eq!(r, json!({"SessionId": id}));
    let to_agent = agent.control_frame().await;
    assert_eq!(to_agent.message_type, MessageType::ChannelClosed);
    let payload: ChannelClosed = serde_json::from_slice(&to_agent.payload).unwrap();
    assert_eq!(
        (payload.session_id.as_str(), payload.destination_id.as_str()),
        (id.as_str(), A)
    );
    channel_closed(&next_frame(&mut client).await.unwrap());
    assert!(next_frame(&mut client).await.is_none());
    assert!(
        next_frame(&mut data).await.is_none(),
        "the agent's data socket is closed"
    );
    assert_eq!(t.emu.session_status(&id), Some(SessionStatus::Terminated));
    // Idempotent, and the agent's own agent_task_complete afterwards changes nothing.
    t.call("TerminateSession", json!({"SessionId": id}))
        .await
        .ok();
    agent.task_complete(&id, "Success", "").await;
    assert_eq!(t.emu.session_status(&id), Some(SessionStatus::Terminated));
    t.call("ResumeSession", json!({"SessionId": id}))
        .await
        .client_error("DoesNotExistException");
}

#[tokio::test]
async fn resume_session_reattaches_the_client_and_delivers_what_was_queued() {
    let t = TestEmu::new();
    let addr = serve(&t).await;
    let mut agent = Agent::connect(&t, addr, A).await;
    let started = start(&t, json!({"Target": A})).await;
    let id = id_of(&started);
    let token = started["TokenValue"].as_str().unwrap().to_owned();
    agent.interactive_shell().await;
    let mut data = agent.open_data(&t, addr, &id).await;
    data.send(Ws::Binary(session_state(&id, "Connected").into()))
        .await
        .unwrap();
    let client = open_client(addr, &id, &token).await;
    wait_status(&t, &id, SessionStatus::Connected).await;

    // The client goes away without TerminateSession.
    drop(client);
    wait_status(&t, &id, SessionStatus::Disconnected).await;
    let out = frame(
        MessageType::OutputStreamData,
        3,
        Flags::NONE,
        PayloadType::Output,
        b"later",
    );
    data.send(Ws::Binary(out.clone().into())).await.unwrap();

    // A used token is refused.
    let mut reused = open_client(addr, &id, &token).await;
    assert!(next_frame(&mut reused).await.is_none());

    let resumed = t.call("ResumeSession", json!({"SessionId": id})).await.ok();
    assert_eq!(resumed["SessionId"], id.as_str());
    assert_eq!(resumed["StreamUrl"], started["StreamUrl"]);
    let new_token = resumed["TokenValue"].as_str().unwrap();
    assert_ne!(new_token, token);
    let mut client = open_client(addr, &id, new_token).await;
    assert_eq!(next_frame(&mut client).await.unwrap(), out);
    wait_status(&t, &id, SessionStatus::Connected).await;

    // The new connection works both ways.
    let keys = frame(
        MessageType::InputStreamData,
        5,
        Flags::NONE,
        PayloadType::Output,
        b"x",
    );
    client.send(Ws::Binary(keys.clone().into())).await.unwrap();
    assert_eq!(next_frame(&mut data).await.unwrap(), keys);
}

#[tokio::test]
async fn wrong_tokens_are_refused() {
    let t = TestEmu::new();
    let addr = serve(&t).await;
    let mut agent = Agent::connect(&t, addr, A).await;
    let started = start(&t, json!({"Target": A})).await;
    let id = id_of(&started);
    agent.interactive_shell().await;
    // A made-up client token; the agent's token presented as a client's.
    let mut ws = open_client(addr, &id, "nope").await;
    assert!(next_frame(&mut ws).await.is_none());
    let (_, xml) = post(&t, &format!("/v1/data-channel/{id}"), "{}").await;
    let mut ws = open_client(addr, &id, &token_of(&xml)).await;
    assert!(next_frame(&mut ws).await.is_none());
    // The client's token presented by the agent.
    let url = format!("ws://{addr}/v1/data-channel/{id}?role=publish_subscribe");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let open = json!({"MessageSchemaVersion": "1.0", "RequestId": "r",
        "TokenValue": started["TokenValue"], "ClientInstanceId": A, "ClientId": ""});
    ws.send(Ws::Text(open.to_string().into())).await.unwrap();
    assert!(next_frame(&mut ws).await.is_none());
    // Unknown session: CreateDataChannel says 400.
    let (status, _) = post(&t, "/v1/data-channel/emulator-00000000000000000", "{}").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn api_errors_have_their_aws_types() {
    let t = TestEmu::new();
    let addr = serve(&t).await;
    t.report(B).await; // known, but without a control channel
    let _agent = Agent::connect(&t, addr, A).await;

    t.call("StartSession", json!({}))
        .await
        .client_error("ValidationException");
    t.call("StartSession", json!({"Target": "i-0000000000000000f"}))
        .await
        .client_error("TargetNotConnected");
    t.call("StartSession", json!({"Target": B}))
        .await
        .client_error("TargetNotConnected");
    t.call(
        "StartSession",
        json!({"Target": A, "DocumentName": "No-Such-Doc"}),
    )
    .await
    .client_error("InvalidDocument");
    t.call(
        "StartSession",
        json!({"Target": A, "DocumentName": "AWS-RunShellScript"}),
    )
    .await
    .client_error("InvalidDocument");
    t.call(
        "StartSession",
        json!({"Target": A, "DocumentName": "AWS-StartPortForwardingSession",
               "Parameters": {"nope": ["1"]}}),
    )
    .await
    .client_error("InvalidParameters");
    t.call("StartSession", json!({"Target": A, "DocumentName": "x"}))
        .await
        .client_error("ValidationException");
    t.call(
        "ResumeSession",
        json!({"SessionId": "emulator-00000000000000000"}),
    )
    .await
    .client_error("DoesNotExistException");
    t.call("ResumeSession", json!({}))
        .await
        .client_error("ValidationException");
    t.call("TerminateSession", json!({}))
        .await
        .client_error("ValidationException");
    t.call("DescribeSessions", json!({}))
        .await
        .client_error("ValidationException");
    t.call("DescribeSessions", json!({"State": "Soon"}))
        .await
        .client_error("ValidationException");
    t.call(
        "DescribeSessions",
        json!({"State": "Active", "MaxResults": 201}),
    )
    .await
    .client_error("ValidationException");
    t.call(
        "DescribeSessions",
        json!({"State": "Active", "Filters": [{"key": "Color", "value": "x"}]}),
    )
    .await
    .client_error("InvalidFilterKey");
    t.call(
        "DescribeSessions",
        json!({"State": "Active", "NextToken": "garbage"}),
    )
    .await
    .client_error("InvalidNextToken");
}

#[tokio::test]
async fn describe_sessions_filters_and_pages_newest_first() {
    let t = TestEmu::new();
    let addr = serve(&t).await;
    let mut a = Agent::connect(&t, addr, A).await;
    let mut b = Agent::connect(&t, addr, B).await;
    let mut ids = Vec::new();
    for target in [A, B, A] {
        let started = start(&t, json!({"Target": target, "Reason": "r"})).await;
        ids.push(id_of(&started));
        if target == A {
            a.interactive_shell().await;
        } else {
            b.interactive_shell().await;
        }
        t.clock.advance(Duration::from_secs(10));
    }
    t.call("TerminateSession", json!({"SessionId": ids[0]}))
        .await
        .ok();

    let active = describe(&t, json!({"State": "Active"})).await;
    let got: Vec<&str> = active
        .iter()
        .map(|s| s["SessionId"].as_str().unwrap())
        .collect();
    assert_eq!(got, [ids[2].as_str(), ids[1].as_str()], "newest first");
    assert_eq!(active[0]["Status"], "Connecting");
    assert_eq!(active[0]["Reason"], "r");
    assert_eq!(
        active[0]["Owner"],
        "arn:aws:iam::123456789012:user/emulator"
    );
    assert_eq!(active[0]["DocumentName"], "SSM-SessionManagerRunShell");
    let history = describe(&t, json!({"State": "History"})).await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["SessionId"], ids[0].as_str());

    let f = |key: &str, value: &str| json!({"State": "Active", "Filters": [{"key": key, "value": value}]});
    assert_eq!(describe(&t, f("Target", B)).await.len(), 1);
    assert_eq!(describe(&t, f("SessionId", &ids[2])).await.len(), 1);
    assert_eq!(describe(&t, f("Status", "Connecting")).await.len(), 2);
    assert_eq!(describe(&t, f("Status", "Connected")).await.len(), 0);
    assert_eq!(describe(&t, f("Owner", "Self")).await.len(), 2);
    assert_eq!(describe(&t, f("AccessType", "Standard")).await.len(), 2);
    assert_eq!(
        describe(&t, f("InvokedAfter", "2023-11-14T22:13:25Z"))
            .await
            .len(),
        2
    );
    assert_eq!(
        describe(&t, f("InvokedBefore", "2023-11-14T22:13:25Z"))
            .await
            .len(),
        0
    );

    let page = t
        .call(
            "DescribeSessions",
            json!({"State": "Active", "MaxResults": 1}),
        )
        .await
        .ok();
    assert_eq!(page["Sessions"][0]["SessionId"], ids[2].as_str());
    let token = page["NextToken"].as_str().unwrap();
    let page = t
        .call(
            "DescribeSessions",
            json!({"State": "Active", "MaxResults": 1, "NextToken": token}),
        )
        .await
        .ok();
    assert_eq!(page["Sessions"][0]["SessionId"], ids[1].as_str());
    assert!(page.get("NextToken").is_none());
}

// ---------------------------------------------------------------------------------------------
// Session Manager preferences, idle and maximum duration, the clock route and the audit trail.

/// GETs `path` through `app().oneshot`; returns the status and the body.
async fn get(t: &TestEmu, path: &str) -> (u16, Vec<u8>) {
    let request = Request::get(path).body(Body::empty()).unwrap();
    let response = app(t.emu.clone()).oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, bytes.to_vec())
}

async fn get_json(t: &TestEmu, path: &str) -> Value {
    let (status, body) = get(t, path).await;
    assert_eq!(
        status,
        200,
        "GET {path}: {}",
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice(&body).unwrap()
}

/// Saves `inputs` as the account's Session Manager preferences the way the user guide does:
/// UpdateDocument of `SSM-SessionManagerRunShell` at `$LATEST`.
async fn set_preferences(t: &TestEmu, inputs: Value) {
    let content = json!({"schemaVersion": "1.0",
        "description": "Document to hold regional settings for Session Manager",
        "sessionType": "Standard_Stream", "inputs": inputs});
    t.call(
        "UpdateDocument",
        json!({"Name": "SSM-SessionManagerRunShell", "Content": content.to_string(),
               "DocumentVersion": "$LATEST"}),
    )
    .await
    .ok();
}

/// A shell session with both ends attached and the agent Connected.
struct Live {
    id: String,
    client: Socket,
    data: Socket,
}

async fn live_session(t: &TestEmu, addr: SocketAddr, agent: &mut Agent, body: Value) -> Live {
    let started = start(t, body).await;
    let id = id_of(&started);
    agent.interactive_shell().await;
    let client = open_client(addr, &id, started["TokenValue"].as_str().unwrap()).await;
    let mut data = agent.open_data(t, addr, &id).await;
    data.send(Ws::Binary(session_state(&id, "Connected").into()))
        .await
        .unwrap();
    wait_status(t, &id, SessionStatus::Connected).await;
    Live { id, client, data }
}

/// Keystrokes with sequence number `seq`.
fn keys(seq: i64) -> Vec<u8> {
    frame(
        MessageType::InputStreamData,
        seq,
        Flags::NONE,
        PayloadType::Output,
        b"x",
    )
}

/// The client sends `f` and the agent receives it: the emulator has read it.
async fn client_to_agent(live: &mut Live, f: Vec<u8>) {
    live.client
        .send(Ws::Binary(f.clone().into()))
        .await
        .unwrap();
    assert_eq!(next_frame(&mut live.data).await.unwrap(), f);
}

/// Checks that session `id` ended: the client got `channel_closed` with `output` and its
/// socket closed, the agent got `channel_closed` on its control channel, the data socket
/// closed, and the status is Terminated.
async fn ended_for_both_ends(t: &TestEmu, agent: &mut Agent, live: &mut Live, output: &str) {
    let closed = channel_closed(&next_frame(&mut live.client).await.unwrap());
    assert_eq!(
        (closed.session_id.as_str(), closed.output.as_str()),
        (live.id.as_str(), output)
    );
    assert!(next_frame(&mut live.client).await.is_none());
    let to_agent = agent.control_frame().await;
    assert_eq!(to_agent.message_type, MessageType::ChannelClosed);
    let to_agent: ChannelClosed = serde_json::from_slice(&to_agent.payload).unwrap();
    assert_eq!(to_agent.session_id, live.id);
    assert!(next_frame(&mut live.data).await.is_none());
    assert_eq!(
        t.emu.session_status(&live.id),
        Some(SessionStatus::Terminated)
    );
}

#[tokio::test]
async fn preferences_saved_with_update_document_reach_the_agent_and_describe_sessions() {
    let t = TestEmu::new();
    let addr = serve(&t).await;
    let mut agent = Agent::connect(&t, addr, A).await;
    set_preferences(
        &t,
        json!({"s3BucketName": "audit-bucket", "s3KeyPrefix": "sessions/",
            "s3EncryptionEnabled": false, "cloudWatchLogGroupName": "/ssm/sessions",
            "cloudWatchStreamingEnabled": true, "cloudWatchEncryptionEnabled": false,
            "idleSessionTimeout": "5", "maxSessionDuration": "90", "kmsKeyId": "",
            "runAsEnabled": true, "runAsDefaultUser": "nobody",
            "shellProfile": {"windows": "", "linux": "cd /tmp"}}),
    )
    .await;
    let want = json!({"s3BucketName": "audit-bucket", "s3KeyPrefix": "sessions/",
        "s3EncryptionEnabled": false, "cloudWatchLogGroupName": "/ssm/sessions",
        "cloudWatchStreamingEnabled": true, "cloudWatchEncryptionEnabled": false,
        "kmsKeyId": "", "runAsEnabled": true, "runAsDefaultUser": "nobody",
        "shellProfile": {"windows": "", "linux": "cd /tmp"}});

    // The shell gets them, with the ten keys of the recorded traces in their order and nothing
    // the agent does not read.
    let shell = start(&t, json!({"Target": A})).await;
    let (payload, task) = agent.interactive_shell().await;
    assert_eq!(task["DocumentContent"]["inputs"], want);
    let text = &payload.content;
    let at = |k: &str| text.find(&format!("\"{k}\":")).unwrap();
    let order = [
        "s3BucketName",
        "s3KeyPrefix",
        "s3EncryptionEnabled",
        "cloudWatchLogGroupName",
        "cloudWatchStreamingEnabled",
        "cloudWatchEncryptionEnabled",
        "kmsKeyId",
        "runAsEnabled",
        "runAsDefaultUser",
        "shellProfile",
    ];
    assert!(order.windows(2).all(|w| at(w[0]) < at(w[1])), "{text}");
    assert!(
        !text.contains("idleSessionTimeout") && !text.contains("maxSessionDuration"),
        "{text}"
    );
    // A port session carries the account's preferences too (agent-port.jsonl).
    start(
        &t,
        json!({"Target": A, "DocumentName": "AWS-StartPortForwardingSession",
               "Parameters": {"portNumber": ["8080"]}}),
    )
    .await;
    let (_, task) = agent.interactive_shell().await;
    assert_eq!(task["DocumentContent"]["sessionType"], "Port");
    assert_eq!(task["DocumentContent"]["inputs"], want);

    let id = id_of(&shell);
    let active = describe(&t, json!({"State": "Active"})).await;
    assert_eq!(active.len(), 2);
    assert!(active.iter().all(|s| s["MaxSessionDuration"] == "90"));
    let item = active
        .iter()
        .find(|s| s["SessionId"] == id.as_str())
        .unwrap();
    assert_eq!(
        item["OutputUrl"],
        json!({"S3OutputUrl": format!("http://localhost/_emulator/s3/audit-bucket/sessions/{id}.log"),
               "CloudWatchOutputUrl": format!("http://localhost/_emulator/cloudwatch/%2Fssm%2Fsessions/{id}")})
    );
    let record = get_json(&t, &format!("/_emulator/sessions/{id}")).await;
    assert_eq!(
        (&record["idleSessionTimeout"], &record["maxSessionDuration"]),
        (&json!("5"), &json!("90"))
    );

    // A Standard_Stream document of the account's is a session-level preferences document.
    let own = json!({"schemaVersion": "1.0", "description": "Mine", "sessionType": "Standard_Stream",
        "inputs": {"idleSessionTimeout": "3", "runAsEnabled": false}});
    t.call(
        "CreateDocument",
        json!({"Name": "My-Shell", "Content": own.to_string(), "DocumentType": "Session"}),
    )
    .await
    .ok();
    let mine = start(&t, json!({"Target": A, "DocumentName": "My-Shell"})).await;
    let (_, task) = agent.interactive_shell().await;
    assert_eq!(task["DocumentContent"]["inputs"]["runAsEnabled"], false);
    assert_eq!(task["DocumentContent"]["inputs"]["s3BucketName"], "");
    let record = get_json(&t, &format!("/_emulator/sessions/{}", id_of(&mine))).await;
    assert_eq!(record["idleSessionTimeout"], "3");
    assert_eq!(record["maxSessionDuration"], Value::Null);

    // Preferences the service would not accept stop new sessions, with a message saying why.
    set_preferences(&t, json!({"idleSessionTimeout": "90"})).await;
    let message = t
        .call("StartSession", json!({"Target": A}))
        .await
        .client_error("InvalidDocument");
    assert!(message.contains("idleSessionTimeout"), "{message}");

    // Without the document (an account that never saved preferences): the defaults.
    t.call(
        "DeleteDocument",
        json!({"Name": "SSM-SessionManagerRunShell"}),
    )
    .await
    .ok();
    let plain = start(&t, json!({"Target": A})).await;
    let (_, task) = agent.interactive_shell().await;
    assert_eq!(task["DocumentName"], "SSM-SessionManagerRunShell");
    assert_eq!(task["DocumentContent"]["inputs"]["runAsEnabled"], false);
    assert_eq!(task["DocumentContent"]["inputs"]["s3BucketName"], "");
    let active = describe(&t, json!({"State": "Active"})).await;
    let item = active
        .iter()
        .find(|s| s["SessionId"] == plain["SessionId"])
        .unwrap();
    assert_eq!(item["OutputUrl"], json!({}));
    assert!(item.get("MaxSessionDuration").is_none(), "{item}");
}

#[tokio::test]
async fn a_session_without_data_for_the_idle_timeout_ends_for_both_ends() {
    let t = TestEmu::new();
    let addr = serve(&t).await;
    let mut agent = Agent::connect(&t, addr, A).await;
    set_preferences(&t, json!({"idleSessionTimeout": "1"})).await;
    let mut live = live_session(&t, addr, &mut agent, json!({"Target": A})).await;

    // Keystrokes 30 s in are activity.
    t.clock.advance(Duration::from_secs(30));
    client_to_agent(&mut live, keys(0)).await;
    // Acknowledgements and resent keystrokes are not.
    t.clock.advance(Duration::from_secs(50));
    let ack = frame(MessageType::Acknowledge, 0, Flags::ACK, PayloadType::Undefined,
        br#"{"AcknowledgedMessageType":"output_stream_data","AcknowledgedMessageId":"x","AcknowledgedMessageSequenceNumber":0,"IsSequentialMessage":true}"#);
    client_to_agent(&mut live, ack).await;
    client_to_agent(&mut live, keys(0)).await;
    t.emu.sweep_sessions();
    assert_eq!(
        t.emu.session_status(&live.id),
        Some(SessionStatus::Connected),
        "50 s without data"
    );

    t.clock.advance(Duration::from_secs(10));
    t.emu.sweep_sessions();
    ended_for_both_ends(
        &t,
        &mut agent,
        &mut live,
        "Your session timed out due to inactivity and has been terminated.",
    )
    .await;
    let record = get_json(&t, &format!("/_emulator/sessions/{}", live.id)).await;
    assert_eq!(record["status"], "Terminated");
    assert_eq!(record["endReason"], "IdleSessionTimeout");
    assert_eq!(record["lastActivity"], "2023-11-14T22:13:50Z");
    assert_eq!(record["endDate"], "2023-11-14T22:14:50Z");
    let history = describe(&t, json!({"State": "History"})).await;
    assert_eq!(history[0]["Status"], "Terminated");
}

#[tokio::test]
async fn a_session_reaching_its_maximum_duration_ends_however_busy() {
    let t = TestEmu::new();
    let addr = serve(&t).await;
    let mut agent = Agent::connect(&t, addr, A).await;
    set_preferences(
        &t,
        json!({"idleSessionTimeout": "1", "maxSessionDuration": "2"}),
    )
    .await;
    let mut live = live_session(&t, addr, &mut agent, json!({"Target": A})).await;

    for seq in 0..2 {
        t.clock.advance(Duration::from_secs(40));
        client_to_agent(&mut live, keys(seq)).await;
        t.emu.sweep_sessions();
        assert_eq!(
            t.emu.session_status(&live.id),
            Some(SessionStatus::Connected)
        );
    }
    t.clock.advance(Duration::from_secs(40));
    t.emu.sweep_sessions();
    ended_for_both_ends(
        &t,
        &mut agent,
        &mut live,
        ssm_emulator::sessions::MAX_DURATION_OUTPUT,
    )
    .await;
    assert_eq!(
        t.emu.session_end_reason(&live.id),
        Some(ssm_emulator::sessions::EndReason::MaxSessionDuration)
    );
}

#[tokio::test]
async fn a_disconnected_session_ends_after_the_idle_timeout() {
    let t = TestEmu::new();
    let addr = serve(&t).await;
    let mut agent = Agent::connect(&t, addr, A).await;
    let live = live_session(&t, addr, &mut agent, json!({"Target": A})).await;
    let (id, mut data) = (live.id, live.data);
    drop(live.client);
    wait_status(&t, &id, SessionStatus::Disconnected).await;

    // New output 10 minutes in is activity, even with nobody to read it.
    t.clock.advance(Duration::from_secs(600));
    let out = frame(
        MessageType::OutputStreamData,
        0,
        Flags::SYN,
        PayloadType::Output,
        b"done\r\n",
    );
    data.send(Ws::Binary(out.into())).await.unwrap();
    tokio::time::timeout(HANG, async {
        while t.emu.session_relay_stats(&id).unwrap().agent_frames == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the output reaches the relay");
    t.clock.advance(Duration::from_secs(19 * 60));
    t.emu.sweep_sessions();
    assert_eq!(t.emu.session_status(&id), Some(SessionStatus::Disconnected));

    t.clock.advance(Duration::from_secs(60));
    t.emu.sweep_sessions();
    assert_eq!(t.emu.session_status(&id), Some(SessionStatus::Terminated));
    let to_agent = agent.control_frame().await;
    assert_eq!(to_agent.message_type, MessageType::ChannelClosed);
    assert!(next_frame(&mut data).await.is_none());
    t.call("ResumeSession", json!({"SessionId": id}))
        .await
        .client_error("DoesNotExistException");
}

#[tokio::test]
async fn the_clock_route_moves_time_and_the_sweeper_expires_sessions() {
    let t = TestEmu::new();
    let addr = serve(&t).await;
    let mut agent = Agent::connect(&t, addr, A).await;
    let clock = get_json(&t, "/_emulator/clock").await;
    assert_eq!(
        clock,
        json!({"now": "2023-11-14T22:13:20Z", "epochSeconds": 1_700_000_000.0, "offsetSeconds": 0})
    );

    // Started and never joined by a client: idle from its start (20 minutes by default).
    let id = id_of(&start(&t, json!({"Target": A})).await);
    agent.interactive_shell().await;
    let (status, body) = post(&t, "/_emulator/clock", r#"{"advanceSeconds": 1199}"#).await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["expiredSessions"], json!([]));
    assert_eq!(body["offsetSeconds"], 1199);
    let (_, body) = post(&t, "/_emulator/clock", r#"{"advanceSeconds": 1}"#).await;
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["expiredSessions"], json!([id]));
    assert_eq!(body["now"], "2023-11-14T22:33:20Z");
    assert_eq!(t.emu.session_status(&id), Some(SessionStatus::Terminated));
    assert_eq!(
        agent.control_frame().await.message_type,
        MessageType::ChannelClosed
    );
    // StartDate/EndDate of the History are on the moved clock.
    let history = describe(&t, json!({"State": "History"})).await;
    assert_eq!(history[0]["EndDate"], 1_700_001_200.0);

    for bad in [
        r#"{"advanceSeconds": -5}"#,
        r#"{"advanceSeconds": "60"}"#,
        r#"{"seconds": 60}"#,
        "nope",
    ] {
        let (status, body) = post(&t, "/_emulator/clock", bad).await;
        assert_eq!(status, 400, "{bad}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["__type"], "ValidationException", "{bad}");
        assert!(
            body["message"].as_str().unwrap().contains("advanceSeconds"),
            "{body}"
        );
    }

    // The sweeper notices a moved clock by itself (bounded wait; it ticks every second).
    let id = id_of(&start(&t, json!({"Target": A})).await);
    agent.interactive_shell().await;
    t.clock.advance(Duration::from_secs(20 * 60));
    wait_status(&t, &id, SessionStatus::Terminated).await;
    assert_eq!(
        t.emu.session_end_reason(&id),
        Some(ssm_emulator::sessions::EndReason::IdleSessionTimeout)
    );
}

#[tokio::test]
async fn the_audit_record_and_output_urls_serve_what_happened() {
    let t = TestEmu::new();
    let addr = serve(&t).await;
    let mut agent = Agent::connect(&t, addr, A).await;
    set_preferences(
        &t,
        json!({"s3BucketName": "audit-bucket", "s3KeyPrefix": "team/a",
               "cloudWatchLogGroupName": "/ssm/sessions"}),
    )
    .await;
    let mut live = live_session(
        &t,
        addr,
        &mut agent,
        json!({"Target": A, "Reason": "audit"}),
    )
    .await;
    let id = live.id.clone();
    let out = frame(
        MessageType::OutputStreamData,
        0,
        Flags::SYN,
        PayloadType::Output,
        b"$ whoami\r\nnobody\r\n",
    );
    live.data.send(Ws::Binary(out.into())).await.unwrap();
    next_frame(&mut live.client).await.unwrap();
    t.clock.advance(Duration::from_secs(5));
    t.call("TerminateSession", json!({"SessionId": id}))
        .await
        .ok();

    let record = get_json(&t, &format!("/_emulator/sessions/{id}")).await;
    let s3 = format!("http://localhost/_emulator/s3/audit-bucket/team/a/{id}.log");
    let cw = format!("http://localhost/_emulator/cloudwatch/%2Fssm%2Fsessions/{id}");
    assert_eq!(
        record,
        json!({"sessionId": id, "owner": "arn:aws:iam::123456789012:user/emulator",
            "target": A, "documentName": "SSM-SessionManagerRunShell", "reason": "audit",
            "status": "Terminated", "startDate": "2023-11-14T22:13:20Z",
            "endDate": "2023-11-14T22:13:25Z", "endReason": "TerminateSession",
            "lastActivity": "2023-11-14T22:13:20Z", "idleSessionTimeout": "20",
            "maxSessionDuration": null,
            "transcriptUrl": format!("http://localhost/_emulator/sessions/{id}/transcript"),
            "outputUrl": {"S3OutputUrl": s3, "CloudWatchOutputUrl": cw}})
    );
    let history = describe(&t, json!({"State": "History"})).await;
    assert_eq!(history[0]["OutputUrl"], record["outputUrl"]);
    for url in [&s3, &cw] {
        let path = url.strip_prefix("http://localhost").unwrap();
        assert_eq!(
            get(&t, path).await,
            (200, b"$ whoami\r\nnobody\r\n".to_vec()),
            "{path}"
        );
    }
    for path in [
        "/_emulator/s3/audit-bucket/team/a/emulator-00000000000000000.log".to_owned(),
        format!("/_emulator/s3/other-bucket/team/a/{id}.log"),
        format!("/_emulator/cloudwatch/other/{id}"),
        "/_emulator/sessions/emulator-00000000000000000".to_owned(),
    ] {
        let (status, body) = get(&t, &path).await;
        assert_eq!(status, 404, "{path}");
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert!(body["message"].is_string(), "{body}");
    }
}

#[tokio::test]
async fn a_lost_agent_data_channel_is_disconnected_until_the_agent_dials_again() {
    let t = TestEmu::new();
    let addr = serve(&t).await;
    let mut agent = Agent::connect(&t, addr, A).await;
    let mut live = live_session(&t, addr, &mut agent, json!({"Target": A})).await;

    // The agent's link goes (a dead proxy, an agent-link cut): its data socket is gone while
    // the client is still there.
    drop(live.data);
    wait_status(&t, &live.id, SessionStatus::Disconnected).await;
    let listed = describe(&t, json!({"State": "Active"})).await;
    assert_eq!(listed[0]["Status"], "Disconnected");

    // The agent re-dials its data channel (§9.1): the session is Connected again and frames
    // flow both ways on the new socket.
    live.data = agent.open_data(&t, addr, &live.id).await;
    wait_status(&t, &live.id, SessionStatus::Connected).await;
    client_to_agent(&mut live, keys(0)).await;
}
