//! A simulated agent against a fake service that records what it sends, checked against the
//! real agent's traffic (`tests/golden/agent-traffic.json`, extracted from
//! `shared/spec/traces/agent-{startup,runcommand-mgs,cancel}.jsonl`).
//!
//! Everything runs on real sockets on 127.0.0.1. Waits are bounded ([`WAIT`]) and no
//! assertion depends on how long anything took.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use ssm_agent_sim::net::Proxy;
use ssm_agent_sim::{FleetConfig, InstanceConfig, Timings};
use ssm_protocol::{Message, MessageType};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use common::jobs::{Event, Fake, ToAgent, app};
use common::{INSTANCE, WAIT};

// ---------------------------------------------------------------------------------------------
// The harness: one agent against one fake.
// ---------------------------------------------------------------------------------------------

struct Harness {
    fake: Arc<Fake>,
    events: mpsc::UnboundedReceiver<Event>,
    /// MessageIds of agent frames already returned, so that a resend never counts twice.
    seen: HashSet<Uuid>,
    shutdown: CancellationToken,
    fleet: tokio::task::JoinHandle<()>,
    addr: SocketAddr,
    work: TempDir,
}

impl Harness {
    async fn start(proxy: impl FnOnce(SocketAddr) -> Option<Proxy>) -> Harness {
        let (fake, events) = Fake::new();
        let shutdown = CancellationToken::new();
        let addr = common::serve(app(fake.clone()), &shutdown).await;
        let work = TempDir::new().unwrap();
        let config = FleetConfig {
            instances: vec![InstanceConfig {
                tags: BTreeMap::from([("Env".to_owned(), "test".to_owned())]),
                ..common::instance()
            }],
            timings: Timings {
                heartbeat: Duration::from_secs(3600),
                keepalive: Duration::from_secs(5),
                reply_ack_wait: Duration::from_millis(100),
                reply_resend: Duration::from_millis(300),
                reconnect_jitter: Duration::from_millis(50),
                retry_initial: Duration::from_millis(50),
                retry_max: Duration::from_secs(1),
                real_read_pacing: false,
            },
            proxy: proxy(addr),
            ..common::fleet_config(addr, &work)
        };
        let fleet_shutdown = shutdown.clone();
        let fleet = tokio::spawn(async move {
            ssm_agent_sim::run_fleet(config, fleet_shutdown)
                .await
                .unwrap();
        });
        Harness {
            fake,
            events,
            seen: HashSet::new(),
            shutdown,
            fleet,
            addr,
            work,
        }
    }

    /// The next event `pick` accepts; others are skipped.
    async fn next<T>(&mut self, what: &str, mut pick: impl FnMut(Event) -> Option<T>) -> T {
        let wait = async {
            loop {
                let event = self.events.recv().await.expect("the fake is running");
                if let Some(found) = pick(event) {
                    return found;
                }
            }
        };
        tokio::time::timeout(WAIT, wait)
            .await
            .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
    }

    /// The next agent frame not seen before (resends are skipped).
    async fn frame(&mut self) -> Message {
        loop {
            let message = self
                .next("agent frame", |event| match event {
                    Event::Frame(message) => Some(message),
                    _ => None,
                })
                .await;
            if self.seen.insert(message.message_id) {
                return message;
            }
        }
    }

    /// Waits for the control channel to be open (its open frame).
    async fn opened(&mut self) -> String {
        self.next("open frame", |event| match event {
            Event::Open(raw) => Some(raw),
            _ => None,
        })
        .await
    }

    fn send_job(&self, text: &str, message_id: &str, created: u64) {
        let id = Uuid::parse_str(message_id).unwrap();
        let mut message = Message::new(MessageType::AgentJob, created, id);
        message.payload = text.as_bytes().to_vec();
        self.fake.to_agent(ToAgent::Frame(message));
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.fleet.await.unwrap();
        drop(self.work);
    }
}

// ---------------------------------------------------------------------------------------------
// Golden data.
// ---------------------------------------------------------------------------------------------

fn golden() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/agent-traffic.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap()
}

/// Replaces every `2026-11-22T22:43:07.685Z`-shaped timestamp with `<time>`.
fn without_times(text: &str) -> String {
    let bytes = text.as_bytes();
    let shape = b"dddd-dd-ddTdd:dd:dd.dddZ";
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let fits = bytes.len() - i >= shape.len()
            && shape.iter().zip(&bytes[i..]).all(|(s, b)| match s {
                b'd' => b.is_ascii_digit(),
                other => other == b,
            });
        if fits {
            out.push_str("<time>");
            i += shape.len();
        } else {
            out.push(bytes[i] as char);
            i += 1;
        }
    }
    out
}

fn payload_text(message: &Message) -> String {
    String::from_utf8(message.payload.clone()).unwrap()
}

/// The agent frames' fixed header fields, as in every recorded agent frame.
fn assert_agent_header(message: &Message) {
    assert_eq!(message.schema_version, 1);
    assert_eq!(message.sequence_number, 0);
    assert_eq!(message.flags.0, 0);
    assert_eq!(message.payload_type.as_u32(), 0);
}

/// Checks the agent's frames for one job against the recorded ones: the ack exactly, the
/// replies exactly apart from timestamps, in any order (replies 2 and 3 race on the agent).
async fn check_job(harness: &mut Harness, recorded: &[Value], replace: &[(&str, &str)]) {
    let mut expected: Vec<String> = recorded
        .iter()
        .map(|frame| {
            let mut text = without_times(&format!(
                "{}:{}",
                text(&frame["type"]),
                text(&frame["text"])
            ));
            for (from, to) in replace {
                text = text.replace(from, to);
            }
            text
        })
        .collect();
    let mut got = Vec::new();
    for _ in 0..expected.len() {
        let message = harness.frame().await;
        assert_agent_header(&message);
        got.push(without_times(&format!(
            "{}:{}",
            message.message_type,
            payload_text(&message)
        )));
    }
    // The ack and reply 1 come first and in this order, as recorded.
    assert_eq!(got[..2], expected[..2]);
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
}

// ---------------------------------------------------------------------------------------------
// Tests.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn startup_matches_the_real_agent() {
    let golden = golden();
    let api = golden["startup_api"].as_array().unwrap();
    let mut harness = Harness::start(|_| None).await;

    // 1. The minimal report, byte for byte, before anything else.
    let first = harness.next("first event", Some).await;
    match first {
        Event::Api { target, body } => {
            assert_eq!(target, "AmazonSSM.UpdateInstanceInformation");
            assert_eq!(body, text(&api[0]["req"]));
        }
        other => panic!("first call was {other:?}"),
    }

    // 2. CreateControlChannel, the full report, tags, the upgrade and the open frame, in the
    // order the agent's concurrent tasks happen to produce.
    let mut token = None;
    let mut full_report = None;
    let mut tags = None;
    let mut upgrade = None;
    let open = loop {
        match harness.next("startup event", Some).await {
            Event::CreateControlChannel {
                path,
                body,
                token: t,
            } => {
                assert_eq!(path, text(&api[1]["path"]));
                let shape: Value = serde_json::from_str(&body).unwrap();
                let request_id = shape["RequestId"].as_str().unwrap();
                Uuid::parse_str(request_id).unwrap();
                assert_eq!(
                    body,
                    format!(r#"{{"MessageSchemaVersion":"1.0","RequestId":"{request_id}"}}"#)
                );
                token = Some(t);
            }
            Event::Api { target, body } if target == "AmazonSSM.UpdateInstanceInformation" => {
                full_report = Some(body);
            }
            Event::Api { target, body } if target == "AmazonSSM.AddTagsToResource" => {
                tags = Some(body);
            }
            Event::Upgrade { uri, headers } => upgrade = Some((uri, headers)),
            Event::Open(raw) => break raw,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(full_report.as_deref(), Some(text(&api[2]["req"])));
    let (uri, headers) = upgrade.expect("an upgrade before the open frame");
    assert_eq!(uri, text(&golden["upgrade_path"]));
    assert_eq!(headers["user-agent"], "Go-http-client/1.1");
    let authorization = headers["authorization"].to_str().unwrap();
    assert!(
        authorization.contains("/us-east-1/ssmmessages/aws4_request"),
        "{authorization}"
    );
    assert!(
        authorization.contains("SignedHeaders=host;x-amz-date"),
        "{authorization}"
    );

    // The open frame: the recorded bytes with this connection's RequestId and token.
    let token = token.expect("CreateControlChannel before the open frame");
    let recorded: Value = serde_json::from_str(text(&golden["open_frame"])).unwrap();
    let sent: Value = serde_json::from_str(&open).unwrap();
    let expected = text(&golden["open_frame"])
        .replace(text(&recorded["RequestId"]), text(&sent["RequestId"]))
        .replace(text(&recorded["TokenValue"]), &token);
    assert_eq!(open, expected);
    assert_ne!(sent["RequestId"], Value::Null);

    // Tags come after a successful report.
    let tags = match tags {
        Some(tags) => tags,
        None => {
            harness
                .next("AddTagsToResource", |event| match event {
                    Event::Api { target, body } if target == "AmazonSSM.AddTagsToResource" => {
                        Some(body)
                    }
                    _ => None,
                })
                .await
        }
    };
    assert_eq!(
        tags,
        format!(
            r#"{{"ResourceType":"ManagedInstance","ResourceId":"{INSTANCE}","Tags":[{{"Key":"Env","Value":"test"}}]}}"#
        )
    );
    harness.stop().await;
}

#[tokio::test]
async fn run_command_replies_match_the_trace() {
    let golden = golden();
    let mut harness = Harness::start(|_| None).await;
    harness.opened().await;

    // `echo hello` (job 3 of agent-runcommand-mgs.jsonl): ack and three replies.
    let jobs = golden["hello_job"].as_array().unwrap();
    let frames = golden["hello"].as_array().unwrap();
    harness.send_job(
        text(&jobs[0]["text"]),
        text(&jobs[0]["msgid"]),
        jobs[0]["created"].as_u64().unwrap(),
    );
    check_job(&mut harness, &frames[..4], &[]).await;

    // The same CommandId again (job 4): ack 51405 DuplicateCommand, byte for byte.
    harness.send_job(
        text(&jobs[1]["text"]),
        text(&jobs[1]["msgid"]),
        jobs[1]["created"].as_u64().unwrap(),
    );
    let duplicate = harness.frame().await;
    assert_eq!(duplicate.message_type, MessageType::AgentJobAck);
    assert_eq!(payload_text(&duplicate), text(&frames[4]["text"]));

    // List-valued String parameters (job 1): Failed without running, the recorded message.
    // Its ack is the next agent frame, so the duplicate above produced no replies.
    let jobs = golden["list_params_job"].as_array().unwrap();
    harness.send_job(
        text(&jobs[0]["text"]),
        text(&jobs[0]["msgid"]),
        jobs[0]["created"].as_u64().unwrap(),
    );
    check_job(&mut harness, golden["list_params"].as_array().unwrap(), &[]).await;

    // `…; id -un; pwd; echo err >&2; exit 3` (job 2), run in `/` as the real agent did; the
    // user is whoever runs the test instead of root.
    let user = String::from_utf8(
        std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let user = user.trim();
    let jobs = golden["exit3_job"].as_array().unwrap();
    let job = text(&jobs[0]["text"]).replace(
        r#"\"workingDirectory\": \"\""#,
        r#"\"workingDirectory\": \"/\""#,
    );
    assert_ne!(job, text(&jobs[0]["text"]));
    harness.send_job(
        &job,
        text(&jobs[0]["msgid"]),
        jobs[0]["created"].as_u64().unwrap(),
    );
    let root_line = r"\\nroot\\n";
    let user_line = format!(r"\\n{user}\\n");
    check_job(
        &mut harness,
        golden["exit3"].as_array().unwrap(),
        &[(root_line, &user_line)],
    )
    .await;
    harness.stop().await;
}

#[tokio::test]
async fn unacknowledged_replies_are_resent_with_the_same_message_id() {
    let golden = golden();
    let mut harness = Harness::start(|_| None).await;
    harness.opened().await;
    harness.fake.ack_replies.store(false, Ordering::Relaxed);

    let job = &golden["hello_job"][0];
    harness.send_job(
        text(&job["text"]),
        text(&job["msgid"]),
        job["created"].as_u64().unwrap(),
    );
    let mut replies = BTreeMap::new();
    while replies.len() < 3 {
        let message = harness.frame().await;
        if message.message_type == MessageType::AgentJobReply {
            replies.insert(message.message_id, payload_text(&message));
        }
    }
    let reply_one = replies
        .iter()
        .find(|(_, text)| text.contains(r#"\"runtimeStatus\":null"#))
        .map(|(id, _)| *id)
        .unwrap();

    // Replies 2 and 3 come again, same MessageId, same content apart from `dateTime`;
    // reply 1 is never resent.
    let mut resent = BTreeMap::new();
    while resent.len() < 2 {
        let message = harness
            .next("resent reply", |event| match event {
                Event::Frame(message) if replies.contains_key(&message.message_id) => Some(message),
                _ => None,
            })
            .await;
        assert_ne!(message.message_id, reply_one, "reply 1 is sent once");
        resent.insert(message.message_id, payload_text(&message));
    }
    for (id, text) in &resent {
        assert_eq!(without_times(text), without_times(&replies[id]));
    }

    // Once acked, they stop: after acks resume, a new job's frames follow without the old
    // replies in between for long (each resend left is acked and removed).
    harness.fake.ack_replies.store(true, Ordering::Relaxed);
    harness.stop().await;
}

#[tokio::test]
async fn cancel_matches_the_trace() {
    let golden = golden();
    let mut harness = Harness::start(|_| None).await;
    harness.opened().await;
    let frames = golden["cancel"].as_array().unwrap();
    let jobs = golden["cancel_jobs"].as_array().unwrap();

    // `echo start; sleep 60; echo done`, plus a marker file that tells the test the script
    // is running (it adds no output).
    let marker = harness.work.path().join("started");
    let job = text(&jobs[0]["text"]).replace(
        r#"\"sleep 60\""#,
        &format!(r#"\"touch {}\", \"sleep 60\""#, marker.display()),
    );
    assert_ne!(job, text(&jobs[0]["text"]));
    harness.send_job(
        &job,
        text(&jobs[0]["msgid"]),
        jobs[0]["created"].as_u64().unwrap(),
    );
    for frame in &frames[..2] {
        let message = harness.frame().await;
        assert_eq!(
            without_times(&payload_text(&message)),
            without_times(text(&frame["text"]))
        );
    }
    let started = async {
        while !marker.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WAIT, started)
        .await
        .expect("the script starts");

    // The cancel: its own ack (exact) and InProgress reply on the cancel topic, then the
    // command's replies 2 and 3: Cancelled, 137, `start\n`.
    harness.send_job(
        text(&jobs[1]["text"]),
        text(&jobs[1]["msgid"]),
        jobs[1]["created"].as_u64().unwrap(),
    );
    check_job(&mut harness, &frames[2..], &[]).await;
    harness.stop().await;
}

#[tokio::test]
async fn control_channel_reconnects_after_the_server_closes_it() {
    let golden = golden();
    let mut harness = Harness::start(|_| None).await;
    let first = harness.opened().await;
    harness.fake.to_agent(ToAgent::Close);

    // A new CreateControlChannel (new RequestId, new token), a new upgrade, a new open frame.
    let (body, token) = harness
        .next("second CreateControlChannel", |event| match event {
            Event::CreateControlChannel { body, token, .. } => Some((body, token)),
            _ => None,
        })
        .await;
    let second = harness.opened().await;
    let first: Value = serde_json::from_str(&first).unwrap();
    let second: Value = serde_json::from_str(&second).unwrap();
    assert_eq!(second["TokenValue"], token.as_str());
    assert_ne!(first["TokenValue"], second["TokenValue"]);
    assert_ne!(first["RequestId"], second["RequestId"]);
    assert!(!body.contains(text(&first["RequestId"])));

    // Jobs work over the new socket.
    let job = &golden["hello_job"][0];
    harness.send_job(
        text(&job["text"]),
        text(&job["msgid"]),
        job["created"].as_u64().unwrap(),
    );
    let ack = harness.frame().await;
    assert_eq!(ack.message_type, MessageType::AgentJobAck);
    assert_eq!(payload_text(&ack), text(&golden["hello"][0]["text"]));
    harness.stop().await;
}

/// A CONNECT proxy that records each tunnel's target.
async fn connect_proxy() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let targets = Arc::new(Mutex::new(Vec::new()));
    let recorded = targets.clone();
    tokio::spawn(async move {
        loop {
            let (mut client, _) = listener.accept().await.unwrap();
            let targets = recorded.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    head.push(client.read_u8().await.unwrap());
                }
                let head = String::from_utf8(head).unwrap();
                let target = head
                    .strip_prefix("CONNECT ")
                    .and_then(|rest| rest.split(' ').next())
                    .expect("a CONNECT request")
                    .to_owned();
                targets.lock().unwrap().push(target.clone());
                let mut upstream = TcpStream::connect(&target).await.unwrap();
                client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (addr, targets)
}

#[tokio::test]
async fn every_connection_goes_through_the_connect_proxy() {
    let (proxy, targets) = connect_proxy().await;
    let mut harness =
        Harness::start(|_| Some(Proxy::parse(&format!("http://{proxy}"), "").unwrap())).await;
    harness.opened().await;
    let golden = golden();
    let job = &golden["hello_job"][0];
    harness.send_job(
        text(&job["text"]),
        text(&job["msgid"]),
        job["created"].as_u64().unwrap(),
    );
    let ack = harness.frame().await;
    assert_eq!(payload_text(&ack), text(&golden["hello"][0]["text"]));

    // Minimal report, CreateControlChannel and the websocket at least; all to the fake.
    let targets = targets.lock().unwrap().clone();
    assert!(targets.len() >= 3, "{targets:?}");
    let fake = harness.addr.to_string();
    assert!(targets.iter().all(|t| *t == fake), "{targets:?}");
    harness.stop().await;
}
