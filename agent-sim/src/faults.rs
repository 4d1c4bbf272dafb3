//! Agent-side faults: an agent that crashes (and restarts, or stays down), and a slow agent.
//!
//! [`FleetHandle`] switches them per instance while the fleet runs; the standalone binary sets
//! them at start from flags and the instances file ([`InstanceFaults`]).
//!
//! # What a crash is
//!
//! It follows what happens when the real amazon-ssm-agent process dies and systemd restarts it:
//!
//! - The agent's own connections end at once: the control-channel websocket is dropped without
//!   a Close frame (the kernel closes a dead process's sockets), health pings stop, and whatever
//!   the agent held in memory is lost: frames still queued for the control channel (an
//!   `agent_job_ack` not yet written, say) and `agent_job`s received but not yet acknowledged.
//! - Running commands and sessions survive. The real agent runs each Run Command document in an
//!   `ssm-document-worker` process and each session in an `ssm-session-worker` process, started
//!   in their own process group "so that the process can survive when upstart/systemd kill the
//!   original process group" (`agent/framework/processor/executer/outofproc/proc/process_unix.go`,
//!   `prepareProcess`), and the unit file stops only the main process on restart
//!   (`KillMode=process`, `packaging/linux/amazon-ssm-agent.service`). A session worker owns its
//!   data channel, so a session's websocket and shell go on. When the agent comes back it finds
//!   the worker's IPC channel and the still-running process and re-attaches
//!   (`outofproc/master.go`, `initialize`: "discovered old channel object, trying to find
//!   detached process"), so results produced while it was down are reported after the restart.
//!   agent-sim models that by keeping its command tasks and sessions, and their queued replies,
//!   across the crash.
//! - On restart the agent runs its normal startup sequence with the same instance id: the
//!   minimal `UpdateInstanceInformation`, then CreateControlChannel, the websocket and its open
//!   frame, the full report, health pings from a new random offset, and the resend of
//!   unacknowledged replies 2 and 3 (which the real agent keeps on disk; UNCONFIRMED for MGS
//!   delivery, agent-sim keeps them). CommandIds already received still get DuplicateCommand
//!   (the real agent's document state is on disk too).
//!
//! A host reboot (every process killed) is not modelled.
//!
//! # What a slow agent is
//!
//! [`Slowness::job_ack_delay`] holds each control-channel `agent_job` that long before handling
//! it: its `agent_job_ack` (and, for a command, the first InProgress reply that goes with it) is
//! sent only then (measured from when the job arrived). Jobs keep their order.
//! [`Slowness::command_start_delay`] holds a command from its ack until its process starts (a
//! cancel in that time ends it Cancelled without running). A new setting applies to jobs
//! already waiting: lowering a delay releases them. The data channel is not slowed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::InstanceConfig;

/// How slow one agent is; [`Slowness::NONE`] for a prompt one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slowness {
    /// How long each `agent_job` waits before the agent acknowledges and handles it.
    pub job_ack_delay: Duration,
    /// How long a command waits, after its ack, before its process starts.
    pub command_start_delay: Duration,
}

impl Slowness {
    /// No delays: the agent answers as fast as it can.
    pub const NONE: Slowness = Slowness {
        job_ack_delay: Duration::ZERO,
        command_start_delay: Duration::ZERO,
    };
}

/// A crash planned for a given time after the fleet starts (or after it is planned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedCrash {
    /// When the agent crashes.
    pub after: Duration,
    /// How long it stays down; `None`: until [`FleetHandle::restart`].
    pub restart_after: Option<Duration>,
}

/// The faults one instance starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceFaults {
    /// Its delays.
    pub slowness: Slowness,
    /// A crash to come, if any.
    pub crash: Option<PlannedCrash>,
}

impl InstanceFaults {
    /// A prompt agent that never crashes.
    pub const NONE: InstanceFaults = InstanceFaults {
        slowness: Slowness::NONE,
        crash: None,
    };
}

/// Whether an agent is running, as [`FleetHandle::instances`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentState {
    /// The agent runs (it may still be registering or reconnecting: see
    /// [`AgentStatus::control_channel_open`]).
    Running,
    /// The agent has crashed.
    Down {
        /// How long until it restarts by itself; `None`: it stays down until
        /// [`FleetHandle::restart`].
        restart_in: Option<Duration>,
    },
}

/// One simulated instance as the fleet sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentStatus {
    /// Its instance id.
    pub instance_id: String,
    /// The `AgentVersion` it reports.
    pub agent_version: String,
    /// Running or down.
    pub state: AgentState,
    /// Whether its control channel is open (commands and sessions can reach it).
    pub control_channel_open: bool,
    /// Its delays.
    pub slowness: Slowness,
    /// How many times it has crashed since the fleet started.
    pub crashes: u64,
    /// When a planned crash comes, if one is planned.
    pub crash_planned_in: Option<Duration>,
}

/// Why a fault could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultError {
    /// No agent of this fleet has that instance id.
    #[error("no simulated agent has the instance id {0:?}")]
    UnknownInstance(String),
}

/// Runtime control of a fleet's agents: crash, restart, slow down, list. Cheap to clone; every
/// method returns at once and the agent acts on it within moments. Faults set before the fleet
/// runs apply from its start.
#[derive(Debug, Clone)]
pub struct FleetHandle {
    agents: Arc<Agents>,
}

#[derive(Debug)]
struct Agents {
    /// In the order of the fleet's instances.
    order: Vec<Arc<AgentFaults>>,
    by_id: HashMap<String, usize>,
}

impl FleetHandle {
    /// A handle for these instances, every one running and prompt.
    pub(crate) fn new(instances: &[InstanceConfig]) -> FleetHandle {
        let order: Vec<Arc<AgentFaults>> = instances
            .iter()
            .map(|instance| Arc::new(AgentFaults::new(instance)))
            .collect();
        let by_id = instances
            .iter()
            .enumerate()
            .map(|(index, instance)| (instance.instance_id.clone(), index))
            .collect();
        FleetHandle {
            agents: Arc::new(Agents { order, by_id }),
        }
    }

    /// The switches of one agent, for the agent itself.
    pub(crate) fn agent(&self, instance_id: &str) -> Result<Arc<AgentFaults>, FaultError> {
        self.agents
            .by_id
            .get(instance_id)
            .map(|&index| self.agents.order[index].clone())
            .ok_or_else(|| FaultError::UnknownInstance(instance_id.to_owned()))
    }

    /// Every agent of the fleet, in the order of its instances.
    pub fn instances(&self) -> Vec<AgentStatus> {
        self.agents
            .order
            .iter()
            .map(|agent| agent.status())
            .collect()
    }

    /// One agent.
    pub fn status(&self, instance_id: &str) -> Result<AgentStatus, FaultError> {
        Ok(self.agent(instance_id)?.status())
    }

    /// Crashes the agent now (see the module docs for what that drops and what survives). It
    /// restarts after `restart_after`, or stays down until [`FleetHandle::restart`] if `None`.
    /// On an agent already down this only replaces when it comes back.
    pub fn crash(
        &self,
        instance_id: &str,
        restart_after: Option<Duration>,
    ) -> Result<(), FaultError> {
        self.agent(instance_id)?.crash(restart_after);
        Ok(())
    }

    /// Starts a crashed agent now; an agent that runs is left alone.
    pub fn restart(&self, instance_id: &str) -> Result<(), FaultError> {
        self.agent(instance_id)?
            .life
            .send_modify(|life| life.up = Up::Yes);
        Ok(())
    }

    /// Plans a crash `crash.after` from now (replacing any planned one); a crash of the agent
    /// before then cancels it. If the agent is down when it comes due, it crashes again as soon
    /// as it is back.
    pub fn plan_crash(&self, instance_id: &str, crash: PlannedCrash) -> Result<(), FaultError> {
        let agent = self.agent(instance_id)?;
        let at = Instant::now().checked_add(crash.after);
        agent.life.send_modify(|life| {
            life.planned = at.map(|at| (at, crash.restart_after));
        });
        Ok(())
    }

    /// Sets the agent's delays; jobs already waiting follow the new ones.
    pub fn set_slowness(&self, instance_id: &str, slowness: Slowness) -> Result<(), FaultError> {
        self.agent(instance_id)?.slowness.send_replace(slowness);
        Ok(())
    }

    /// Applies an instance's starting faults.
    pub fn apply(&self, instance_id: &str, faults: InstanceFaults) -> Result<(), FaultError> {
        self.set_slowness(instance_id, faults.slowness)?;
        if let Some(crash) = faults.crash {
            self.plan_crash(instance_id, crash)?;
        }
        Ok(())
    }
}

/// One agent's switches, shared by the [`FleetHandle`] and the agent's tasks.
#[derive(Debug)]
pub(crate) struct AgentFaults {
    instance_id: String,
    agent_version: String,
    /// The delays in force; the agent's waits subscribe to it.
    pub(crate) slowness: watch::Sender<Slowness>,
    /// Whether the agent should run; the agent's supervisor follows it.
    pub(crate) life: watch::Sender<Life>,
    /// Whether the control channel is open: the health pings' `SSMConnectionChannel` and
    /// [`AgentStatus::control_channel_open`].
    pub(crate) connected: AtomicBool,
}

/// What the handle asks of an agent's process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Life {
    /// Crashes so far: a change tells a running agent to crash, even if it is asked to restart
    /// before it has noticed.
    pub(crate) crashes: u64,
    /// Whether it should run.
    pub(crate) up: Up,
    /// A crash to come while running: when, and the restart delay it will have.
    pub(crate) planned: Option<(Instant, Option<Duration>)>,
}

/// Whether an agent should run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Up {
    /// Now.
    Yes,
    /// From then.
    At(Instant),
    /// Not until told.
    No,
}

impl AgentFaults {
    fn new(instance: &InstanceConfig) -> AgentFaults {
        AgentFaults {
            instance_id: instance.instance_id.clone(),
            agent_version: instance.agent_version.clone(),
            slowness: watch::Sender::new(Slowness::NONE),
            life: watch::Sender::new(Life {
                crashes: 0,
                up: Up::Yes,
                planned: None,
            }),
            connected: AtomicBool::new(false),
        }
    }

    /// Counts a crash (of a running agent) and says when to come back. A far-off restart that `Instant` cannot
    /// represent means never.
    pub(crate) fn crash(&self, restart_after: Option<Duration>) {
        let up = match restart_after.map(|after| Instant::now().checked_add(after)) {
            None | Some(None) => Up::No,
            Some(Some(at)) => Up::At(at),
        };
        self.life.send_modify(|life| {
            if life.up == Up::Yes {
                life.crashes += 1;
            }
            life.up = up;
            life.planned = None;
        });
    }

    fn status(&self) -> AgentStatus {
        let life = *self.life.borrow();
        let now = Instant::now();
        let state = match life.up {
            Up::Yes => AgentState::Running,
            Up::At(at) => AgentState::Down {
                restart_in: Some(at.saturating_duration_since(now)),
            },
            Up::No => AgentState::Down { restart_in: None },
        };
        AgentStatus {
            instance_id: self.instance_id.clone(),
            agent_version: self.agent_version.clone(),
            state,
            control_channel_open: self.connected.load(Ordering::Relaxed),
            slowness: *self.slowness.borrow(),
            crashes: life.crashes,
            crash_planned_in: life
                .planned
                .map(|(at, _)| at.saturating_duration_since(now)),
        }
    }
}

/// Waits until `pick(slowness)` has passed since `since`, following changes of the setting
/// (a lower delay releases the wait at once). A delay too large to represent waits until the
/// setting changes.
pub(crate) async fn delay_since(
    mut slowness: watch::Receiver<Slowness>,
    since: Instant,
    pick: fn(&Slowness) -> Duration,
) {
    loop {
        let deadline = since.checked_add(pick(&slowness.borrow_and_update()));
        let elapsed = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = elapsed => return,
            changed = slowness.changed() => {
                // The handle lives as long as the fleet; without it the setting is final.
                if changed.is_err() {
                    if let Some(deadline) = deadline {
                        tokio::time::sleep_until(deadline).await;
                    }
                    return;
                }
            }
        }
    }
}

/// Reads a duration written as a number and a unit: `250ms`, `2s`, `1.5s`, `10m`, `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let seconds_per_unit = match unit.trim() {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "" => return Err(format!("{text:?} needs a unit: ms, s, m or h (e.g. 2s)")),
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}: use ms, s, m or h"
            ));
        }
    };
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 250ms, 2s or 1.5m"))?;
    Duration::try_from_secs_f64(number * seconds_per_unit)
        .map_err(|_| format!("{text:?} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in [
            "",
            "5",
            "s",
            "1..2s",
            "-1s",
            "2 days",
            "1e400s",
            "99999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_handle_is_shareable() {
        fn shareable<T: Send + Sync + Clone + 'static>() {}
        shareable::<FleetHandle>();
    }

    #[test]
    fn crash_restart_and_plans_show_in_the_status() {
        let instances = crate::default_instances(2, 3);
        let handle = FleetHandle::new(&instances);
        let id = &instances[1].instance_id;
        assert_eq!(
            handle.crash("i-00000000", None),
            Err(FaultError::UnknownInstance("i-00000000".to_owned()))
        );
        handle.crash(id, None).unwrap();
        let status = handle.status(id).unwrap();
        assert_eq!(status.state, AgentState::Down { restart_in: None });
        assert_eq!(status.crashes, 1);
        assert_eq!(handle.instances()[0].state, AgentState::Running);

        handle.crash(id, Some(Duration::from_secs(60))).unwrap();
        let status = handle.status(id).unwrap();
        assert!(
            matches!(status.state, AgentState::Down { restart_in: Some(d) } if d <= Duration::from_secs(60))
        );
        // A restart too far off to represent is no restart.
        handle.crash(id, Some(Duration::MAX)).unwrap();
        assert_eq!(
            handle.status(id).unwrap().state,
            AgentState::Down { restart_in: None }
        );

        handle.restart(id).unwrap();
        let status = handle.status(id).unwrap();
        assert_eq!(status.state, AgentState::Running);
        // Crashing a down agent only changes when it comes back.
        assert_eq!(status.crashes, 1);

        let crash = PlannedCrash {
            after: Duration::from_secs(30),
            restart_after: None,
        };
        handle
            .apply(
                id,
                InstanceFaults {
                    slowness: Slowness {
                        job_ack_delay: Duration::from_secs(1),
                        command_start_delay: Duration::MAX,
                    },
                    crash: Some(crash),
                },
            )
            .unwrap();
        let status = handle.status(id).unwrap();
        assert!(status.crash_planned_in.is_some());
        assert_eq!(status.slowness.command_start_delay, Duration::MAX);
    }
}
