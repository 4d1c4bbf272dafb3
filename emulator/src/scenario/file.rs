//! The scenario file: TOML with a name, a seed, a fleet, a timeline of injected events, the
//! workloads that run meanwhile, and the expectations checked at the end.
//!
//! ```toml
//! name = "proxy-loss-run-command"
//! description = "The agent's proxy dies while a command runs, then comes back."
//! seed = 7
//!
//! [fleet]
//! instances = ["i-0aaaaaaaaaaaaaaa1"]
//! agent-proxy = true            # the fleet reaches the emulator through a CONNECT proxy
//!
//! [[timeline]]
//! at = "2s"
//! proxy = "down"                # or: fault = { agentLink = { durationMs = 5000 } }, label = "cut"
//!
//! [[workload]]
//! name = "run"
//! at = "1s"
//! send-command = { instance = "i-0aaaaaaaaaaaaaaa1", commands = ["sleep 3", "echo done"] }
//!
//! [[expect]]
//! fact = "run.status"
//! equals = "Success"
//! ```
//!
//! Fault rules are the JSON rules of [`crate::faults::rules`], written as TOML tables. Every
//! table refuses unknown keys, so a typo is an error naming the key, not a silent no-op.

use std::time::Duration;

use serde::Deserialize;

use crate::faults::FaultRule;

/// A whole scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Scenario {
    /// Short name, shown in the report (`ssm-emulator scenario list` shows it too).
    pub name: String,
    /// What the scenario shows and what real SSM does.
    #[serde(default)]
    pub description: String,
    /// Seeds ids, tokens, fault decisions, the agents and the workloads' own randomness.
    pub seed: u64,
    /// The whole run, workloads included, must end within this (default
    /// [`super::limits::DEFAULT_SCENARIO_TIMEOUT`]).
    #[serde(default, with = "opt_duration")]
    pub timeout: Option<Duration>,
    /// The simulated instances.
    pub fleet: FleetSpec,
    /// What happens when, counted from the moment every agent is online (and any baseline
    /// transfer is done).
    #[serde(default)]
    pub timeline: Vec<Step>,
    /// The clients at work, each from its own time, all at once.
    #[serde(default)]
    pub workload: Vec<Workload>,
    /// Checked once every workload has ended.
    #[serde(default)]
    pub expect: Vec<Expectation>,
}

/// The embedded fleet.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FleetSpec {
    /// Instance ids (i-… or mi-…), one agent each, so steps and workloads can name them.
    #[serde(default)]
    pub instances: Vec<String>,
    /// Or this many agents with ids made from the seed.
    #[serde(default)]
    pub count: Option<usize>,
    /// The agent version every agent reports (default agent-sim's, 3.3.1142.0: smux port
    /// forwarding).
    #[serde(default)]
    pub agent_version: Option<String>,
    /// Start the built-in CONNECT proxy and connect the agents through it, so `proxy =
    /// "down"` steps cut them off as a real proxy outage does.
    #[serde(default)]
    pub agent_proxy: bool,
    /// The agents pace their output as the real agent does (agent-sim's `real_read_pacing`:
    /// ≤1024 bytes, then 1 ms, §7.4: ≈0.6 MB/s a session) instead of sending as fast as the
    /// data channel takes it.
    #[serde(default)]
    pub real_read_pacing: bool,
}

/// One event of the timeline: exactly one action, at a time.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Step {
    /// When, from the start of the timeline (`"500ms"`, `"5s"`, `"2m"`).
    #[serde(with = "duration")]
    pub at: Duration,
    /// Add this fault rule.
    #[serde(default)]
    pub fault: Option<FaultRule>,
    /// A name for the rule `fault` adds, for `remove-fault` and for facts
    /// (`faults.<label>.injected`).
    #[serde(default)]
    pub label: Option<String>,
    /// Remove the rule added with this label.
    #[serde(default)]
    pub remove_fault: Option<String>,
    /// Remove every rule (frames kept back by reorder rules are sent).
    #[serde(default)]
    pub clear_faults: Option<bool>,
    /// Move the emulator's clock forward (service-side timeouts pass at once).
    #[serde(default, with = "opt_duration")]
    pub advance_clock: Option<Duration>,
    /// Turn the agents' CONNECT proxy down or up (needs `fleet.agent-proxy`).
    #[serde(default)]
    pub proxy: Option<ProxyAction>,
    /// Crash an agent as the real agent's process dies.
    #[serde(default)]
    pub crash: Option<Crash>,
    /// Restart an agent that crashed without a restart time.
    #[serde(default)]
    pub restart: Option<String>,
}

/// `proxy = "down"` or `"up"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProxyAction {
    /// Stop listening and reset every tunnel.
    Down,
    /// Listen again on the same address.
    Up,
}

/// `crash = { instance = "i-…", restart-after = "5s" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Crash {
    /// The agent.
    pub instance: String,
    /// It comes back after this; stays down (until a `restart` step) without it.
    #[serde(default, with = "opt_duration")]
    pub restart_after: Option<Duration>,
}

/// The action of a [`Step`], once checked.
#[derive(Debug, Clone)]
pub enum Action {
    /// Add a rule, maybe labelled.
    Fault(Box<FaultRule>, Option<String>),
    /// Remove the labelled rule.
    RemoveFault(String),
    /// Remove every rule.
    ClearFaults,
    /// Move the clock.
    AdvanceClock(Duration),
    /// Proxy down or up.
    Proxy(ProxyAction),
    /// Crash an agent.
    Crash(Crash),
    /// Restart an agent.
    Restart(String),
}

impl Step {
    /// The one action of the step, or what is wrong with it.
    pub fn action(&self) -> Result<Action, String> {
        let mut actions = Vec::new();
        if let Some(rule) = &self.fault {
            actions.push(Action::Fault(Box::new(rule.clone()), self.label.clone()));
        } else if self.label.is_some() {
            return Err("label names the rule of `fault`; this step has none".to_owned());
        }
        if let Some(label) = &self.remove_fault {
            actions.push(Action::RemoveFault(label.clone()));
        }
        if self.clear_faults == Some(true) {
            actions.push(Action::ClearFaults);
        }
        if let Some(by) = self.advance_clock {
            actions.push(Action::AdvanceClock(by));
        }
        if let Some(proxy) = self.proxy {
            actions.push(Action::Proxy(proxy));
        }
        if let Some(crash) = &self.crash {
            actions.push(Action::Crash(crash.clone()));
        }
        if let Some(instance) = &self.restart {
            actions.push(Action::Restart(instance.clone()));
        }
        match actions.len() {
            1 => Ok(actions.remove(0)),
            0 => Err(
                "a step needs one of fault, remove-fault, clear-faults, advance-clock, \
                      proxy, crash, restart"
                    .to_owned(),
            ),
            _ => Err(
                "a step takes exactly one action; split it into two steps at the same time"
                    .to_owned(),
            ),
        }
    }
}

/// A client at work.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Workload {
    /// Prefix of its facts (`<name>.status`, …).
    pub name: String,
    /// When it starts, from the start of the timeline.
    #[serde(default, with = "duration")]
    pub at: Duration,
    /// Run Command through SendCommand and GetCommandInvocation.
    #[serde(default)]
    pub send_command: Option<SendCommandSpec>,
    /// An interactive shell through the reference client, `ssm-session`.
    #[serde(default)]
    pub shell: Option<ShellSpec>,
    /// Bulk data both ways through a port-forwarding session of `ssm-session`.
    #[serde(default)]
    pub port_transfer: Option<PortTransferSpec>,
    /// Many calls of one operation with the SDKs' standard retry mode.
    #[serde(default)]
    pub api_storm: Option<ApiStormSpec>,
    /// One call of one operation, no retry: what a client is told.
    #[serde(default)]
    pub api_call: Option<ApiCallSpec>,
}

/// What a [`Workload`] does, once checked.
#[derive(Debug, Clone)]
pub enum WorkloadKind {
    /// See [`SendCommandSpec`].
    SendCommand(SendCommandSpec),
    /// See [`ShellSpec`].
    Shell(ShellSpec),
    /// See [`PortTransferSpec`].
    PortTransfer(PortTransferSpec),
    /// See [`ApiStormSpec`].
    ApiStorm(ApiStormSpec),
    /// See [`ApiCallSpec`].
    ApiCall(ApiCallSpec),
}

impl Workload {
    /// The one kind of the workload, or what is wrong with it.
    pub fn kind(&self) -> Result<WorkloadKind, String> {
        let kinds: Vec<WorkloadKind> = [
            self.send_command.clone().map(WorkloadKind::SendCommand),
            self.shell.clone().map(WorkloadKind::Shell),
            self.port_transfer.clone().map(WorkloadKind::PortTransfer),
            self.api_storm.clone().map(WorkloadKind::ApiStorm),
            self.api_call.clone().map(WorkloadKind::ApiCall),
        ]
        .into_iter()
        .flatten()
        .collect();
        match <[WorkloadKind; 1]>::try_from(kinds) {
            Ok([kind]) => Ok(kind),
            Err(_) => Err(format!(
                "workload {:?} needs exactly one of send-command, shell, port-transfer, api-storm, api-call",
                self.name
            )),
        }
    }
}

/// `send-command = { instance = "i-…", commands = ["echo hi"] }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SendCommandSpec {
    /// The target.
    pub instance: String,
    /// AWS-RunShellScript's `commands`.
    pub commands: Vec<String>,
    /// AWS-RunShellScript's `executionTimeout` in seconds, if set.
    #[serde(default)]
    pub execution_timeout: Option<u32>,
    /// How long to poll GetCommandInvocation for a final status.
    #[serde(default = "default_wait", with = "duration")]
    pub wait: Duration,
}

/// `shell = { instance = "i-…", steps = [{ send = "echo hi", expect = "hi" }] }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ShellSpec {
    /// The target.
    pub instance: String,
    /// Lines typed one after the other, each waiting for its expected output.
    pub steps: Vec<ShellStep>,
    /// Type `exit` after the last step and wait for the client to end.
    #[serde(default = "yes")]
    pub exit: bool,
}

/// One line typed into a shell.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ShellStep {
    /// Not before this time of the timeline.
    #[serde(default, with = "opt_duration")]
    pub at: Option<Duration>,
    /// The line (a newline is added).
    pub send: String,
    /// Output that must appear after the line was typed.
    #[serde(default)]
    pub expect: Option<String>,
    /// How long to wait for `expect`.
    #[serde(default = "default_wait", with = "duration")]
    pub wait: Duration,
}

/// `port-transfer = { instance = "i-…", megabytes = 10, baseline = true }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PortTransferSpec {
    /// The target: its agent dials the runner's sink on 127.0.0.1.
    pub instance: String,
    /// Mebibytes each way, sent at once in both directions.
    pub megabytes: f64,
    /// Also run the same transfer before the timeline starts, with no fault in force, and
    /// report its duration next to this one's.
    #[serde(default)]
    pub baseline: bool,
    /// How long the transfer may take.
    #[serde(default = "default_wait", with = "duration")]
    pub wait: Duration,
}

/// `api-storm = { operation = "DescribeInstanceInformation", calls = 20 }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ApiStormSpec {
    /// The SSM operation, e.g. `DescribeInstanceInformation`.
    pub operation: String,
    /// Its request body (default `{}`).
    #[serde(default)]
    pub body: Option<serde_json::Value>,
    /// Calls, one after the other.
    pub calls: u32,
    /// Attempts per call, the first included (standard mode: 3).
    #[serde(default = "standard_attempts")]
    pub max_attempts: u32,
    /// The backoff base (standard mode: 1 s); the delay before retry `n` is a random fraction
    /// of `min(initial-backoff × 2^(n-1), max-backoff)`.
    #[serde(default = "standard_initial_backoff", with = "duration")]
    pub initial_backoff: Duration,
    /// The backoff cap (standard mode: 20 s).
    #[serde(default = "standard_max_backoff", with = "duration")]
    pub max_backoff: Duration,
}

/// `api-call = { operation = "StartSession", body = { Target = "i-…" } }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ApiCallSpec {
    /// The SSM operation.
    pub operation: String,
    /// Its request body (default `{}`).
    #[serde(default)]
    pub body: Option<serde_json::Value>,
}

/// A check of one fact at the end: `fact` and exactly one comparison.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Expectation {
    /// The fact's name, as the report lists them (`run.status`, `faults.total.drop`).
    pub fact: String,
    /// Equal to this string, number or boolean.
    #[serde(default)]
    pub equals: Option<toml::Value>,
    /// A text fact containing this.
    #[serde(default)]
    pub contains: Option<String>,
    /// A number at least this.
    #[serde(default)]
    pub at_least: Option<f64>,
    /// A number at most this.
    #[serde(default)]
    pub at_most: Option<f64>,
    /// Equal to another fact (e.g. the SHA-256 of what was sent and of what arrived).
    #[serde(default)]
    pub same_as: Option<String>,
}

fn default_wait() -> Duration {
    super::limits::DEFAULT_WAIT
}

fn yes() -> bool {
    true
}

fn standard_attempts() -> u32 {
    super::limits::STANDARD_MAX_ATTEMPTS
}

fn standard_initial_backoff() -> Duration {
    super::limits::STANDARD_INITIAL_BACKOFF
}

fn standard_max_backoff() -> Duration {
    super::limits::STANDARD_MAX_BACKOFF
}

/// Why a scenario file was refused.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Not valid TOML or not the scenario shape.
    #[error("{0}")]
    Parse(#[from] toml::de::Error),
    /// Valid shape, inconsistent content.
    #[error("{0}")]
    Invalid(String),
}

impl Scenario {
    /// Parses and checks a scenario file's text.
    pub fn parse(text: &str) -> Result<Scenario, FileError> {
        let scenario: Scenario = toml::from_str(text)?;
        scenario.check().map_err(FileError::Invalid)?;
        Ok(scenario)
    }

    /// The instance ids of the fleet (explicit, or made from the seed).
    pub fn instance_ids(&self) -> Vec<String> {
        match self.fleet.count {
            Some(count) => ssm_agent_sim::default_instances(count, self.seed)
                .into_iter()
                .map(|i| i.instance_id)
                .collect(),
            None => self.fleet.instances.clone(),
        }
    }

    fn check(&self) -> Result<(), String> {
        if self.fleet.count.is_some() && !self.fleet.instances.is_empty() {
            return Err("fleet: give instances or count, not both".to_owned());
        }
        for id in &self.fleet.instances {
            if !crate::model::instance::is_valid_instance_id(id) {
                return Err(format!(
                    "fleet: {id:?} is not an instance id (i-0123456789abcdef0)"
                ));
            }
        }
        let ids = self.instance_ids();
        let known = |id: &str, what: &str| {
            if ids.iter().any(|i| i == id) {
                Ok(())
            } else {
                Err(format!("{what}: instance {id:?} is not in the fleet"))
            }
        };
        let mut labels = Vec::new();
        for (n, step) in self.timeline.iter().enumerate() {
            let what = format!("timeline step {} (at {:?})", n + 1, step.at);
            match step.action().map_err(|e| format!("{what}: {e}"))? {
                Action::Fault(rule, label) => {
                    if let Some(message) = rule.check(|_| true) {
                        return Err(format!("{what}: {message}"));
                    }
                    if let Some(label) = label {
                        labels.push(label);
                    }
                }
                Action::RemoveFault(label) if !labels.contains(&label) => {
                    return Err(format!(
                        "{what}: no earlier step adds a fault labelled {label:?}"
                    ));
                }
                Action::Proxy(_) if !self.fleet.agent_proxy => {
                    return Err(format!(
                        "{what}: proxy steps need `agent-proxy = true` in [fleet]"
                    ));
                }
                Action::Crash(crash) => known(&crash.instance, &what)?,
                Action::Restart(instance) => known(&instance, &what)?,
                _ => {}
            }
        }
        let mut names = Vec::new();
        for workload in &self.workload {
            if names.contains(&&workload.name) || workload.name == "faults" {
                return Err(format!(
                    "workload name {:?} is used twice (or is \"faults\")",
                    workload.name
                ));
            }
            names.push(&workload.name);
            let what = format!("workload {:?}", workload.name);
            match workload.kind()? {
                WorkloadKind::SendCommand(spec) => known(&spec.instance, &what)?,
                WorkloadKind::Shell(spec) => known(&spec.instance, &what)?,
                WorkloadKind::PortTransfer(spec) => {
                    known(&spec.instance, &what)?;
                    if !(spec.megabytes > 0.0 && spec.megabytes <= super::limits::MAX_MEGABYTES) {
                        return Err(format!(
                            "{what}: megabytes must be above 0 and at most {}",
                            super::limits::MAX_MEGABYTES
                        ));
                    }
                }
                WorkloadKind::ApiCall(spec) => check_operation(&spec.operation, &what)?,
                WorkloadKind::ApiStorm(spec) => {
                    check_operation(&spec.operation, &what)?;
                    if spec.max_attempts == 0 {
                        return Err(format!("{what}: max-attempts must be at least 1"));
                    }
                }
            }
        }
        for expectation in &self.expect {
            let comparisons = [
                expectation.equals.is_some(),
                expectation.contains.is_some(),
                expectation.at_least.is_some(),
                expectation.at_most.is_some(),
                expectation.same_as.is_some(),
            ];
            if comparisons.iter().filter(|c| **c).count() != 1 {
                return Err(format!(
                    "expect {:?}: give exactly one of equals, contains, at-least, at-most, same-as",
                    expectation.fact
                ));
            }
        }
        Ok(())
    }
}

fn check_operation(operation: &str, what: &str) -> Result<(), String> {
    if crate::api::is_operation(operation) {
        Ok(())
    } else {
        Err(format!(
            "{what}: {operation:?} is not an operation ssm-emulator serves"
        ))
    }
}

/// Reads `"250ms"`, `"5s"`, `"1.5s"`, `"2m"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| text.split_at(i))
        .ok_or_else(|| format!("duration {text:?} needs a unit: ms, s or m"))?;
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("duration {text:?}: {number:?} is not a number"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("duration {text:?}: unit must be ms, s or m")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("duration {text:?} is out of range"))
}

/// Formats a duration as the files write it.
pub fn show_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_duration(&text)
            .map(Some)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
name = "example"
seed = 7
[fleet]
instances = ["i-0aaaaaaaaaaaaaaa1"]
agent-proxy = true
[[timeline]]
at = "2s"
fault = { agentLink = { instanceId = "i-0aaaaaaaaaaaaaaa1", durationMs = 5000 } }
label = "cut"
[[timeline]]
at = "2.5s"
proxy = "down"
[[timeline]]
at = "3s"
remove-fault = "cut"
[[workload]]
name = "run"
at = "500ms"
send-command = { instance = "i-0aaaaaaaaaaaaaaa1", commands = ["echo done"] }
[[expect]]
fact = "run.status"
equals = "Success"
"#;

    #[test]
    fn the_documented_shape_reads() {
        let scenario = Scenario::parse(EXAMPLE).unwrap();
        assert_eq!(scenario.seed, 7);
        assert_eq!(scenario.timeline.len(), 3);
        assert!(matches!(
            scenario.timeline[0].action().unwrap(),
            Action::Fault(rule, Some(label))
                if label == "cut" && matches!(*rule, FaultRule::AgentLink(_))
        ));
        assert_eq!(scenario.timeline[1].at, Duration::from_millis(2500));
        assert_eq!(scenario.workload[0].at, Duration::from_millis(500));
        assert!(matches!(
            scenario.workload[0].kind().unwrap(),
            WorkloadKind::SendCommand(spec) if spec.wait == super::super::limits::DEFAULT_WAIT
        ));
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            (
                EXAMPLE.replace("proxy = \"down\"", "prxy = \"down\""),
                "prxy",
            ),
            (EXAMPLE.replace("agent-proxy = true", ""), "agent-proxy"),
            (
                EXAMPLE.replace("remove-fault = \"cut\"", "remove-fault = \"cat\""),
                "cat",
            ),
            (EXAMPLE.replace("\"500ms\"", "\"500\""), "needs a unit"),
            (
                EXAMPLE.replace("equals = \"Success\"", ""),
                "exactly one of",
            ),
            (
                EXAMPLE.replace(
                    "commands = [\"echo done\"] }",
                    "commands = [] }\nshell = { instance = \"i-0aaaaaaaaaaaaaaa1\", steps = [] }",
                ),
                "exactly one of send-command",
            ),
            (
                EXAMPLE.replace(
                    "i-0aaaaaaaaaaaaaaa1\", commands",
                    "i-0bbbbbbbbbbbbbbb2\", commands",
                ),
                "not in the fleet",
            ),
        ];
        for (text, expected) in cases {
            let error = Scenario::parse(&text).expect_err(expected).to_string();
            assert!(error.contains(expected), "{expected}: {error}");
        }
    }

    #[test]
    fn durations_read_in_every_unit() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("2h").is_err());
        assert!(parse_duration("-1s").is_err());
        assert_eq!(show_duration(Duration::from_secs(5)), "5s");
    }
}
