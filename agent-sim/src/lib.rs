//! agent-sim: simulated amazon-ssm-agent instances that speak the agent's side of every channel.
//!
//! One process runs a fleet; each agent is a handful of tokio tasks (no thread per agent), so
//! idle agents cost little. What they send matches amazon-ssm-agent 3.3.1142.0 in shape and
//! field order (the recorded traces in `shared/spec/traces/agent-*.jsonl`).
//!
//! # Layout
//!
//! - [`config`]: [`FleetConfig`], [`InstanceConfig`], [`Timings`], [`default_instances`] and
//!   the instances file.
//! - [`fleet`]: [`Fleet`] and [`run_fleet`], one agent per instance until a shutdown token
//!   fires.
//! - [`faults`]: [`FleetHandle`], agent-side faults at run time: crash and restart (or stay
//!   down), a slow agent ([`Slowness`]); [`InstanceFaults`] for the start.
//! - `agent`: one agent's tasks: startup report, health pings, tags, and the dispatch of
//!   control-channel messages by MessageType.
//! - `control`: the control channel: CreateControlChannel, websocket, open frame, keepalive,
//!   reconnect.
//! - `jobs`: Run Command over the control channel: acks, the three replies, resend of
//!   unacknowledged replies, DuplicateCommand, cancel.
//! - `service`: the agent's HTTP calls (SSM API and MGS REST) and the minimal XML reading.
//! - [`net`]: connections, direct or through an HTTP CONNECT proxy; HTTP/1.1 with hyper's
//!   own client connection; the websocket dial.
//! - [`command`]: the Run Command executor. It runs an `AWS-RunShellScript` job as a real
//!   `/bin/sh` process and reports the status, code and output strings the real agent would.
//! - [`limits`]: per-agent resource limits (concurrent commands).
//!
//! - `session`: sessions (§9.1): `interactive_shell` starts one; CreateDataChannel, the data
//!   websocket and the agent-role reliable stream; `Standard_Stream` runs `sh` on a real PTY,
//!   `InteractiveCommands` its command as `sh -c` on a PTY, `NonInteractiveCommands` its
//!   command line without a shell or PTY (handshake; StdErr and ExitCode payloads with
//!   `separateOutputStream`); `Port` forwards TCP (basic and smux modes).
//!
//! # Embedding
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use ssm_agent_sim::{FleetConfig, Timings, default_instances, net::Endpoint};
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! let config = FleetConfig {
//!     endpoint: Endpoint::parse("http://127.0.0.1:4583")?,
//!     instances: default_instances(3, 7),
//!     timings: Timings::fast(),
//!     proxy: None,
//!     work_dir: std::env::temp_dir().join("ssm-agent-sim"),
//!     default_working_dir: ssm_agent_sim::command::default_working_dir(),
//!     region: "us-east-1".to_owned(),
//!     seed: 7,
//! };
//! let fleet = tokio::spawn(ssm_agent_sim::run_fleet(config, shutdown.clone()));
//! // … later:
//! shutdown.cancel();
//! fleet.await??;
//! # Ok(()) }
//! ```

mod agent;
pub mod command;
pub mod config;
mod control;
pub mod faults;
pub mod fleet;
mod jobs;
pub mod limits;
pub mod net;
mod service;
mod session;

pub use config::{FleetConfig, InstanceConfig, Timings, default_instances};
pub use faults::{
    AgentState, AgentStatus, FaultError, FleetHandle, InstanceFaults, PlannedCrash, Slowness,
};
pub use fleet::{Fleet, probe_endpoint, run_fleet};
