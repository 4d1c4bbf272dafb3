//! Run Command end to end inside one process: a fake agent calls CreateControlChannel, opens
//! the control channel over a real websocket with the real agent's open frame, takes
//! `agent_job`s and answers with the ack and the three replies of agent-runcommand-mgs.jsonl;
//! the API (through `app().oneshot`) shows the result. Time moves only with the ManualClock.
//!
//! Run with `cargo test -p ssm-emulator --test run_command`.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use ssm_emulator::{app, run};
use ssm_protocol::payload::{AgentJob, AgentJobReplyAck, JobContent};
use ssm_protocol::{Message, MessageType, Validation};
use support::{START, TestEmu, full_report};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tower::ServiceExt;
use uuid::Uuid;

const A: &str = "i-0123456789abcdef0";
const B: &str = "i-0123456789abcdef1";
const C: &str = "i-0123456789abcdef2";

/// A MessageId not used before in this process.
fn fresh() -> Uuid {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    Uuid::from_u128(0x5eed_0000_0000_0000_0000 + u128::from(NEXT.fetch_add(1, Ordering::Relaxed)))
}

/// How long a test waits for a frame before failing (a hang guard, never a timing assertion).
const HANG: Duration = Duration::from_secs(10);

async fn serve(t: &TestEmu) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(run(listener, t.emu.clone(), std::future::pending()));
    addr
}

/// CreateControlChannel as the agent calls it (spec §9.1); returns the token.
async fn create_control_channel(t: &TestEmu, id: &str) -> String {
    let request = Request::post(format!("/v1/control-channel/{id}"))
        .header("content-type", "application/json")
        .body(Body::from(
            r#"{"MessageSchemaVersion":"1.0","RequestId":"725389f2-0211-41b3-bdea-aec11a06c7d3"}"#,
        ))
        .unwrap();
    let response = app(t.emu.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let xml = String::from_utf8(body.to_vec()).unwrap();
    assert!(
        xml.starts_with(
            "<CreateControlChannelResponse><MessageSchemaVersion>1.0</MessageSchemaVersion><TokenValue>"
        ),
        "{xml}"
    );
    let token = xml.split("<TokenValue>").nth(1).unwrap();
    token.split("</TokenValue>").next().unwrap().to_owned()
}

struct Agent {
    id: &'static str,
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Agent {
    async fn connect(t: &TestEmu, addr: SocketAddr, id: &'static str) -> Agent {
        let token = create_control_channel(t, id).await;
        let url = format!("ws://{addr}/v1/control-channel/{id}?role=subscribe&stream=input");
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let open = format!(
            "{{\"Cookie\":null,\"MessageSchemaVersion\":\"1.0\",\"RequestId\":\
             \"219af1cf-1949-4c2d-a554-c21031acb7cd\",\"TokenValue\":\"{token}\",\
             \"AgentVersion\":\"3.3.1142.0\",\"PlatformType\":\"linux\"}}"
        );
        ws.send(Ws::Text(open.into())).await.unwrap();
        let scope = t.emu.scope("us-east-1");
        while !t.emu.control_channel_open(&scope, id) {
            tokio::task::yield_now().await;
        }
        Agent { id, ws }
    }

    async fn recv(&mut self) -> Message {
        loop {
            let next = tokio::time::timeout(HANG, self.ws.next())
                .await
                .expect("no frame from the emulator");
            match next.unwrap().unwrap() {
                Ws::Binary(bytes) => return Message::decode(&bytes, Validation::Agent).unwrap(),
                Ws::Ping(_) | Ws::Pong(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    /// Receives an `agent_job` and returns it with its frame.
    async fn job(&mut self) -> (Message, AgentJob) {
        let frame = self.recv().await;
        assert_eq!(frame.message_type, MessageType::AgentJob);
        let job: AgentJob = serde_json::from_slice(&frame.payload).unwrap();
        (frame, job)
    }

    async fn send(&mut self, message_type: MessageType, id: Uuid, payload: String) {
        let mut frame = Message::new(message_type, 1_795_387_417_975, id);
        frame.payload = payload.into_bytes();
        self.ws
            .send(Ws::Binary(frame.encode().into()))
            .await
            .unwrap();
    }

    async fn ack(&mut self, job: &Message, job_id: &str, code: &str) {
        let ack = json!({"jobId": job_id, "acknowledgedMessageId": job.message_id.to_string(),
            "createdDate": "2026-11-22T22:43:37.974Z", "statusCode": code,
            "errorMessage": if code == "200" { "Successful" } else { "DuplicateCommand" }});
        self.send(MessageType::AgentJobAck, fresh(), ack.to_string())
            .await;
    }

    /// Sends an `agent_job_reply` with message id `id` and waits for its `agent_job_reply_ack`.
    async fn reply(&mut self, id: Uuid, job_id: &str, topic: &str, content: Value) {
        let reply = json!({"schemaVersion": 1, "jobId": job_id,
            "content": content.to_string(), "topic": topic});
        self.send(MessageType::AgentJobReply, id, reply.to_string())
            .await;
        let ack = self.recv().await;
        assert_eq!(ack.message_type, MessageType::AgentJobReplyAck);
        let ack: AgentJobReplyAck = serde_json::from_slice(&ack.payload).unwrap();
        assert_eq!(ack.job_id, job_id);
        assert_eq!(ack.acknowledged_message_id, id.to_string());
    }

    /// Ack plus reply 1 (InProgress, no runtimeStatus), as the agent sends them together.
    async fn accept(&mut self, frame: &Message, job_id: &str) {
        self.ack(frame, job_id, "200").await;
        self.reply(
            fresh(),
            job_id,
            "aws.ssm.sendCommand",
            reply_content("InProgress", None),
        )
        .await;
    }

    /// Replies 3 (final) and 2 (per plugin, InProgress), in that order (they race in the
    /// real agent), for a plugin that ended with `status` and `code`.
    async fn finish(&mut self, job_id: &str, status: &str, code: i64, stdout: &str, stderr: &str) {
        let plugin = plugin(status, code, stdout, stderr);
        self.reply(
            fresh(),
            job_id,
            "aws.ssm.sendCommand",
            reply_content(status, Some(plugin.clone())),
        )
        .await;
        self.reply(
            fresh(),
            job_id,
            "aws.ssm.sendCommand",
            reply_content("InProgress", Some(plugin)),
        )
        .await;
    }
}

fn plugin(status: &str, code: i64, stdout: &str, stderr: &str) -> Value {
    let output = if stderr.is_empty() {
        stdout.to_owned()
    } else {
        format!("{stdout}\n----------ERROR-------\n{stderr}")
    };
    json!({"status": status, "code": code, "name": "aws:runShellScript", "output": output,
        "startDateTime": "2026-11-22T22:43:38.001Z", "endDateTime": "2026-11-22T22:43:38.028Z",
        "outputS3BucketName": "", "outputS3KeyPrefix": "", "stepName": "",
        "standardOutput": stdout, "standardError": stderr})
}

/// A SendReplyPayload shaped as in agent-runcommand-mgs.jsonl.
fn reply_content(document_status: &str, plugin: Option<Value>) -> Value {
    let counts = plugin
        .as_ref()
        .map(|p| json!({p["status"].as_str().unwrap(): 1}));
    json!({"additionalInfo": {"agent": {"lang": "en-US", "name": "amazon-ssm-agent", "os": "linux",
            "osver": "1", "ver": "3.3.1142.0"}, "dateTime": "2026-11-22T22:43:38.031Z", "runId": "",
            "runtimeStatusCounts": counts},
        "documentStatus": document_status, "documentTraceOutput": "",
        "runtimeStatus": plugin.map(|p| json!({"aws:runShellScript": p}))})
}

fn job_id(command_id: &str, instance: &str) -> String {
    format!("aws.ssm.{command_id}.{instance}")
}

async fn send_command(t: &TestEmu, extra: Value) -> Value {
    let mut request = json!({"DocumentName": "AWS-RunShellScript",
        "Parameters": {"commands": ["echo hello"]}});
    for (k, v) in extra.as_object().unwrap() {
        request[k] = v.clone();
    }
    t.call("SendCommand", request).await.ok()["Command"].clone()
}

async fn invocation(t: &TestEmu, command_id: &str, instance: &str) -> Value {
    t.call(
        "GetCommandInvocation",
        json!({"CommandId": command_id, "InstanceId": instance}),
    )
    .await
    .ok()
}

async fn command(t: &TestEmu, command_id: &str) -> Value {
    let body = t
        .call("ListCommands", json!({"CommandId": command_id}))
        .await
        .ok();
    body["Commands"][0].clone()
}

async fn nodes(ids: &[&str]) -> TestEmu {
    let t = TestEmu::new();
    for id in ids {
        t.report(id).await;
    }
    t
}

#[tokio::test]
async fn a_command_runs_through_its_whole_lifecycle() {
    let t = nodes(&[A]).await;
    let addr = serve(&t).await;
    let mut agent = Agent::connect(&t, addr, A).await;
    assert!(
        t.emu
            .instance(&t.emu.scope("us-east-1"), A)
            .unwrap()
            .connected,
        "the open channel marks the node connected"
    );

    let cmd = send_command(&t, json!({"InstanceIds": [A], "Comment": "hi"})).await;
    let id = cmd["CommandId"].as_str().unwrap().to_owned();
    assert!(support::uuid_shaped(&id));
    assert_eq!(cmd["Status"], "Pending");
    assert_eq!(cmd["StatusDetails"], "Pending");
    assert_eq!(cmd["DocumentName"], "AWS-RunShellScript");
    assert_eq!(cmd["DocumentVersion"], "1");
    assert_eq!(cmd["InstanceIds"], json!([A]));
    assert_eq!(cmd["Targets"], json!([]));
    assert_eq!(cmd["MaxConcurrency"], "50");
    assert_eq!(cmd["MaxErrors"], "0");
    assert_eq!(cmd["TimeoutSeconds"], 3600);
    assert_eq!(cmd["TargetCount"], 1);
    assert_eq!(cmd["CompletedCount"], 0);
    assert_eq!(cmd["ErrorCount"], 0);
    assert_eq!(cmd["DeliveryTimedOutCount"], 0);
    assert_eq!(cmd["RequestedDateTime"], json!(START as f64));
    assert_eq!(cmd["ExpiresAfter"], json!((START + 3600) as f64));
    assert_eq!(
        cmd["Parameters"],
        json!({"commands": ["echo hello"], "workingDirectory": [""], "executionTimeout": ["3600"]})
    );
    assert_eq!(cmd["Comment"], "hi");

    // The agent_job, as §9.1 describes it.
    let (frame, job) = agent.job().await;
    assert_eq!(frame.created_date, START * 1000);
    assert_eq!(frame.sequence_number, 0);
    let job_id = job_id(&id, A);
    assert_eq!(job.job_id, job_id);
    assert_eq!(job.topic, "aws.ssm.sendCommand");
    assert_eq!(job.schema_version, 1);
    let JobContent::SendCommand(payload) = job.job_content().unwrap() else {
        panic!("not a sendCommand job")
    };
    assert_eq!(payload.command_id, id);
    assert_eq!(payload.document_name, "AWS-RunShellScript");
    assert_eq!(payload.cloud_watch_output_enabled, "false");
    assert_eq!(
        Value::Object(payload.parameters.clone()),
        json!({"commands": ["echo hello"], "workingDirectory": "", "executionTimeout": "3600"}),
        "String parameters are JSON strings, StringList arrays"
    );
    assert_eq!(payload.document_content["schemaVersion"], "1.2");
    assert!(
        String::from_utf8(frame.payload.clone())
            .unwrap()
            .starts_with("{\"Content\":\"{\\\"CommandId\\\":"),
        "field order of the real service"
    );

    // Sent, not acknowledged: still Pending.
    assert_eq!(invocation(&t, &id, A).await["Status"], "Pending");
    agent.accept(&frame, &job_id).await;
    let inv = invocation(&t, &id, A).await;
    assert_eq!(
        (&inv["Status"], &inv["StatusDetails"]),
        (&json!("InProgress"), &json!("InProgress"))
    );
    assert_eq!(inv["ResponseCode"], -1);
    assert_eq!(inv["StandardOutputContent"], "");
    assert_eq!(inv["ExecutionStartDateTime"], "");
    assert_eq!(command(&t, &id).await["Status"], "InProgress");

    // Final reply first, then the per-plugin InProgress one: Success sticks.
    let final_id = fresh();
    let plugin = plugin("Success", 0, "hello\n", "");
    agent
        .reply(
            final_id,
            &job_id,
            "aws.ssm.sendCommand",
            reply_content("Success", Some(plugin.clone())),
        )
        .await;
    agent
        .reply(
            fresh(),
            &job_id,
            "aws.ssm.sendCommand",
            reply_content("InProgress", Some(plugin.clone())),
        )
        .await;
    // A resend of the final reply with the same MessageId is acked again and changes nothing.
    agent
        .reply(
            final_id,
            &job_id,
            "aws.ssm.sendCommand",
            reply_content("Success", Some(plugin)),
        )
        .await;

    let inv = invocation(&t, &id, A).await;
    assert_eq!(inv["Status"], "Success");
    assert_eq!(inv["StatusDetails"], "Success");
    assert_eq!(inv["ResponseCode"], 0);
    assert_eq!(inv["PluginName"], "aws:runShellScript");
    assert_eq!(inv["StandardOutputContent"], "hello\n");
    assert_eq!(inv["StandardErrorContent"], "");
    assert_eq!(inv["ExecutionStartDateTime"], "2026-11-22T22:43:38.001Z");
    assert_eq!(inv["ExecutionEndDateTime"], "2026-11-22T22:43:38.028Z");
    assert_eq!(inv["ExecutionElapsedTime"], "PT0.027S");
    assert_eq!(inv["Comment"], "hi");

    let cmd = command(&t, &id).await;
    assert_eq!(
        (
            &cmd["Status"],
            &cmd["StatusDetails"],
            &cmd["CompletedCount"]
        ),
        (&json!("Success"), &json!("Success"), &json!(1))
    );

    // ListCommandInvocations with Details and Status filters.
    let list = t
        .call(
            "ListCommandInvocations",
            json!({"CommandId": id, "Details": true}),
        )
        .await
        .ok();
    let plugins = &list["CommandInvocations"][0]["CommandPlugins"];
    assert_eq!(plugins[0]["Name"], "aws:runShellScript");
    assert_eq!(plugins[0]["Status"], "Success");
    assert_eq!(plugins[0]["ResponseCode"], 0);
    assert_eq!(plugins[0]["Output"], "hello\n");
    assert_eq!(
        plugins[0]["ResponseStartDateTime"],
        json!(1_795_387_418.001)
    );
    let list = t
        .call("ListCommandInvocations", json!({"CommandId": id}))
        .await
        .ok();
    assert_eq!(list["CommandInvocations"][0]["CommandPlugins"], json!([]));
    for (status, n) in [("Success", 1), ("Failed", 0)] {
        let list = t
            .call(
                "ListCommandInvocations",
                json!({"Filters": [{"key": "Status", "value": status}]}),
            )
            .await
            .ok();
        assert_eq!(list["CommandInvocations"].as_array().unwrap().len(), n);
    }
    let list = t
        .call(
            "ListCommands",
            json!({"Filters": [{"key": "ExecutionStage", "value": "Complete"},
                {"key": "DocumentName", "value": "AWS-RunShellScript"}]}),
        )
        .await
        .ok();
    assert_eq!(list["Commands"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn failure_output_is_reported_and_capped() {
    let t = nodes(&[A]).await;
    let addr = serve(&t).await;
    let mut agent = Agent::connect(&t, addr, A).await;
    let id = send_command(&t, json!({"InstanceIds": [A]})).await["CommandId"]
        .as_str()
        .unwrap()
        .to_owned();
    let (frame, _) = agent.job().await;
    let job = job_id(&id, A);
    agent.accept(&frame, &job).await;
    let long = "x".repeat(30_000);
    agent.finish(&job, "Failed", 3, &long, &long).await;
    let inv = invocation(&t, &id, A).await;
    assert_eq!(
        (&inv["Status"], &inv["ResponseCode"]),
        (&json!("Failed"), &json!(3))
    );
    let out = inv["StandardOutputContent"].as_str().unwrap();
    assert_eq!(out.len(), 24_000);
    assert!(out.ends_with("--output truncated--"));
    assert_eq!(inv["StandardErrorContent"].as_str().unwrap().len(), 8_000);
    let list = t
        .call(
            "ListCommandInvocations",
            json!({"CommandId": id, "Details": true}),
        )
        .await
        .ok();
    let output = list["CommandInvocations"][0]["CommandPlugins"][0]["Output"]
        .as_str()
        .unwrap();
    assert_eq!(output.len(), 2_500);
    assert!(output.ends_with("\n---Output truncated---"));
    let cmd = command(&t, &id).await;
    assert_eq!(
        (&cmd["Status"], &cmd["ErrorCount"]),
        (&json!("Failed"), &json!(1))
    );
}

#[tokio::test]
async fn max_concurrency_one_sends_one_job_at_a_time() {
    let t = nodes(&[A, B, C]).await;
    let addr = serve(&t).await;
    let mut agents = [
        Agent::connect(&t, addr, A).await,
        Agent::connect(&t, addr, B).await,
        Agent::connect(&t, addr, C).await,
    ];
    let cmd = send_command(&t, json!({"InstanceIds": [A, B, C], "MaxConcurrency": "1"})).await;
    let id = cmd["CommandId"].as_str().unwrap().to_owned();
    assert_eq!(cmd["TargetCount"], 3);
    for (n, agent) in agents.iter_mut().enumerate() {
        // Only this agent has its job; the ones after it are still waiting.
        let (frame, job) = agent.job().await;
        assert_eq!(job.job_id, job_id(&id, agent.id));
        agent.accept(&frame, &job.job_id).await;
        let list = t
            .call("ListCommandInvocations", json!({"CommandId": id}))
            .await
            .ok();
        let statuses: Vec<&str> = list["CommandInvocations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["Status"].as_str().unwrap())
            .collect();
        let mut expected = vec!["Success"; n];
        expected.push("InProgress");
        expected.extend(vec!["Pending"; 2 - n]);
        assert_eq!(statuses, expected);
        agent.finish(&job.job_id, "Success", 0, "ok\n", "").await;
    }
    let cmd = command(&t, &id).await;
    assert_eq!(
        (&cmd["Status"], &cmd["CompletedCount"]),
        (&json!("Success"), &json!(3))
    );
}

#[tokio::test]
async fn errors_beyond_max_errors_stop_the_rest() {
    let t = nodes(&[A, B, C]).await;
    let addr = serve(&t).await;
    let mut a = Agent::connect(&t, addr, A).await;
    let _b = Agent::connect(&t, addr, B).await;
    let _c = Agent::connect(&t, addr, C).await;
    let cmd = send_command(
        &t,
        json!({"InstanceIds": [A, B, C], "MaxConcurrency": "1", "MaxErrors": "0"}),
    )
    .await;
    let id = cmd["CommandId"].as_str().unwrap().to_owned();
    let (frame, job) = a.job().await;
    a.accept(&frame, &job.job_id).await;
    a.finish(&job.job_id, "Failed", 1, "", "boom").await;
    for other in [B, C] {
        let inv = invocation(&t, &id, other).await;
        assert_eq!(
            (&inv["Status"], &inv["StatusDetails"], &inv["ResponseCode"]),
            (&json!("Cancelled"), &json!("Terminated"), &json!(-1))
        );
    }
    let cmd = command(&t, &id).await;
    assert_eq!(
        (&cmd["Status"], &cmd["StatusDetails"]),
        (&json!("Failed"), &json!("Failed"))
    );
    assert_eq!(
        (&cmd["ErrorCount"], &cmd["CompletedCount"]),
        (&json!(1), &json!(3))
    );
}

#[tokio::test]
async fn an_unreachable_node_is_delayed_then_times_out_on_the_clock() {
    let t = nodes(&[A]).await;
    let cmd = send_command(&t, json!({"InstanceIds": [A], "TimeoutSeconds": 30})).await;
    let id = cmd["CommandId"].as_str().unwrap().to_owned();
    assert_eq!(cmd["ExpiresAfter"], json!((START + 30) as f64));
    let inv = invocation(&t, &id, A).await;
    assert_eq!(
        (&inv["Status"], &inv["StatusDetails"]),
        (&json!("Delayed"), &json!("Delayed"))
    );
    t.clock.advance(Duration::from_secs(29));
    assert_eq!(invocation(&t, &id, A).await["Status"], "Delayed");
    t.clock.advance(Duration::from_secs(1));
    let inv = invocation(&t, &id, A).await;
    assert_eq!(
        (&inv["Status"], &inv["StatusDetails"]),
        (&json!("TimedOut"), &json!("DeliveryTimedOut"))
    );
    let cmd = command(&t, &id).await;
    assert_eq!(
        (
            &cmd["Status"],
            &cmd["StatusDetails"],
            &cmd["DeliveryTimedOutCount"],
            &cmd["ErrorCount"]
        ),
        (
            &json!("TimedOut"),
            &json!("DeliveryTimedOut"),
            &json!(1),
            &json!(0)
        )
    );
}

#[tokio::test]
async fn cancel_reaches_the_agent_and_ends_cancelled() {
    let t = nodes(&[A, B]).await;
    let addr = serve(&t).await;
    let mut agent = Agent::connect(&t, addr, A).await;
    // B has no channel: its invocation is cancelled at once.
    let id = send_command(&t, json!({"InstanceIds": [A, B]})).await["CommandId"]
        .as_str()
        .unwrap()
        .to_owned();
    let (frame, job) = agent.job().await;
    agent.accept(&frame, &job.job_id).await;
    t.call("CancelCommand", json!({"CommandId": id})).await.ok();
    assert_eq!(invocation(&t, &id, A).await["Status"], "Cancelling");
    assert_eq!(invocation(&t, &id, B).await["Status"], "Cancelled");
    assert_eq!(command(&t, &id).await["Status"], "Cancelling");

    let (cancel_frame, cancel) = agent.job().await;
    assert_eq!(cancel.topic, "aws.ssm.cancelCommand");
    let JobContent::CancelCommand(content) = cancel.job_content().unwrap() else {
        panic!("not a cancel job")
    };
    assert_eq!(content.cancel_message_id, job.job_id);
    assert!(cancel.job_id.starts_with("aws.ssm.") && cancel.job_id.ends_with(A));
    agent.ack(&cancel_frame, &cancel.job_id, "200").await;
    agent
        .reply(
            fresh(),
            &cancel.job_id,
            "aws.ssm.cancelCommand",
            reply_content("InProgress", None),
        )
        .await;
    agent
        .finish(&job.job_id, "Cancelled", 137, "start\n", "")
        .await;
    let inv = invocation(&t, &id, A).await;
    assert_eq!(
        (&inv["Status"], &inv["ResponseCode"]),
        (&json!("Cancelled"), &json!(137))
    );
    assert_eq!(inv["StandardOutputContent"], "start\n");
    let cmd = command(&t, &id).await;
    assert_eq!(
        (&cmd["Status"], &cmd["StatusDetails"]),
        (&json!("Cancelled"), &json!("Cancelled"))
    );
}

#[tokio::test]
async fn an_agent_that_drops_mid_command_finishes_after_reconnecting() {
    let t = nodes(&[A]).await;
    let addr = serve(&t).await;
    let scope = t.emu.scope("us-east-1");

    // Acknowledged, then the channel drops: the invocation stays InProgress.
    let mut agent = Agent::connect(&t, addr, A).await;
    let id = send_command(&t, json!({"InstanceIds": [A]})).await["CommandId"]
        .as_str()
        .unwrap()
        .to_owned();
    let (frame, job) = agent.job().await;
    agent.accept(&frame, &job.job_id).await;
    drop(agent);
    while t.emu.control_channel_open(&scope, A) {
        tokio::task::yield_now().await;
    }
    assert!(!t.emu.instance(&scope, A).unwrap().connected);
    assert_eq!(invocation(&t, &id, A).await["Status"], "InProgress");
    // The agent reconnects and delivers its persisted replies.
    let mut agent = Agent::connect(&t, addr, A).await;
    agent.finish(&job.job_id, "Success", 0, "hello\n", "").await;
    assert_eq!(invocation(&t, &id, A).await["Status"], "Success");

    // Sent but never acknowledged, then the channel drops: Delayed, and sent again on
    // reconnect; the agent's DuplicateCommand ack counts as an acknowledgement.
    let id = send_command(&t, json!({"InstanceIds": [A]})).await["CommandId"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, job) = agent.job().await;
    drop(agent);
    while t.emu.control_channel_open(&scope, A) {
        tokio::task::yield_now().await;
    }
    assert_eq!(invocation(&t, &id, A).await["Status"], "Delayed");
    let mut agent = Agent::connect(&t, addr, A).await;
    let (frame, again) = agent.job().await;
    assert_eq!(again.job_id, job.job_id);
    agent.ack(&frame, &again.job_id, "51405").await;
    agent
        .reply(
            fresh(),
            &again.job_id,
            "aws.ssm.sendCommand",
            reply_content("InProgress", None),
        )
        .await;
    assert_eq!(invocation(&t, &id, A).await["Status"], "InProgress");
}

#[tokio::test]
async fn targets_select_nodes_by_tag() {
    let t = nodes(&[A, B, C]).await;
    for (id, env) in [(A, "prod"), (B, "dev"), (C, "prod")] {
        t.call(
            "AddTagsToResource",
            json!({"ResourceType": "ManagedInstance", "ResourceId": id,
                "Tags": [{"Key": "Env", "Value": env}]}),
        )
        .await
        .ok();
    }
    let cmd = send_command(
        &t,
        json!({"Targets": [{"Key": "tag:Env", "Values": ["prod"]}]}),
    )
    .await;
    assert_eq!(cmd["TargetCount"], 2);
    assert_eq!(cmd["InstanceIds"], json!([]));
    assert_eq!(
        cmd["Targets"],
        json!([{"Key": "tag:Env", "Values": ["prod"]}])
    );
    let id = cmd["CommandId"].as_str().unwrap();
    let list = t
        .call("ListCommandInvocations", json!({"CommandId": id}))
        .await
        .ok();
    let ids: Vec<&str> = list["CommandInvocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["InstanceId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [A, C]);
    let cmd = send_command(
        &t,
        json!({"Targets": [{"Key": "tag-key", "Values": ["Env"]}]}),
    )
    .await;
    assert_eq!(cmd["TargetCount"], 3);
    let cmd = send_command(
        &t,
        json!({"Targets": [{"Key": "InstanceIds", "Values": [B]}]}),
    )
    .await;
    assert_eq!(cmd["TargetCount"], 1);
}

#[tokio::test]
async fn invalid_requests_get_the_aws_errors() {
    let t = nodes(&[A]).await;
    let call = |body: Value| t.call("SendCommand", body);
    let doc = "AWS-RunShellScript";
    let commands = json!({"commands": ["true"]});
    for (body, code) in [
        (
            json!({"DocumentName": doc, "Parameters": commands}),
            "ValidationException",
        ),
        (
            json!({"DocumentName": doc, "Parameters": commands, "InstanceIds": [A],
                "Targets": [{"Key": "tag:Env", "Values": ["x"]}]}),
            "ValidationException",
        ),
        (
            json!({"DocumentName": doc, "Parameters": commands, "InstanceIds": ["i-1"]}),
            "ValidationException",
        ),
        (
            json!({"DocumentName": doc, "Parameters": commands, "InstanceIds": [A], "TimeoutSeconds": 10}),
            "ValidationException",
        ),
        (
            json!({"DocumentName": doc, "Parameters": commands, "InstanceIds": [A], "MaxConcurrency": "0"}),
            "ValidationException",
        ),
        (
            json!({"DocumentName": doc, "Parameters": commands, "InstanceIds": [A], "Comment": "x".repeat(101)}),
            "ValidationException",
        ),
        (
            json!({"DocumentName": doc, "Parameters": commands, "InstanceIds": [B]}),
            "InvalidInstanceId",
        ),
        (
            json!({"DocumentName": doc, "Parameters": commands, "InstanceIds": [A, A]}),
            "DuplicateInstanceId",
        ),
        (
            json!({"DocumentName": "No-Such-Doc", "InstanceIds": [A]}),
            "InvalidDocument",
        ),
        (
            json!({"DocumentName": "SSM-SessionManagerRunShell", "InstanceIds": [A]}),
            "InvalidDocument",
        ),
        (
            json!({"DocumentName": doc, "InstanceIds": [A], "Parameters": {"nope": ["1"]}}),
            "InvalidParameters",
        ),
    ] {
        call(body).await.client_error(code);
    }
    let unknown = "11111111-2222-3333-4444-555555555555";
    t.call(
        "GetCommandInvocation",
        json!({"CommandId": unknown, "InstanceId": A}),
    )
    .await
    .client_error("InvocationDoesNotExist");
    t.call("CancelCommand", json!({"CommandId": unknown}))
        .await
        .client_error("InvalidCommandId");
    t.call("ListCommands", json!({"CommandId": unknown}))
        .await
        .client_error("InvalidCommandId");
    t.call(
        "ListCommands",
        json!({"Filters": [{"key": "Colour", "value": "x"}]}),
    )
    .await
    .client_error("ValidationException");
    let id = send_command(&t, json!({"InstanceIds": [A]})).await["CommandId"]
        .as_str()
        .unwrap()
        .to_owned();
    t.call(
        "GetCommandInvocation",
        json!({"CommandId": id, "InstanceId": "i-0123456789abcdef9"}),
    )
    .await
    .client_error("InvocationDoesNotExist");
    t.call(
        "GetCommandInvocation",
        json!({"CommandId": id, "InstanceId": A, "PluginName": "aws:nothing"}),
    )
    .await
    .client_error("InvalidPluginName");
    t.call(
        "CancelCommand",
        json!({"CommandId": id, "InstanceIds": [A, A]}),
    )
    .await
    .client_error("DuplicateInstanceId");
    let _ = full_report;
}

#[tokio::test]
async fn list_commands_paginates_newest_first() {
    let t = nodes(&[A]).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(send_command(&t, json!({"InstanceIds": [A]})).await["CommandId"].clone());
    }
    let first = t.call("ListCommands", json!({"MaxResults": 2})).await.ok();
    assert_eq!(first["Commands"][0]["CommandId"], ids[2]);
    assert_eq!(first["Commands"][1]["CommandId"], ids[1]);
    let token = first["NextToken"].as_str().unwrap();
    let second = t
        .call("ListCommands", json!({"MaxResults": 2, "NextToken": token}))
        .await
        .ok();
    assert_eq!(second["Commands"].as_array().unwrap().len(), 1);
    assert_eq!(second["Commands"][0]["CommandId"], ids[0]);
    assert!(second.get("NextToken").is_none());
    let by_node = t.call("ListCommands", json!({"InstanceId": A})).await.ok();
    assert_eq!(by_node["Commands"].as_array().unwrap().len(), 3);
}
