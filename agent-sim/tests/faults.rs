//! Agent-side faults through [`FleetHandle`]: a crash (socket dropped without a Close frame,
//! commands surviving, the startup sequence again with the same id, or staying down), a slow
//! agent (job ack delay, command start delay), and an agent reporting an old version.
//!
//! One agent against a fake service on real sockets (the pattern of `agent.rs`). Waits are
//! bounded ([`WAIT`]); no assertion depends on how long anything took. Where a test shows that
//! something has *not* happened yet, it first waits for a later effect of the agent's own
//! work: an `interactive_shell` sent after the job makes the agent call CreateDataChannel,
//! which the fake refuses, so the agent retries with a backoff; three such calls mean the agent
//! has read and handled everything sent before, and a prompt agent would have answered by then.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use ssm_agent_sim::{
    AgentState, Fleet, FleetConfig, FleetHandle, InstanceConfig, PlannedCrash, Slowness, Timings,
};
use ssm_protocol::{Message, MessageType};
use tempfile::TempDir;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use common::jobs::{Event, Fake, ToAgent, app};
use common::{INSTANCE, WAIT};

/// Long enough never to pass during a test: only a new setting releases what waits on it.
const FOREVER: Duration = Duration::from_secs(3600);
/// CreateDataChannel calls that show the agent has handled what was sent before (see the
/// module docs).
const MARKER_CALLS: usize = 3;

/// An `interactive_shell` (agent-shell.jsonl's, with the session id replaced).
const INTERACTIVE_SHELL: &str = r#"{"Content": "{\"DocumentName\": \"SSM-SessionManagerRunShell\", \"SessionId\": \"SESSION\", \"RunAsUser\": \"\", \"SessionOwner\": \"arn:aws:iam::123456789012:user/admin\", \"Parameters\": {}, \"DocumentContent\": {\"schemaVersion\": \"1.0\", \"description\": \"Session document\", \"sessionType\": \"Standard_Stream\", \"inputs\": {\"s3BucketName\": \"\", \"s3KeyPrefix\": \"\", \"s3EncryptionEnabled\": false, \"cloudWatchLogGroupName\": \"\", \"cloudWatchStreamingEnabled\": false, \"cloudWatchEncryptionEnabled\": false, \"kmsKeyId\": \"\", \"runAsEnabled\": false, \"runAsDefaultUser\": \"\", \"shellProfile\": {\"windows\": \"\", \"linux\": \"\"}}, \"parameters\": {}, \"properties\": {}}}", "TaskId": "SESSION", "Topic": "aws.ssm.startSession", "SchemaVersion": 1}"#;

// ---------------------------------------------------------------------------------------------
// The harness: one agent against one fake, with the fleet's handle.
// ---------------------------------------------------------------------------------------------

struct Harness {
    fake: Arc<Fake>,
    events: mpsc::UnboundedReceiver<Event>,
    agents: FleetHandle,
    shutdown: CancellationToken,
    fleet: tokio::task::JoinHandle<()>,
    work: TempDir,
    /// The last full `UpdateInstanceInformation` that [`Harness::startup`] passed over.
    full_report: Option<Value>,
}

impl Harness {
    async fn start(agent_version: &str) -> Harness {
        let (fake, events) = Fake::new();
        let shutdown = CancellationToken::new();
        let addr = common::serve(app(fake.clone()), &shutdown).await;
        let work = TempDir::new().unwrap();
        let config = FleetConfig {
            instances: vec![InstanceConfig {
                platform_name: "Amazon Linux".to_owned(),
                platform_version: "2023".to_owned(),
                agent_version: agent_version.to_owned(),
                ..common::instance()
            }],
            timings: Timings {
                heartbeat: FOREVER,
                ..Timings::fast()
            },
            seed: 5,
            ..common::fleet_config(addr, &work)
        };
        let fleet = Fleet::new(config).unwrap();
        let agents = fleet.handle();
        let fleet = tokio::spawn(fleet.run(shutdown.clone()));
        Harness {
            fake,
            events,
            agents,
            shutdown,
            fleet,
            work,
            full_report: None,
        }
    }

    /// Events up to and including the first that `stop` accepts.
    async fn until(&mut self, what: &str, mut stop: impl FnMut(&Event) -> bool) -> Vec<Event> {
        let wait = async {
            let mut seen = Vec::new();
            loop {
                let event = self.events.recv().await.expect("the fake is running");
                let done = stop(&event);
                seen.push(event);
                if done {
                    return seen;
                }
            }
        };
        tokio::time::timeout(WAIT, wait)
            .await
            .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
    }

    /// The next agent frame of type `kind`; other events are skipped.
    async fn frame(&mut self, kind: MessageType) -> Message {
        let mut events = self
            .until(
                &format!("{kind} frame"),
                |event| matches!(event, Event::Frame(m) if m.message_type == kind),
            )
            .await;
        match events.pop() {
            Some(Event::Frame(message)) => message,
            other => unreachable!("{other:?}"),
        }
    }

    /// Waits for the agent's startup sequence: the minimal report first, then
    /// CreateControlChannel, the upgrade and the open frame for this instance. Returns the
    /// minimal report's body and the open frame.
    async fn startup(&mut self) -> (Value, Value) {
        let events = self
            .until("open frame", |event| matches!(event, Event::Open(_)))
            .await;
        let mut events = events.into_iter().filter(|event| {
            // A reconnect may follow a crash's close; the startup is what comes after it.
            !matches!(event, Event::Closed { .. } | Event::CreateDataChannel)
        });
        let minimal = match events.next() {
            Some(Event::Api { target, body }) => {
                assert_eq!(target, "AmazonSSM.UpdateInstanceInformation");
                json_of(&body)
            }
            other => panic!("the startup began with {other:?}"),
        };
        let keys: Vec<&str> = minimal
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 4, "the minimal report: {minimal}");
        assert_eq!(minimal["InstanceId"], INSTANCE);
        let mut created = false;
        let mut upgraded = false;
        let mut open = None;
        for event in events {
            match event {
                Event::CreateControlChannel { path, .. } => {
                    assert_eq!(path, format!("/v1/control-channel/{INSTANCE}"));
                    created = true;
                }
                Event::Upgrade { uri, .. } => {
                    assert!(created, "CreateControlChannel before the upgrade");
                    assert_eq!(
                        uri,
                        format!("/v1/control-channel/{INSTANCE}?role=subscribe&stream=input")
                    );
                    upgraded = true;
                }
                Event::Open(frame) => open = Some(json_of(&frame)),
                // The full report and tags race with the channel.
                Event::Api { target, body } => {
                    if target == "AmazonSSM.UpdateInstanceInformation" {
                        self.full_report = Some(json_of(&body));
                    }
                }
                other => panic!("unexpected during startup: {other:?}"),
            }
        }
        assert!(upgraded);
        (minimal, open.expect("the open frame ends the startup"))
    }

    fn send(&self, kind: MessageType, payload: &str) -> Uuid {
        let id = self.fake.next_id();
        let mut message = Message::new(kind, 1_795_387_417_974, id);
        message.payload = payload.as_bytes().to_vec();
        self.fake.to_agent(ToAgent::Frame(message));
        id
    }

    /// Sends `commands` as an AWS-RunShellScript job; returns its JobId.
    fn send_command(&self, command_id: &str, commands: &[String]) -> String {
        let job_id = format!("aws.ssm.{command_id}.{INSTANCE}");
        let content = json!({
            "CommandId": command_id,
            "DocumentName": "AWS-RunShellScript",
            "OutputS3BucketName": "",
            "OutputS3KeyPrefix": "",
            "CloudWatchLogGroupName": "",
            "CloudWatchOutputEnabled": "false",
            "Parameters": {
                "commands": commands,
                "workingDirectory": self.work.path().to_str().unwrap(),
                "executionTimeout": "3600",
            },
            "DocumentContent": {},
        });
        let job = json!({
            "Content": content.to_string(),
            "JobId": job_id,
            "Topic": "aws.ssm.sendCommand.test",
            "SchemaVersion": 1,
        });
        self.send(MessageType::AgentJob, &job.to_string());
        job_id
    }

    fn send_cancel(&self, command_id: &str) {
        let job = json!({
            "Content": json!({"CancelMessageId": format!("aws.ssm.{command_id}.{INSTANCE}")}).to_string(),
            "JobId": format!("aws.ssm.{}.{INSTANCE}", Uuid::from_u128(0xcafe)),
            "Topic": "aws.ssm.cancelCommand.test",
            "SchemaVersion": 1,
        });
        self.send(MessageType::AgentJob, &job.to_string());
    }

    /// Sends an `interactive_shell` and returns every event up to the agent's
    /// [`MARKER_CALLS`]th CreateDataChannel for it.
    async fn marker(&mut self, session: &str) -> Vec<Event> {
        self.send(
            MessageType::InteractiveShell,
            &INTERACTIVE_SHELL.replace("SESSION", session),
        );
        let mut calls = 0;
        self.until("CreateDataChannel calls", |event| {
            calls += usize::from(matches!(event, Event::CreateDataChannel));
            calls == MARKER_CALLS
        })
        .await
    }

    /// Polls until `check` holds for the agent's status.
    async fn status_until(&self, what: &str, check: impl Fn(&ssm_agent_sim::AgentStatus) -> bool) {
        let poll = async {
            while !check(&self.agents.status(INSTANCE).unwrap()) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(WAIT, poll)
            .await
            .unwrap_or_else(|_| panic!("{what}: still {:?}", self.agents.status(INSTANCE)));
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.fleet.await.unwrap();
        drop(self.work);
    }
}

fn payload(message: &Message) -> Value {
    serde_json::from_slice(&message.payload).unwrap()
}

/// The SendReplyPayload inside an `agent_job_reply`.
fn reply_content(message: &Message) -> Value {
    serde_json::from_str(payload(message)["content"].as_str().unwrap()).unwrap()
}

/// A command's replies 2 and 3 (they race on the agent): returns the terminal one.
async fn final_reply(harness: &mut Harness, job_id: &str) -> Value {
    loop {
        let message = harness.frame(MessageType::AgentJobReply).await;
        if payload(&message)["jobId"] != job_id {
            continue;
        }
        let reply = reply_content(&message);
        if reply["documentStatus"] != "InProgress" {
            return reply;
        }
    }
}

async fn exists_within(path: &Path) {
    let poll = async {
        while !path.exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(WAIT, poll)
        .await
        .unwrap_or_else(|_| panic!("{} never appeared", path.display()));
}

/// A body or frame the agent sends as JSON.
fn json_of(text: &str) -> Value {
    serde_json::from_str(text).expect("the agent sends JSON")
}

fn is_job_frame(event: &Event) -> bool {
    matches!(event, Event::Frame(m)
        if matches!(m.message_type, MessageType::AgentJobAck | MessageType::AgentJobReply))
}

// ---------------------------------------------------------------------------------------------
// Tests.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_crash_drops_the_socket_keeps_the_command_and_restarts_with_the_startup_sequence() {
    let mut harness = Harness::start("3.3.1142.0").await;
    harness.startup().await;

    let started = harness.work.path().join("started");
    let release = harness.work.path().join("release");
    let finished = harness.work.path().join("finished");
    let command = "11111111-2222-3333-4444-555555555555";
    let job = harness.send_command(
        command,
        &[
            format!("touch {}", started.display()),
            format!("while [ ! -e {} ]; do sleep 0.02; done", release.display()),
            "echo survived".to_owned(),
            format!("touch {}", finished.display()),
        ],
    );
    let ack = harness.frame(MessageType::AgentJobAck).await;
    assert_eq!(payload(&ack)["jobId"], job.as_str());
    exists_within(&started).await;

    // The crash: the control socket ends without a Close frame, and the agent stays down.
    harness.agents.crash(INSTANCE, None).unwrap();
    let closed = harness
        .until("the control socket's end", |e| {
            matches!(e, Event::Closed { .. })
        })
        .await;
    assert!(
        matches!(closed.last(), Some(Event::Closed { close_frame: false })),
        "{closed:?}"
    );
    harness
        .status_until("down, channel closed", |s| {
            s.state == AgentState::Down { restart_in: None }
                && !s.control_channel_open
                && s.crashes == 1
        })
        .await;

    // The command's process outlives the agent, as the real agent's document worker does.
    std::fs::write(&release, "").unwrap();
    exists_within(&finished).await;
    let silent: Vec<Event> = std::iter::from_fn(|| harness.events.try_recv().ok()).collect();
    assert!(silent.is_empty(), "a down agent said {silent:?}");

    // The restart: the startup sequence from the start, same instance id; then the command's
    // result, produced while the agent was down.
    harness.agents.restart(INSTANCE).unwrap();
    harness.startup().await;
    let reply = final_reply(&mut harness, &job).await;
    assert_eq!(reply["documentStatus"], "Success");
    let plugin = &reply["runtimeStatus"]["aws:runShellScript"];
    assert_eq!(plugin["standardOutput"], "survived\n");
    harness
        .status_until("running, channel open", |s| {
            s.state == AgentState::Running && s.control_channel_open && s.crashes == 1
        })
        .await;

    // What the agent knew before the crash it still knows: the same CommandId is a duplicate.
    harness.send_command(command, &["echo again".to_owned()]);
    let duplicate = harness.frame(MessageType::AgentJobAck).await;
    assert_eq!(payload(&duplicate)["statusCode"], "51405");
    harness.stop().await;
}

#[tokio::test]
async fn a_planned_crash_with_a_restart_comes_back_by_itself() {
    let mut harness = Harness::start("3.3.1142.0").await;
    let (_, first_open) = harness.startup().await;
    harness
        .agents
        .plan_crash(
            INSTANCE,
            PlannedCrash {
                after: Duration::ZERO,
                restart_after: Some(Duration::from_millis(50)),
            },
        )
        .unwrap();
    let closed = harness
        .until("the control socket's end", |e| {
            matches!(e, Event::Closed { .. })
        })
        .await;
    assert!(matches!(
        closed.last(),
        Some(Event::Closed { close_frame: false })
    ));
    let (_, second_open) = harness.startup().await;
    assert_ne!(first_open["RequestId"], second_open["RequestId"]);
    harness
        .status_until("running again", |s| {
            s.state == AgentState::Running && s.crashes == 1 && s.crash_planned_in.is_none()
        })
        .await;

    // Jobs work on the new life.
    let job = harness.send_command(
        "21111111-2222-3333-4444-555555555555",
        &["echo back".to_owned()],
    );
    let reply = final_reply(&mut harness, &job).await;
    assert_eq!(reply["documentStatus"], "Success");
    harness.stop().await;
}

#[tokio::test]
async fn a_slow_agent_acks_a_job_only_once_its_delay_has_passed() {
    let mut harness = Harness::start("3.3.1142.0").await;
    harness.startup().await;
    let slow = Slowness {
        job_ack_delay: FOREVER,
        command_start_delay: Duration::ZERO,
    };
    harness.agents.set_slowness(INSTANCE, slow).unwrap();
    assert_eq!(harness.agents.status(INSTANCE).unwrap().slowness, slow);

    let job = harness.send_command(
        "31111111-2222-3333-4444-555555555555",
        &["echo hello".to_owned()],
    );
    let before = harness.marker("sess-marker-1").await;
    assert!(
        !before.iter().any(is_job_frame),
        "answered before its delay: {before:?}"
    );

    // Lowering the delay releases the waiting job: ack, then reply 1, then the result.
    harness
        .agents
        .set_slowness(INSTANCE, Slowness::NONE)
        .unwrap();
    let ack = harness.frame(MessageType::AgentJobAck).await;
    assert_eq!(payload(&ack)["jobId"], job.as_str());
    assert_eq!(payload(&ack)["statusCode"], "200");
    let reply = final_reply(&mut harness, &job).await;
    assert_eq!(reply["documentStatus"], "Success");
    harness.stop().await;
}

#[tokio::test]
async fn a_crash_loses_the_jobs_it_had_not_acknowledged() {
    let mut harness = Harness::start("3.3.1142.0").await;
    harness.startup().await;
    let slow = Slowness {
        job_ack_delay: FOREVER,
        command_start_delay: Duration::ZERO,
    };
    harness.agents.set_slowness(INSTANCE, slow).unwrap();
    let lost = harness.send_command(
        "41111111-2222-3333-4444-555555555555",
        &["echo lost".to_owned()],
    );
    let before = harness.marker("sess-marker-2").await;
    assert!(!before.iter().any(is_job_frame), "{before:?}");

    harness
        .agents
        .crash(INSTANCE, Some(Duration::ZERO))
        .unwrap();
    harness.startup().await;
    harness
        .agents
        .set_slowness(INSTANCE, Slowness::NONE)
        .unwrap();
    // Jobs are handled in order, so had the first survived, its ack would come first.
    let kept = harness.send_command(
        "51111111-2222-3333-4444-555555555555",
        &["echo kept".to_owned()],
    );
    let ack = harness.frame(MessageType::AgentJobAck).await;
    assert_eq!(payload(&ack)["jobId"], kept.as_str());
    assert_ne!(kept, lost);
    harness.stop().await;
}

#[tokio::test]
async fn a_slow_command_start_holds_the_process_until_released_or_cancelled() {
    let mut harness = Harness::start("3.3.1142.0").await;
    harness.startup().await;
    harness
        .agents
        .set_slowness(
            INSTANCE,
            Slowness {
                job_ack_delay: Duration::ZERO,
                command_start_delay: FOREVER,
            },
        )
        .unwrap();
    let cancelled_marker = harness.work.path().join("cancelled-ran");
    let released_marker = harness.work.path().join("released-ran");
    let cancelled_command = "61111111-2222-3333-4444-555555555555";
    let cancelled = harness.send_command(
        cancelled_command,
        &[format!("touch {}", cancelled_marker.display())],
    );
    let released = harness.send_command(
        "71111111-2222-3333-4444-555555555555",
        &[
            format!("touch {}", released_marker.display()),
            "echo released".to_owned(),
        ],
    );
    // Both acked at once (ack and reply 1 each)…
    for job in [&cancelled, &released] {
        let ack = harness.frame(MessageType::AgentJobAck).await;
        assert_eq!(payload(&ack)["jobId"], job.as_str());
    }
    // …but neither process has started, nor has either reported more than reply 1.
    let before = harness.marker("sess-marker-3").await;
    let more: Vec<&Event> = before
        .iter()
        .filter(|e| matches!(e, Event::Frame(m) if m.message_type == MessageType::AgentJobReply && reply_content(m)["runtimeStatus"] != Value::Null))
        .collect();
    assert!(more.is_empty(), "{more:?}");
    assert!(!cancelled_marker.exists() && !released_marker.exists());

    // A cancel ends a waiting command without running it.
    harness.send_cancel(cancelled_command);
    let reply = final_reply(&mut harness, &cancelled).await;
    assert_eq!(reply["documentStatus"], "Cancelled");
    assert_eq!(reply["runtimeStatus"]["aws:runShellScript"]["code"], 1);
    assert!(!cancelled_marker.exists());

    // Releasing the delay starts the other.
    harness
        .agents
        .set_slowness(INSTANCE, Slowness::NONE)
        .unwrap();
    let reply = final_reply(&mut harness, &released).await;
    assert_eq!(reply["documentStatus"], "Success");
    assert_eq!(
        reply["runtimeStatus"]["aws:runShellScript"]["standardOutput"],
        "released\n"
    );
    assert!(released_marker.exists());
    harness.stop().await;
}

#[tokio::test]
async fn an_old_agent_reports_its_version_everywhere() {
    const OLD: &str = "2.3.0.0";
    let mut harness = Harness::start(OLD).await;
    let (minimal, open) = harness.startup().await;
    assert_eq!(minimal["AgentVersion"], OLD);
    assert_eq!(open["AgentVersion"], OLD);
    // The full report races with the control channel: before the open frame or after it.
    let full = match harness.full_report.take() {
        Some(full) => full,
        None => match harness
            .until(
                "the full report",
                |e| matches!(e, Event::Api { body, .. } if json_of(body).get("AgentStatus").is_some()),
            )
            .await
            .pop()
        {
            Some(Event::Api { body, .. }) => json_of(&body),
            other => unreachable!("{other:?}"),
        },
    };
    assert_eq!(full["AgentVersion"], OLD);
    let job = harness.send_command(
        "81111111-2222-3333-4444-555555555555",
        &["echo old".to_owned()],
    );
    let reply = final_reply(&mut harness, &job).await;
    assert_eq!(reply["additionalInfo"]["agent"]["ver"], OLD);
    assert_eq!(harness.agents.instances()[0].agent_version, OLD);
    harness.stop().await;
}
