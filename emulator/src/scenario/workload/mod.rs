//! The workloads: clients at work while the timeline injects faults. Each runs on its own task
//! from its start time and comes back with an [`Outcome`]: lines for the report and facts for
//! the expectations. Failures are outcomes too (an `error` fact), never a panic.
//!
//! - [`command`]: Run Command (SendCommand, then GetCommandInvocation until a final status);
//! - [`shell`]: an interactive shell through `ssm-session`, the reference client;
//! - [`port`]: a port-forwarding tunnel of `ssm-session` moving data both ways at once;
//! - [`storm`]: many calls of one operation with the SDKs' standard retry mode;
//! - [`call`]: one call, no retry: what a client is told.
//!
//! `shell` and `port` run the real `ssm-session` binary as a child process ([`plugin`]), as
//! the AWS CLI runs session-manager-plugin: it is a process with its own stdin, stdout and
//! signals, so a run sees exactly what a user of the client sees.

pub mod call;
pub mod command;
pub mod plugin;
pub mod port;
pub mod shell;
pub mod storm;

use std::path::PathBuf;

use tokio::time::Instant;

use super::client::Client;
use super::report::Fact;

/// What every workload gets.
#[derive(Debug, Clone)]
pub struct Context {
    /// The emulator's API.
    pub client: Client,
    /// The scenario's seed (the workloads' own randomness: data, jitter).
    pub seed: u64,
    /// The start of the timeline.
    pub start: Instant,
    /// The `ssm-session` binary.
    pub session_client: PathBuf,
    /// The emulator's region (the client's SigV4 scope).
    pub region: String,
}

/// What a workload saw.
#[derive(Debug, Default)]
pub struct Outcome {
    /// For the report, in order.
    pub lines: Vec<String>,
    /// Facts without the workload's name (`status`, `output`).
    pub facts: Vec<(String, Fact)>,
}

impl Outcome {
    /// Adds a line to the report.
    pub fn line(&mut self, line: impl Into<String>) {
        self.lines.push(line.into());
    }

    /// Records a fact.
    pub fn fact(&mut self, name: &str, value: impl Into<Fact>) {
        self.facts.push((name.to_owned(), value.into()));
    }

    /// Records a failure: an `error` fact and a line.
    pub fn error(&mut self, message: impl Into<String>) {
        let message = message.into();
        self.line(format!("error: {message}"));
        self.fact("error", message);
    }
}

/// Seconds since the timeline started, for report lines.
pub fn since(start: Instant) -> String {
    format!("+{:.2}s", start.elapsed().as_secs_f64())
}
