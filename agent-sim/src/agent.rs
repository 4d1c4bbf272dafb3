//! One simulated agent: a handful of tokio tasks that follow amazon-ssm-agent 3.3 (§9.4).
//!
//! 1. The startup check, `UpdateInstanceInformation` with four members, retried until the
//!    emulator answers (the real agent hibernates until then).
//! 2. Then at once: the control channel ([`crate::control`]), the first full report with
//!    `SSMConnectionChannel: ""`, and the configured tags.
//! 3. Health pings: one at a random offset in `[0, heartbeat)`, then every `heartbeat`.
//! 4. The reply resend task of [`Jobs`], and the intake that hands each `agent_job` to [`Jobs`]
//!    once the agent's [`Slowness::job_ack_delay`](crate::faults::Slowness) has passed.
//!
//! Everything the control channel receives comes to [`Agent::on_control_message`], which
//! dispatches by MessageType; sessions go to [`Sessions`].
//!
//! Those tasks are one *life* of the agent process. A crash ([`crate::faults`]) drops them
//! (the control socket goes without a Close frame) and what they held in memory; the workers
//! (running commands in [`Jobs`], sessions in [`Sessions`]) and the frames they queue survive
//! it, and the next life starts again from step 1 with the same instance id.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};
use ssm_protocol::{Message, MessageType};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::command::{Executor, ExecutorConfig};
use crate::config::{InstanceConfig, Timings};
use crate::control::Queue;
use crate::faults::{self, AgentFaults, Life, Up};
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
    /// Running sessions (`interactive_shell`).
    pub(crate) sessions: Sessions,
    /// The fleet handle's switches for this agent, and whether its control channel is open
    /// (`SSMConnectionChannel` of the health pings).
    pub(crate) faults: Arc<AgentFaults>,
    /// This life's `agent_job` intake: each job with the time it arrived. `None` between lives.
    intake: Mutex<Option<mpsc::UnboundedSender<(Instant, Message)>>>,
}

/// Where one agent's process-wide settings come from.
pub(crate) struct AgentSetup {
    pub(crate) instance: InstanceConfig,
    pub(crate) service: Service,
    pub(crate) timings: Timings,
    pub(crate) executor: ExecutorConfig,
    pub(crate) seed: u64,
    pub(crate) faults: Arc<AgentFaults>,
}

/// Why a life of the agent ended.
enum Ended {
    Shutdown,
    Crashed,
}

impl Agent {
    /// Runs one agent until `shutdown`, through as many lives as its faults ask for. Running
    /// commands are killed on shutdown.
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
            setup.faults.slowness.subscribe(),
            shutdown.child_token(),
        );
        let agent = Arc::new(Agent {
            instance: setup.instance,
            service: setup.service,
            timings: setup.timings,
            random,
            jobs,
            sessions,
            faults: setup.faults,
            intake: Mutex::new(None),
        });
        let mut queue = Queue::new(rx);
        let mut life = agent.faults.life.subscribe();
        loop {
            let up = tokio::select! {
                () = shutdown.cancelled() => false,
                up = agent.until_up(&mut life) => up,
            };
            if !up {
                break;
            }
            let crashes = life.borrow_and_update().crashes;
            let ended = tokio::select! {
                () = shutdown.cancelled() => Ended::Shutdown,
                () = agent.clone().live(&mut queue) => Ended::Shutdown,
                () = agent.until_crash(&mut life, crashes) => Ended::Crashed,
            };
            // The life's tasks are gone with its future; so is what it held.
            agent.faults.connected.store(false, Ordering::Relaxed);
            *lock(&agent.intake) = None;
            match ended {
                Ended::Shutdown => break,
                Ended::Crashed => {
                    let lost = queue.discard();
                    tracing::warn!(
                        instance = %agent.instance.instance_id,
                        lost_frames = lost,
                        "agent crashed: control channel dropped; commands and sessions keep running"
                    );
                }
            }
        }
        agent.jobs.shutdown();
        agent.jobs.stopped().await;
    }

    /// Waits until the agent should run: `false` if it never will (the handle is gone).
    async fn until_up(&self, life: &mut watch::Receiver<Life>) -> bool {
        loop {
            let up = life.borrow_and_update().up;
            let restart = async {
                match up {
                    Up::Yes => {}
                    Up::At(at) => tokio::time::sleep_until(at).await,
                    Up::No => std::future::pending().await,
                }
            };
            tokio::select! {
                () = restart => break,
                changed = life.changed() => {
                    // Cannot fail while `self.faults` holds the sender.
                    if changed.is_err() {
                        return false;
                    }
                }
            }
        }
        self.faults.life.send_if_modified(|life| {
            let was_down = life.up != Up::Yes;
            life.up = Up::Yes;
            was_down
        });
        if self.faults.life.borrow().crashes > 0 {
            tracing::info!(instance = %self.instance.instance_id, "agent restarting");
        }
        true
    }

    /// Returns when the handle counts a crash after `crashes`, or a planned crash comes due.
    async fn until_crash(&self, life: &mut watch::Receiver<Life>, crashes: u64) {
        loop {
            let now = *life.borrow_and_update();
            if now.crashes != crashes {
                return;
            }
            let planned = async {
                match now.planned {
                    Some((at, _)) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = planned => {
                    let restart_after = now.planned.and_then(|(_, restart)| restart);
                    self.faults.crash(restart_after);
                }
                changed = life.changed() => {
                    // Cannot fail while `self.faults` holds the sender; if it did, nothing
                    // could crash the agent any more.
                    if changed.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            }
        }
    }

    /// One life of the agent process, until its future is dropped.
    async fn live(self: Arc<Self>, queue: &mut Queue) {
        self.startup_check().await;
        tracing::info!(instance = %self.instance.instance_id, "registered; opening the control channel");

        let (intake, jobs_in) = mpsc::unbounded_channel();
        *lock(&self.intake) = Some(intake);
        // Dropped with this future: a crash aborts them all.
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(self.clone().first_report_and_tags());
        tasks.spawn(self.clone().health_pings());
        tasks.spawn(self.clone().job_intake(jobs_in));
        let jobs = self.jobs.clone();
        tasks.spawn(async move { jobs.resend_unacked().await });
        crate::control::run(&self, queue).await;
        // The outbox closed, which only happens when the agent is gone.
        std::future::pending::<()>().await;
    }

    /// Hands each `agent_job` of this life to [`Jobs`] in order, each once the job ack delay
    /// has passed since it arrived.
    async fn job_intake(self: Arc<Self>, mut jobs_in: mpsc::UnboundedReceiver<(Instant, Message)>) {
        let slowness = self.faults.slowness.subscribe();
        while let Some((arrived, message)) = jobs_in.recv().await {
            faults::delay_since(slowness.clone(), arrived, |s| s.job_ack_delay).await;
            self.jobs.on_agent_job(&message);
        }
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
            let channel = if self.faults.connected.load(Ordering::Relaxed) {
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
            MessageType::AgentJob => self.take_job(message),
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

impl Agent {
    /// Queues an `agent_job` for this life's intake.
    fn take_job(&self, message: &Message) {
        let arrived = Instant::now();
        match lock(&self.intake).as_ref() {
            Some(intake) => {
                // The intake lives as long as the control channel that delivers to it.
                let _ = intake.send((arrived, message.clone()));
            }
            None => {
                tracing::debug!(instance = %self.instance.instance_id, "agent_job between lives dropped")
            }
        }
    }
}

/// Locks `mutex`; never held across an await, and a panic elsewhere leaves consistent data.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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
