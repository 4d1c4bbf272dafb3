//! Fault injection through the admin API (`/_emulator/faults`, `seed`, `reset`) and the
//! `ssm-emulator fault` client, over the real HTTP and websocket stack: a fake agent and a fake
//! client (shaped like agent-shell.jsonl and plugin-shell.jsonl) talk through the relay while
//! rules drop, close and pause; API rules answer SSM requests with errors.
//!
//! Run with `cargo test -p ssm-emulator --test faults`.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use ssm_emulator::faults::cli;
use ssm_emulator::sessions::SessionStatus;
use ssm_emulator::{app, run};
use ssm_protocol::message::Header;
use ssm_protocol::{Flags, Message, MessageType, PayloadType, Validation};
use support::TestEmu;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tower::ServiceExt;
use uuid::Uuid;

const A: &str = "i-0123456789abcdef0";

/// How long a test waits for something before failing (a hang guard, never a timing check).
const HANG: Duration = Duration::from_secs(10);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn fresh() -> Uuid {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    Uuid::from_u128(0xfa17_0000_0000_0000_0000 + u128::from(NEXT.fetch_add(1, Ordering::Relaxed)))
}

async fn serve(t: &TestEmu) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(run(listener, t.emu.clone(), std::future::pending()));
    addr
}

/// An admin request through the app; the status and the JSON answer.
async fn admin(t: &TestEmu, method: &str, path: &str, body: &str) -> (u16, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = app(t.emu.clone()).oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

/// Adds `rule`; its id.
async fn add(t: &TestEmu, rule: Value) -> String {
    let (status, answer) = admin(t, "POST", "/_emulator/faults", &rule.to_string()).await;
    assert_eq!(status, 200, "{answer}");
    answer["id"].as_str().unwrap().to_owned()
}

/// The listed rule `id`.
async fn listed(t: &TestEmu, id: &str) -> Value {
    let (_, list) = admin(t, "GET", "/_emulator/faults", "").await;
    list["faults"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("{id} not in {list}"))
}

async fn post(t: &TestEmu, path: &str, body: &str) -> (u16, String) {
    let request = Request::post(path)
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

fn output(seq: i64, text: &str) -> Vec<u8> {
    let mut m = Message::new(MessageType::OutputStreamData, 1_795_387_417_975, fresh());
    m.sequence_number = seq;
    m.flags = if seq == 0 { Flags::SYN } else { Flags::NONE };
    m.payload_type = PayloadType::Output;
    m.payload = text.as_bytes().to_vec();
    m.encode()
}

/// What a socket gave next.
#[derive(Debug)]
enum Got {
    Frame(Vec<u8>),
    Closed(Option<(u16, String)>),
}

async fn next(ws: &mut Socket) -> Got {
    loop {
        let next = tokio::time::timeout(HANG, ws.next()).await.expect("hang");
        match next {
            Some(Ok(Ws::Binary(bytes))) => return Got::Frame(bytes.to_vec()),
            Some(Ok(Ws::Ping(_) | Ws::Pong(_) | Ws::Frame(_))) => {}
            Some(Ok(Ws::Text(t))) => panic!("unexpected text frame {t}"),
            Some(Ok(Ws::Close(close))) => {
                return Got::Closed(close.map(|c| (u16::from(c.code), c.reason.to_string())));
            }
            None | Some(Err(_)) => return Got::Closed(None),
        }
    }
}

async fn next_frame(ws: &mut Socket) -> Message {
    match next(ws).await {
        Got::Frame(bytes) => Message::decode(&bytes, Validation::Structure).unwrap(),
        Got::Closed(close) => panic!("closed: {close:?}"),
    }
}

/// A session with a fake agent (control channel and data channel, reported Connected) and a
/// fake client, both attached.
struct Session {
    id: String,
    agent: Socket,
    client: Socket,
    _control: Socket,
}

async fn session(t: &TestEmu, addr: SocketAddr) -> Session {
    t.report(A).await;
    let (status, xml) = post(
        t,
        &format!("/v1/control-channel/{A}"),
        r#"{"MessageSchemaVersion":"1.0","RequestId":"725389f2-0211-41b3-bdea-aec11a06c7d3"}"#,
    )
    .await;
    assert_eq!(status, 201);
    let url = format!("ws://{addr}/v1/control-channel/{A}?role=subscribe&stream=input");
    let (mut control, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let open = json!({"Cookie": null, "MessageSchemaVersion": "1.0",
        "RequestId": fresh().to_string(), "TokenValue": token_of(&xml),
        "AgentVersion": "3.3.1142.0", "PlatformType": "linux"});
    control
        .send(Ws::Text(open.to_string().into()))
        .await
        .unwrap();
    let scope = t.emu.scope("us-east-1");
    while !t.emu.control_channel_open(&scope, A) {
        tokio::task::yield_now().await;
    }
    let started = t.call("StartSession", json!({"Target": A})).await.ok();
    let id = started["SessionId"].as_str().unwrap().to_owned();
    let token = started["TokenValue"].as_str().unwrap().to_owned();

    let (status, xml) = post(t, &format!("/v1/data-channel/{id}"), "{}").await;
    assert_eq!(status, 201, "{xml}");
    let url = format!("ws://{addr}/v1/data-channel/{id}?role=publish_subscribe");
    let (mut agent, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let open = json!({"MessageSchemaVersion": "1.0", "RequestId": fresh().to_string(),
        "TokenValue": token_of(&xml), "ClientInstanceId": A, "ClientId": ""});
    agent.send(Ws::Text(open.to_string().into())).await.unwrap();
    let state = json!({"SchemaVersion": 1, "SessionState": "Connected", "SessionId": id});
    let mut m = Message::new(MessageType::AgentSessionState, 1_795_387_417_975, fresh());
    m.flags = Flags::ACK;
    m.payload = state.to_string().into_bytes();
    agent.send(Ws::Binary(m.encode().into())).await.unwrap();

    let (mut client, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let open = json!({"MessageSchemaVersion": "1.0", "RequestId": fresh().to_string(),
        "TokenValue": token, "ClientId": "6e1f0c2d-3b4a-4d5e-8f90-a1b2c3d4e5f6",
        "ClientVersion": "1.2.677.0"});
    client
        .send(Ws::Text(open.to_string().into()))
        .await
        .unwrap();
    wait_status(t, &id, SessionStatus::Connected).await;
    Session {
        id,
        agent,
        client,
        _control: control,
    }
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

#[tokio::test]
async fn dropped_frames_never_reach_the_client_and_are_counted() {
    let t = TestEmu::new();
    let addr = serve(&t).await;
    let mut s = session(&t, addr).await;
    let (status, _) = admin(&t, "POST", "/_emulator/seed", r#"{"seed": 42}"#).await;
    assert_eq!(status, 200);
    let id = add(
        &t,
        json!({"relay": {"action": {"drop": {"probability": 0.5}},
            "direction": "agentToClient", "sessionId": s.id}}),
    )
    .await;
    for seq in 0..40 {
        s.agent
            .send(Ws::Binary(output(seq, &format!("line {seq}\r\n")).into()))
            .await
            .unwrap();
    }
    // The client's frames are not watched by the rule: its ack reaches the agent.
    s.client
        .send(Ws::Binary(output(0, "ack-shaped").into()))
        .await
        .unwrap();
    assert_eq!(next_frame(&mut s.agent).await.payload, b"ack-shaped");

    let rule = tokio::time::timeout(HANG, async {
        loop {
            let rule = listed(&t, &id).await;
            if rule["matched"] == 40 {
                return rule;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the relay never saw the 40 frames");
    let dropped = rule["injected"].as_u64().unwrap();
    assert!((5..35).contains(&dropped), "dropped {dropped} of 40");
    let (status, _) = admin(&t, "DELETE", &format!("/_emulator/faults/{id}"), "").await;
    assert_eq!(status, 200);
    s.agent
        .send(Ws::Binary(output(40, "end").into()))
        .await
        .unwrap();

    let mut got = Vec::new();
    loop {
        let m = next_frame(&mut s.client).await;
        if m.payload == b"end" {
            break;
        }
        got.push(m.sequence_number);
    }
    assert_eq!(got.len() as u64, 40 - dropped, "got {got:?}");
    assert!(got.windows(2).all(|w| w[0] < w[1]), "out of order: {got:?}");
    let (_, list) = admin(&t, "GET", "/_emulator/faults", "").await;
    assert_eq!(list["faults"], json!([]));
    assert_eq!(list["totals"]["drop"], dropped);
    assert_eq!(list["seed"], 42);
}

#[tokio::test]
async fn close_after_n_frames_sends_the_close_code_after_the_nth() {
    let t = TestEmu::new();
    let addr = serve(&t).await;
    let mut s = session(&t, addr).await;
    let id = add(
        &t,
        json!({"relay": {"action": {"close": {"code": 4000, "reason": "fault"}},
            "direction": "agentToClient", "afterFrames": 2}}),
    )
    .await;
    for seq in 0..3 {
        s.agent
            .send(Ws::Binary(output(seq, &format!("{seq}")).into()))
            .await
            .unwrap();
    }
    assert_eq!(next_frame(&mut s.client).await.sequence_number, 0);
    assert_eq!(next_frame(&mut s.client).await.sequence_number, 1);
    match next(&mut s.client).await {
        Got::Closed(close) => assert_eq!(close, Some((4000, "fault".to_owned()))),
        Got::Frame(f) => panic!("frame after the close: {:?}", Header::parse(&f)),
    }
    wait_status(&t, &s.id, SessionStatus::Disconnected).await;
    assert_eq!(listed(&t, &id).await["injected"], 1);
    // The client is gone: the service pauses the agent until it is back (§3.5, §5).
    assert_eq!(
        next_frame(&mut s.agent).await.message_type,
        MessageType::PausePublication
    );
    // The agent's socket stays open: its frame waits for the client's next connection.
    let default_close = add(
        &t,
        json!({"relay": {"action": {"close": {"end": "agent"}}}}),
    )
    .await;
    match next(&mut s.agent).await {
        Got::Closed(close) => assert_eq!(close, Some((u16::from(CloseCode::Normal), "Bye".into()))),
        Got::Frame(f) => panic!("unexpected frame {:?}", Header::parse(&f)),
    }
    assert_eq!(listed(&t, &default_close).await["injected"], 1);
}

#[tokio::test]
async fn pause_publication_reaches_the_agent_and_blackhole_keeps_sockets_open() {
    let t = TestEmu::new();
    let addr = serve(&t).await;
    let mut s = session(&t, addr).await;
    add(
        &t,
        json!({"relay": {"action": {"pausePublication": {}}, "instanceId": A}}),
    )
    .await;
    let m = next_frame(&mut s.agent).await;
    assert_eq!(m.message_type, MessageType::PausePublication);
    assert!(Message::decode(&m.encode(), Validation::Agent).is_ok());
    add(&t, json!({"relay": {"action": {"startPublication": {}}}})).await;
    assert_eq!(
        next_frame(&mut s.agent).await.message_type,
        MessageType::StartPublication
    );

    let hole = add(
        &t,
        json!({"relay": {"action": {"blackhole": {}}, "direction": "clientToAgent"}}),
    )
    .await;
    s.client
        .send(Ws::Binary(output(0, "lost").into()))
        .await
        .unwrap();
    s.agent
        .send(Ws::Binary(output(0, "still flowing").into()))
        .await
        .unwrap();
    assert_eq!(next_frame(&mut s.client).await.payload, b"still flowing");
    tokio::time::timeout(HANG, async {
        while listed(&t, &hole).await["injected"] != 1 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the blackhole never saw the frame");
    admin(&t, "DELETE", "/_emulator/faults", "").await;
    s.client
        .send(Ws::Binary(output(1, "through").into()))
        .await
        .unwrap();
    assert_eq!(next_frame(&mut s.agent).await.payload, b"through");
}

#[tokio::test]
async fn throttling_hits_only_the_named_operation() {
    let t = TestEmu::with_instances(vec![support::declared(json!({"id": A}))]);
    add(
        &t,
        json!({"api": {"operation": "SendCommand", "error": "ThrottlingException", "rate": 1.0}}),
    )
    .await;
    let send = json!({"DocumentName": "AWS-RunShellScript", "InstanceIds": [A],
        "Parameters": {"commands": ["echo hi"]}});
    let message = t
        .call("SendCommand", send.clone())
        .await
        .client_error("ThrottlingException");
    assert_eq!(message, "Rate exceeded");
    t.call("ListCommands", json!({})).await.ok();

    admin(&t, "DELETE", "/_emulator/faults", "").await;
    add(
        &t,
        json!({"api": {"operation": "ListCommands", "error": "InternalServerError"}}),
    )
    .await;
    t.call("ListCommands", json!({}))
        .await
        .error(500, "InternalServerError");
    t.call("SendCommand", send).await.ok();
}

#[tokio::test]
async fn invocation_does_not_exist_for_the_first_reads_then_the_real_answer() {
    let t = TestEmu::with_instances(vec![support::declared(json!({"id": A}))]);
    let id = add(
        &t,
        json!({"api": {"operation": "GetCommandInvocation", "error": "InvocationDoesNotExist",
            "firstReads": 2}}),
    )
    .await;
    let send = json!({"DocumentName": "AWS-RunShellScript", "InstanceIds": [A],
        "Parameters": {"commands": ["echo hi"]}});
    let command = t.call("SendCommand", send).await.ok();
    let command_id = command["Command"]["CommandId"].as_str().unwrap();
    let read = json!({"CommandId": command_id, "InstanceId": A});
    for _ in 0..2 {
        t.call("GetCommandInvocation", read.clone())
            .await
            .client_error("InvocationDoesNotExist");
    }
    let answer = t.call("GetCommandInvocation", read).await.ok();
    assert_eq!(answer["CommandId"], command_id);
    let rule = listed(&t, &id).await;
    assert_eq!(
        (rule["matched"].as_u64(), rule["injected"].as_u64()),
        (Some(3), Some(2))
    );
}

#[tokio::test]
async fn bad_admin_input_says_what_to_fix_and_reset_clears_state() {
    let t = TestEmu::with_instances(vec![support::declared(json!({"id": A}))]);
    let cases = [
        ("POST", "/_emulator/faults", "not json", "invalid JSON body"),
        (
            "POST",
            "/_emulator/faults",
            r#"{"relay": {"action": {"dorp": {}}}}"#,
            "unknown variant `dorp`",
        ),
        (
            "POST",
            "/_emulator/faults",
            r#"{"api": {"operation": "SendCommands", "error": "ThrottlingException"}}"#,
            "not one ssm-emulator serves",
        ),
        (
            "POST",
            "/_emulator/seed",
            r#"{"seed": -1}"#,
            "expected for example",
        ),
    ];
    for (method, path, body, expected) in cases {
        let (status, answer) = admin(&t, method, path, body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains(expected), "{body}: {message}");
    }
    let (status, answer) = admin(&t, "DELETE", "/_emulator/faults/f-99", "").await;
    assert_eq!(status, 404);
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("GET /_emulator/faults")
    );

    let send = json!({"DocumentName": "AWS-RunShellScript", "InstanceIds": [A],
        "Parameters": {"commands": ["echo hi"]}});
    t.call("SendCommand", send).await.ok();
    add(&t, json!({"api": {"latencyMs": 1}})).await;
    let (status, _) = admin(&t, "POST", "/_emulator/reset", "").await;
    assert_eq!(status, 200);
    let commands = t.call("ListCommands", json!({})).await.ok();
    assert_eq!(commands["Commands"], json!([]));
    let (_, list) = admin(&t, "GET", "/_emulator/faults", "").await;
    assert_eq!((&list["faults"], &list["totals"]), (&json!([]), &json!({})));
    // Registered instances stay.
    assert_eq!(t.describe_all().await.len(), 1);
}

/// `ssm-emulator <args>` as the binary parses it.
#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: cli::Command,
}

async fn ssm_emulator(args: &[&str]) -> Result<String, cli::CliError> {
    let cli = Cli::try_parse_from(std::iter::once("ssm-emulator").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    cli::run(cli.command).await
}

#[tokio::test]
async fn the_cli_drives_the_admin_api_of_a_running_emulator() {
    let t = TestEmu::new();
    let addr = serve(&t).await;
    let endpoint = format!("http://{addr}");
    let e = ["--endpoint", endpoint.as_str()];
    let added = ssm_emulator(
        &[
            &[
                "fault",
                "add",
                "--api",
                "ThrottlingException",
                "--operation",
                "SendCommand",
            ][..],
            &["--rate", "0.5"],
            &e,
        ]
        .concat(),
    )
    .await
    .unwrap();
    assert_eq!(added, "f-1");
    ssm_emulator(
        &[
            &[
                "fault",
                "add",
                "--relay",
                "drop=0.01,direction=agent-to-client",
            ][..],
            &e,
        ]
        .concat(),
    )
    .await
    .unwrap();
    let list = ssm_emulator(&[&["fault", "list"][..], &e].concat())
        .await
        .unwrap();
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["faults"][0]["rule"]["api"]["rate"], 0.5);
    assert_eq!(
        list["faults"][1]["rule"]["relay"]["action"],
        json!({"drop": {"probability": 0.01}})
    );
    assert_eq!(
        ssm_emulator(&[&["fault", "rm", "f-1"][..], &e].concat())
            .await
            .unwrap(),
        "ok"
    );
    let refused = ssm_emulator(&[&["fault", "rm", "f-1"][..], &e].concat())
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("no fault rule"), "{refused}");
    ssm_emulator(&[&["seed", "9"][..], &e].concat())
        .await
        .unwrap();
    ssm_emulator(&[&["fault", "clear"][..], &e].concat())
        .await
        .unwrap();
    ssm_emulator(&[&["reset"][..], &e].concat()).await.unwrap();
    let (_, list) = admin(&t, "GET", "/_emulator/faults", "").await;
    assert_eq!((&list["seed"], &list["faults"]), (&json!(9), &json!([])));
    let refused = ssm_emulator(&["seed", "1", "--endpoint", "http://127.0.0.1:1"])
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("cannot connect"), "{refused}");
}
