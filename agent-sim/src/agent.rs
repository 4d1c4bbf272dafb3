//! One simulated agent: a handful of tokio tasks that follow amazon-ssm-agent 3.3 (§9.4).
//!
//! 1. The startup check, `UpdateInstanceInformation` with four members, retried until the
//!    emulator answers (the real agent hibernates until then).
//! 2. Then at once: the control channel task ([`crate::control`]), the first full report with
//!    `SSMConnectionChannel: ""`, and the configured tags.
//! 3. Health pings: one at a random offset in `[0, heartbeat)`, then every `heartbeat`.
//! 4. The reply resend task of [`Jobs`].
//!
//! Everything the control channel receives comes to [`Agent::on_control_message`], which
//! dispatches by MessageType; sessions go to [`Sessions`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};
use ssm_protocol::{Message, MessageType};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::command::{Executor, ExecutorConfig};
use crate::config::{InstanceConfig, Timings};
use crate::jobs::Jobs;
use crate::limits::MAX_CONCURRENT_COMMANDS;
use crate::service::{ConnectionChannel, Service};
use crate::session::{SessionContext, Sessions};

/// What one agent knows and shares between its tasks.
#[derive(Debug)]
pub(crate) struct Agent {
    pub(crate) instance: InstanceConfig,
    pub(crate) service: Service,
    pub(crate) timings: Timings,
    pub(crate) random: Arc<Random>,
    pub(crate) jobs: Jobs,
    /// Whether the control channel is open, for `SSMConnectionChannel` of the health pings.
    pub(crate) mgs_connected: AtomicBool,
    /// Running sessions (`interactive_shell`).
    pub(crate) sessions: Sessions,
}

/// Where one agent's process-wide settings come from.
pub(crate) struct AgentSetup {
    pub(crate) instance: InstanceConfig,
    pub(crate) service: Service,
    pub(crate) timings: Timings,
    pub(crate) executor: ExecutorConfig,
    pub(crate) seed: u64,
}

impl Agent {
    /// Runs one agent until `shutdown`. Running commands are killed on shutdown.
    pub(crate) async fn run(setup: AgentSetup, shutdown: CancellationToken) {
        let random = Arc::new(Random::new(setup.seed));
        let (tx, rx) = mpsc::unbounded_channel();
        let outbox = Outbox {
            tx,
            random: random.clone(),
        };
        let sessions = Sessions::new(
            SessionContext {
                instance: setup.instance.clone(),
                service: setup.service.clone(),
                timings: setup.timings,
                random: random.clone(),
                outbox: outbox.clone(),
                default_working_dir: setup.executor.default_working_dir.clone(),
            },
            shutdown.child_token(),
        );
        let executor = Executor::new(ExecutorConfig {
            max_concurrent_commands: MAX_CONCURRENT_COMMANDS,
            ..setup.executor
        });
        let jobs = Jobs::new(
            setup.instance.clone(),
            setup.service.region.clone(),
            executor,
            outbox,
            setup.timings,
            shutdown.child_token(),
        );
        let agent = Arc::new(Agent {
            instance: setup.instance,
            service: setup.service,
            timings: setup.timings,
            random,
            jobs,
            mgs_connected: AtomicBool::new(false),
            sessions,
        });
        let id = agent.instance.instance_id.clone();

        tokio::select! {
            () = shutdown.cancelled() => return,
            () = agent.startup_check() => {}
        }
        tracing::info!(instance = %id, "registered; opening the control channel");

        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(crate::control::run(agent.clone(), rx, shutdown.clone()));
        tasks.spawn(agent.clone().first_report_and_tags());
        tasks.spawn(agent.clone().health_pings());
        let jobs = agent.jobs.clone();
        tasks.spawn(async move { jobs.resend_unacked().await });

        shutdown.cancelled().await;
        agent.jobs.shutdown();
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        agent.jobs.stopped().await;
    }

    /// The minimal `UpdateInstanceInformation`, retried with backoff until it succeeds.
    async fn startup_check(&self) {
        let mut backoff = Backoff::new(self.timings);
        loop {
            match self.service.report_minimal(&self.instance).await {
                Ok(()) => return,
                Err(error) => {
                    let delay = backoff.next(&self.random);
                    tracing::warn!(
                        instance = %self.instance.instance_id,
                        "cannot report to the emulator at {}: {error}; retrying in {delay:.1?} \
                         (start it with `cargo run -p ssm-emulator` or pass --endpoint)",
                        self.service.connector.endpoint
                    );
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    async fn first_report_and_tags(self: Arc<Self>) {
        if let Err(error) = self
            .service
            .report(&self.instance, ConnectionChannel::Undecided)
            .await
        {
            tracing::warn!(instance = %self.instance.instance_id, "startup ping failed: {error}");
        }
        if let Err(error) = self.service.apply_tags(&self.instance).await {
            tracing::warn!(
                instance = %self.instance.instance_id,
                "AddTagsToResource failed, Targets by tag will not find this instance: {error}"
            );
        }
    }

    async fn health_pings(self: Arc<Self>) {
        let heartbeat = self.timings.heartbeat;
        let offset = self.random.below(heartbeat);
        tokio::time::sleep(offset).await;
        let mut ticks = tokio::time::interval(heartbeat);
        loop {
            ticks.tick().await;
            let channel = if self.mgs_connected.load(Ordering::Relaxed) {
                ConnectionChannel::Mgs
            } else {
                ConnectionChannel::Mds
            };
            if let Err(error) = self.service.report(&self.instance, channel).await {
                tracing::warn!(instance = %self.instance.instance_id, "health ping failed: {error}");
            }
        }
    }

    /// Everything the control channel delivers, by MessageType.
    pub(crate) fn on_control_message(&self, message: &Message) {
        match &message.message_type {
            MessageType::AgentJob => self.jobs.on_agent_job(message),
            MessageType::AgentJobReplyAck => self.jobs.on_reply_ack(message),
            // Sessions (§9.1): `interactive_shell` starts one (not acknowledged),
            // `channel_closed` terminates one, `agent_task_acknowledge` acks its
            // `agent_task_complete`.
            MessageType::InteractiveShell => self.sessions.on_interactive_shell(message),
            MessageType::ChannelClosed => self.sessions.on_channel_closed(message),
            MessageType::AgentTaskAcknowledge => self.sessions.on_task_acknowledge(message),
            other => {
                tracing::debug!(instance = %self.instance.instance_id, "ignoring {other} on the control channel");
            }
        }
    }
}

/// The control channel's send queue. Messages wait here while the socket is down and go out
/// once it is back.
#[derive(Debug, Clone)]
pub(crate) struct Outbox {
    tx: mpsc::UnboundedSender<Message>,
    random: Arc<Random>,
}

impl Outbox {
    /// Queues a message with a fresh MessageId; returns that id.
    pub(crate) fn send(&self, message_type: MessageType, payload: Vec<u8>) -> Uuid {
        let id = self.random.uuid();
        self.send_as(message_type, id, payload);
        id
    }

    /// Queues a message with the given MessageId (a resend).
    pub(crate) fn send_as(&self, message_type: MessageType, id: Uuid, payload: Vec<u8>) {
        let mut message = Message::new(message_type, now_millis(), id);
        message.payload = payload;
        // The receiver lives as long as the agent; after shutdown nothing needs sending.
        let _ = self.tx.send(message);
    }
}

/// The agent's random source: MessageIds, RequestIds and jitter.
#[derive(Debug)]
pub(crate) struct Random(Mutex<StdRng>);

impl Random {
    pub(crate) fn new(seed: u64) -> Random {
        Random(Mutex::new(StdRng::seed_from_u64(seed)))
    }

    /// A version 4 UUID.
    pub(crate) fn uuid(&self) -> Uuid {
        let mut bytes = [0u8; 16];
        self.lock().fill_bytes(&mut bytes);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    /// A duration in `[0, max)` (zero for a zero `max`).
    pub(crate) fn below(&self, max: Duration) -> Duration {
        let nanos = max.as_nanos().min(u128::from(u64::MAX)) as u64;
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.lock().random_range(0..nanos))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StdRng> {
        // A panic while holding this lock leaves a valid RNG behind.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The agent's retry schedule: a first delay in `[initial, 2·initial)`, doubling up to a cap.
#[derive(Debug)]
pub(crate) struct Backoff {
    current: Duration,
    timings: Timings,
}

impl Backoff {
    pub(crate) fn new(timings: Timings) -> Backoff {
        Backoff {
            current: timings.retry_initial,
            timings,
        }
    }

    pub(crate) fn next(&mut self, random: &Random) -> Duration {
        let delay = (self.current + random.below(self.current)).min(self.timings.retry_max);
        self.current = (self.current * 2).min(self.timings.retry_max);
        delay
    }

    pub(crate) fn reset(&mut self) {
        self.current = self.timings.retry_initial;
    }
}

/// Milliseconds since the Unix epoch, for CreatedDate.
pub(crate) fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
