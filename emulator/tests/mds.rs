//! Run Command over MDS (`ec2messages`, spec §9.2) inside one process: a fake polling agent
//! speaks raw HTTP/1.1 JSON 1.1 over TCP with the real agent's headers (agent-runcommand-mds.jsonl)
//! and replies with that trace's payloads; the API (through `app().oneshot`) shows the result.
//! Time moves only with the ManualClock; held polls end by a message arriving or by a hold
//! shortened through `Config::get_messages_hold`, never by a test waiting for time to pass.
//!
//! Run with `cargo test -p ssm-emulator --test mds`.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::SinkExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use ssm_emulator::{Config, Emulator, ManualClock, run};
use ssm_protocol::payload::{CancelCommandPayload, SendCommandPayload};
use support::{START, TestEmu};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const A: &str = "i-0123456789abcdef0";

/// How long a test waits for an answer before failing (a hang guard, never a timing assertion).
const HANG: Duration = Duration::from_secs(20);

/// A hold no test outlives: polls that must wait for work.
const LONG_HOLD: Duration = Duration::from_secs(600);

/// A hold short enough for an empty poll to come back at once.
const SHORT_HOLD: Duration = Duration::from_millis(10);

const GRACE: Duration = Duration::from_secs(60);

fn emulator(hold: Duration) -> TestEmu {
    let mut config = Config::local(11);
    config.ping_grace = GRACE;
    config.get_messages_hold = hold;
    let clock = Arc::new(ManualClock::at_epoch_secs(START));
    TestEmu {
        emu: Emulator::new(config, clock.clone()),
        clock,
    }
}

async fn serve(t: &TestEmu) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(run(listener, t.emu.clone(), std::future::pending()));
    addr
}

/// One MDS call as the real agent makes it (headers of agent-runcommand-mds.jsonl), over a
/// fresh TCP connection. Returns the status, the `x-amzn-RequestId` and the JSON body.
async fn mds(addr: SocketAddr, op: &str, body: &Value) -> (u16, Option<String>, Value) {
    let body = body.to_string();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\n\
         User-Agent: aws-sdk-go/1.51.20 (go1.23.5; linux; amd64) amazon-ssm-agent/3.3.1142.0\r\n\
         Content-Length: {}\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261122/us-east-1/ec2messages/aws4_request, \
         SignedHeaders=content-length;content-type;host;x-amz-date;x-amz-target, Signature=0\r\n\
         Content-Type: application/x-amz-json-1.1\r\nX-Amz-Date: 20261122T225345Z\r\n\
         X-Amz-Target: EC2WindowsMessageDeliveryService.{op}\r\nAccept-Encoding: gzip\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(HANG, stream.read_to_end(&mut raw))
        .await
        .expect("no answer from the emulator")
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("no header end");
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let header = |name: &str| {
        head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };
    assert_eq!(
        header("content-type").as_deref(),
        Some("application/x-amz-json-1.1")
    );
    (
        status,
        header("x-amzn-requestid"),
        serde_json::from_str(body).unwrap(),
    )
}

/// A successful MDS call's body.
async fn mds_ok(addr: SocketAddr, op: &str, body: Value) -> Value {
    let (status, request_id, body) = mds(addr, op, &body).await;
    assert_eq!(status, 200, "{op}: {body}");
    assert!(support::uuid_shaped(&request_id.unwrap()));
    body
}

fn get_messages_request(request_id: &str) -> Value {
    json!({"Destination": A, "MessagesRequestId": request_id, "VisibilityTimeoutInSeconds": 10})
}

/// Starts a GetMessages in the background and returns once the emulator holds it.
async fn waiting_poll(t: &TestEmu, addr: SocketAddr) -> tokio::task::JoinHandle<Value> {
    let poll = tokio::spawn(async move {
        mds_ok(
            addr,
            "GetMessages",
            get_messages_request("2161308a-104e-4f4d-a837-98dd0b316b11"),
        )
        .await
    });
    let scope = t.emu.scope("us-east-1");
    tokio::time::timeout(HANG, async {
        while !t.emu.mds_poll_held(&scope, A) {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the poll never arrived");
    poll
}

async fn send_command(t: &TestEmu) -> String {
    let body = t
        .call(
            "SendCommand",
            json!({"DocumentName": "AWS-RunShellScript", "InstanceIds": [A],
                "Parameters": {"commands": ["echo via-mds", "echo e >&2"]}}),
        )
        .await
        .ok();
    body["Command"]["CommandId"].as_str().unwrap().to_owned()
}

async fn invocation(t: &TestEmu, command_id: &str) -> Value {
    t.call(
        "GetCommandInvocation",
        json!({"CommandId": command_id, "InstanceId": A}),
    )
    .await
    .ok()
}

async fn connection_status(t: &TestEmu) -> String {
    let body = t
        .call("GetConnectionStatus", json!({"Target": A}))
        .await
        .ok();
    body["Status"].as_str().unwrap().to_owned()
}

/// A SendReplyPayload shaped as in agent-runcommand-mds.jsonl.
fn reply_payload(document_status: &str, plugin: Option<Value>) -> String {
    let counts = plugin
        .as_ref()
        .map(|p| json!({p["status"].as_str().unwrap(): 1}));
    json!({"additionalInfo": {"agent": {"lang": "en-US", "name": "amazon-ssm-agent", "os": "linux",
            "osver": "1", "ver": "3.3.1142.0"}, "dateTime": "2026-11-22T22:53:46.779Z", "runId": "",
            "runtimeStatusCounts": counts, "ableToOpenMGSConnection": false},
        "documentStatus": document_status, "documentTraceOutput": "",
        "runtimeStatus": plugin.map(|p| json!({"aws:runShellScript": p}))})
    .to_string()
}

fn plugin(status: &str, code: i64, stdout: &str, stderr: &str) -> Value {
    json!({"status": status, "code": code, "name": "aws:runShellScript",
        "output": format!("{stdout}\n----------ERROR-------\n{stderr}"),
        "startDateTime": "2026-11-22T22:53:46.815Z", "endDateTime": "2026-11-22T22:53:46.852Z",
        "outputS3BucketName": "", "outputS3KeyPrefix": "", "stepName": "",
        "standardOutput": stdout, "standardError": stderr})
}

/// SendReply as the agent sends it; checks the answer of the trace.
async fn send_reply(addr: SocketAddr, message_id: &str, reply_id: &str, payload: String) {
    let body = mds_ok(
        addr,
        "SendReply",
        json!({"MessageId": message_id, "Payload": payload, "ReplyId": reply_id}),
    )
    .await;
    assert_eq!(
        body,
        json!({"MessageId": message_id, "ReplyId": reply_id, "ReplyStatus": "Created",
            "Description": ""})
    );
}

#[tokio::test]
async fn a_held_poll_takes_the_command_and_the_replies_complete_it() {
    let t = emulator(LONG_HOLD);
    let addr = serve(&t).await;
    t.report(A).await;
    t.clock.advance(GRACE * 2);
    assert_eq!(connection_status(&t).await, "notconnected", "pings expired");

    let poll = waiting_poll(&t, addr).await;
    assert_eq!(
        connection_status(&t).await,
        "connected",
        "a polling agent is connected"
    );
    let command_id = send_command(&t).await;
    let answer = tokio::time::timeout(HANG, poll).await.unwrap().unwrap();

    assert_eq!(answer["Destination"], A);
    assert_eq!(
        answer["MessagesRequestId"],
        "2161308a-104e-4f4d-a837-98dd0b316b11"
    );
    let messages = answer["Messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{answer}");
    let message = &messages[0];
    let message_id = format!("aws.ssm.{command_id}.{A}");
    assert_eq!(message["MessageId"], message_id.as_str());
    assert_eq!(message["Destination"], A);
    assert_eq!(message["Topic"], "aws.ssm.sendCommand");
    assert_eq!(message["CreatedDate"], "2023-11-14T22:15:20.000Z");
    let payload = message["Payload"].as_str().unwrap();
    let digest: String = Sha256::digest(payload.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(message["PayloadDigest"], digest.as_str());
    let payload: SendCommandPayload = serde_json::from_str(payload).unwrap();
    assert_eq!(payload.command_id, command_id);
    assert_eq!(payload.document_name, "AWS-RunShellScript");
    assert_eq!(
        payload.parameters["commands"],
        json!(["echo via-mds", "echo e >&2"])
    );
    assert_eq!(
        payload.document_content["runtimeConfig"]["aws:runShellScript"]["properties"][0]["id"],
        "0.aws:runShellScript"
    );
    assert_eq!(invocation(&t, &command_id).await["Status"], "Pending");

    // The order of the trace: InProgress reply, ack, per-plugin reply, final reply.
    send_reply(
        addr,
        &message_id,
        "16f987ef-501f-4cf8-b87c-869f08ff50c9",
        reply_payload("InProgress", None),
    )
    .await;
    let ack = mds_ok(addr, "AcknowledgeMessage", json!({"MessageId": message_id})).await;
    assert_eq!(ack, json!({}));
    assert_eq!(invocation(&t, &command_id).await["Status"], "InProgress");
    let done = plugin("Success", 0, "via-mds\n", "e\n");
    send_reply(
        addr,
        &message_id,
        "a8932166-11f1-4b07-858a-ca6975faa42e",
        reply_payload("InProgress", Some(done.clone())),
    )
    .await;
    send_reply(
        addr,
        &message_id,
        "a4966d5b-e4c6-49ec-b637-cda75914e9a9",
        reply_payload("Success", Some(done)),
    )
    .await;

    let result = invocation(&t, &command_id).await;
    assert_eq!(result["Status"], "Success");
    assert_eq!(result["ResponseCode"], 0);
    assert_eq!(result["StandardOutputContent"], "via-mds\n");
    assert_eq!(result["StandardErrorContent"], "e\n");
    let listed = t
        .call("ListCommands", json!({"CommandId": command_id}))
        .await
        .ok();
    assert_eq!(listed["Commands"][0]["Status"], "Success");

    // The acknowledged message is gone: the next poll carries only the next command.
    let poll = waiting_poll(&t, addr).await;
    let second = send_command(&t).await;
    let answer = tokio::time::timeout(HANG, poll).await.unwrap().unwrap();
    let ids: Vec<&str> = answer["Messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["MessageId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [format!("aws.ssm.{second}.{A}")], "only the new one");
}

#[tokio::test]
async fn an_empty_poll_answers_no_messages_after_the_hold() {
    let t = emulator(SHORT_HOLD);
    let addr = serve(&t).await;
    t.report(A).await;
    let body = mds_ok(
        addr,
        "GetMessages",
        get_messages_request("8623236c-c41a-49f4-928e-bd1cb56cca53"),
    )
    .await;
    assert_eq!(
        body,
        json!({"Destination": A, "MessagesRequestId": "8623236c-c41a-49f4-928e-bd1cb56cca53",
            "Messages": []})
    );
}

#[tokio::test]
async fn a_command_for_a_node_that_stopped_polling_waits_for_its_next_poll() {
    let t = emulator(SHORT_HOLD);
    let addr = serve(&t).await;
    t.report(A).await;
    mds_ok(addr, "GetMessages", get_messages_request(&uuid(1))).await;
    assert_eq!(connection_status(&t).await, "connected");

    // Pings and polls both expired.
    t.clock.advance(GRACE * 2);
    let command_id = send_command(&t).await;
    assert_eq!(invocation(&t, &command_id).await["Status"], "Delayed");
    assert_eq!(connection_status(&t).await, "notconnected");

    // The next poll is answered at once with the command.
    let body = mds_ok(addr, "GetMessages", get_messages_request(&uuid(2))).await;
    assert_eq!(
        body["Messages"][0]["MessageId"],
        format!("aws.ssm.{command_id}.{A}").as_str()
    );

    // Not acknowledged: handed out again once the visibility timeout has passed.
    let body = mds_ok(addr, "GetMessages", get_messages_request(&uuid(3))).await;
    assert_eq!(body["Messages"], json!([]), "hidden for 10 s");
    t.clock.advance(Duration::from_secs(10));
    let body = mds_ok(addr, "GetMessages", get_messages_request(&uuid(4))).await;
    assert_eq!(body["Messages"].as_array().unwrap().len(), 1);

    // FailMessage ends the invocation as undeliverable.
    mds_ok(
        addr,
        "FailMessage",
        json!({"MessageId": format!("aws.ssm.{command_id}.{A}"),
            "FailureType": "NoHandlerExists"}),
    )
    .await;
    let result = invocation(&t, &command_id).await;
    assert_eq!(
        (result["Status"].as_str(), result["StatusDetails"].as_str()),
        (Some("Failed"), Some("Undeliverable"))
    );
}

#[tokio::test]
async fn cancel_goes_out_as_a_cancel_message() {
    let t = emulator(SHORT_HOLD);
    let addr = serve(&t).await;
    t.report(A).await;
    mds_ok(addr, "GetMessages", get_messages_request(&uuid(1))).await;
    let command_id = send_command(&t).await;
    let message_id = format!("aws.ssm.{command_id}.{A}");
    let body = mds_ok(addr, "GetMessages", get_messages_request(&uuid(2))).await;
    assert_eq!(body["Messages"][0]["MessageId"], message_id.as_str());
    send_reply(
        addr,
        &message_id,
        &uuid(3),
        reply_payload("InProgress", None),
    )
    .await;
    mds_ok(addr, "AcknowledgeMessage", json!({"MessageId": message_id})).await;

    t.call("CancelCommand", json!({"CommandId": command_id}))
        .await
        .ok();
    assert_eq!(invocation(&t, &command_id).await["Status"], "Cancelling");
    let body = mds_ok(addr, "GetMessages", get_messages_request(&uuid(4))).await;
    let messages = body["Messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{body}");
    let cancel = &messages[0];
    assert_eq!(cancel["Topic"], "aws.ssm.cancelCommand");
    let cancel_id = cancel["MessageId"].as_str().unwrap();
    assert!(cancel_id.starts_with("aws.ssm.") && cancel_id.ends_with(&format!(".{A}")));
    assert_ne!(cancel_id, message_id);
    let payload: CancelCommandPayload =
        serde_json::from_str(cancel["Payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload.cancel_message_id, message_id);

    // The agent acks the cancel message, and the cancelled command reports Cancelled.
    mds_ok(addr, "AcknowledgeMessage", json!({"MessageId": cancel_id})).await;
    let cancelled = plugin("Cancelled", 137, "via-mds\n", "");
    send_reply(
        addr,
        &message_id,
        &uuid(5),
        reply_payload("Cancelled", Some(cancelled)),
    )
    .await;
    let result = invocation(&t, &command_id).await;
    assert_eq!(result["Status"], "Cancelled");
    let listed = t
        .call("ListCommands", json!({"CommandId": command_id}))
        .await
        .ok();
    assert_eq!(listed["Commands"][0]["Status"], "Cancelled");
}

#[tokio::test]
async fn a_node_with_a_control_channel_gets_no_mds_messages() {
    // The MGS path itself is covered by run_command.rs; here only the routing: once the
    // control channel is open, jobs do not go to MDS even though the agent still polls.
    let t = emulator(SHORT_HOLD);
    let addr = serve(&t).await;
    t.report(A).await;
    mds_ok(addr, "GetMessages", get_messages_request(&uuid(1))).await;
    let token = t.emu.issue_control_token(&t.emu.scope("us-east-1"), A);
    let url = format!("ws://{addr}/v1/control-channel/{A}?role=subscribe&stream=input");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let open = json!({"Cookie": null, "MessageSchemaVersion": "1.0",
        "RequestId": "7b0c3e98-a2c3-4b43-850c-406367b226d4", "TokenValue": token,
        "AgentVersion": "3.3.1142.0", "PlatformType": "linux"});
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        open.to_string().into(),
    ))
    .await
    .unwrap();
    let scope = t.emu.scope("us-east-1");
    while !t.emu.control_channel_open(&scope, A) {
        tokio::task::yield_now().await;
    }
    send_command(&t).await;
    let body = mds_ok(addr, "GetMessages", get_messages_request(&uuid(2))).await;
    assert_eq!(body["Messages"], json!([]));
}

#[tokio::test]
async fn mds_errors_are_aws_shaped() {
    let t = emulator(SHORT_HOLD);
    let target = |op: &str| format!("EC2WindowsMessageDeliveryService.{op}");
    let send = |op: &str, body: &str| {
        let target = target(op);
        let body = body.as_bytes().to_vec();
        let t = &t;
        async move { t.send(Some(&target), None, body).await }
    };

    let message = send("GetMessages", r#"{"MessagesRequestId":"x"}"#)
        .await
        .client_error("ValidationException");
    assert!(
        message.starts_with("2 validation errors detected:"),
        "{message}"
    );
    assert!(message.contains("'destination'"), "{message}");
    assert!(message.contains("'messagesRequestId'"), "{message}");

    send("GetMessages", r#"{"Destination": 5}"#)
        .await
        .client_error("SerializationException");
    send("Nope", "{}")
        .await
        .client_error("UnknownOperationException");
    let message = send("AcknowledgeMessage", r#"{"MessageId":"bogus"}"#)
        .await
        .client_error("ValidationException");
    assert!(
        message.contains("aws.ssm.<commandId>.<instanceId>"),
        "{message}"
    );
    send("AcknowledgeMessage", "{}")
        .await
        .client_error("ValidationException");
    let message = send(
        "SendReply",
        &json!({"MessageId": format!("aws.ssm.{}.{A}", uuid(1)), "Payload": "not json",
            "ReplyId": uuid(2)})
        .to_string(),
    )
    .await
    .client_error("ValidationException");
    assert!(message.contains("SendReplyPayload"), "{message}");
    send("FailMessage", r#"{"FailureType":"NoHandlerExists"}"#)
        .await
        .client_error("ValidationException");

    // A message the emulator does not know is acknowledged, deleted or replied to quietly.
    let unknown = json!({"MessageId": format!("aws.ssm.{}.{A}", uuid(9))}).to_string();
    assert_eq!(send("AcknowledgeMessage", &unknown).await.ok(), json!({}));
    assert_eq!(send("DeleteMessage", &unknown).await.ok(), json!({}));
    let endpoint = send("GetEndpoint", &json!({"Destination": A}).to_string())
        .await
        .ok();
    assert_eq!(
        endpoint,
        json!({"Endpoint": "ec2messages.us-east-1.amazonaws.com"})
    );
}

fn uuid(n: u128) -> String {
    uuid::Uuid::from_u128(0x2161_308a_104e_4f4d_a837_0000_0000_0000 + n).to_string()
}
