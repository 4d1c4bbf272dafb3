//! Run Command state: commands, their invocations (one per target node) and the plugins of
//! each invocation, with the status rules of the AWS documentation ("Understanding command
//! statuses"; the `StatusDetails` members of `Command`, `CommandInvocation` and
//! `CommandPlugin` in the API reference).
//!
//! Nothing here sends anything: `crate::run_command` decides what to deliver and feeds the
//! agent's acks and replies back in. Time comes in as an argument.
//!
//! Status rules, as the documentation states them:
//! - An invocation is `Pending` until the agent acknowledges the job, `InProgress` after,
//!   `Delayed` while its node has no control channel (the service retries), and ends
//!   `Success`, `Failed`, `Cancelled` or `TimedOut` (`DeliveryTimedOut` when it was never
//!   delivered before `ExpiresAfter`, `ExecutionTimedOut` when the agent reports a timeout).
//! - Execution failures and execution timeouts count against `MaxErrors`; delivery timeouts
//!   and undeliverable invocations do not. Once the errors exceed `MaxErrors`, invocations
//!   not yet sent end `Cancelled` with `StatusDetails` `Terminated` ("the parent command
//!   exceeded its MaxErrors limit and subsequent invocations were canceled by the system").
//! - The command is `Success` only when every invocation succeeded; `Failed` (or `TimedOut`)
//!   when more than `MaxErrors` invocations failed (or timed out); `Cancelled` after
//!   CancelCommand; otherwise, once all invocations ended, `Failed` with `StatusDetails`
//!   `Incomplete`.
//! - `StatusDetails` are written as the API writes them, without spaces (`InProgress`,
//!   `DeliveryTimedOut`, `ExecutionTimedOut`); the guide lists them spelt out.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use ssm_protocol::payload::{PluginRuntimeStatus, ResultStatus, SendCommandPayload};

/// `StandardOutputContent` holds at most this many characters.
pub(crate) const MAX_STANDARD_OUTPUT: usize = 24_000;
/// `StandardErrorContent` holds at most this many characters.
pub(crate) const MAX_STANDARD_ERROR: usize = 8_000;
/// `CommandPlugin.Output` holds at most this many characters.
pub(crate) const MAX_PLUGIN_OUTPUT: usize = 2_500;
/// The agent's suffix on a cut `standardOutput`/`standardError` (spec §9.2).
pub(crate) const TRUNCATED_SUFFIX: &str = "--output truncated--";
/// The agent's marker on a cut plugin `output` (spec §9.2).
pub(crate) const OUTPUT_TRUNCATED_MARKER: &str = "\n---Output truncated---";

/// Every command of one account and region.
#[derive(Debug, Default)]
pub(crate) struct Commands {
    /// By list key: newest first, which is the order ListCommands returns.
    by_key: BTreeMap<String, Command>,
    /// CommandId → list key.
    keys: HashMap<String, String>,
    /// Numbers commands in creation order.
    next_seq: u64,
    /// When the dispatcher last looked at every command (`crate::run_command::pump`).
    pub(crate) pumped_all_at: Option<SystemTime>,
}

impl Commands {
    /// Stores a new command.
    pub(crate) fn insert(&mut self, mut command: Command) {
        let mut by_instance = HashMap::with_capacity(command.invocations.len());
        for (index, invocation) in command.invocations.iter().enumerate() {
            by_instance
                .entry(invocation.instance_id.clone())
                .or_insert(index);
        }
        command.dispatch.by_instance = by_instance;
        self.next_seq += 1;
        let key = format!("{:016x}", u64::MAX - self.next_seq);
        self.keys.insert(command.command_id.clone(), key.clone());
        self.by_key.insert(key, command);
    }

    /// One command by id.
    pub(crate) fn get(&self, command_id: &str) -> Option<&Command> {
        self.keys.get(command_id).and_then(|k| self.by_key.get(k))
    }

    /// One command by id, to change.
    pub(crate) fn get_mut(&mut self, command_id: &str) -> Option<&mut Command> {
        let key = self.keys.get(command_id)?;
        self.by_key.get_mut(key)
    }

    /// Every command with its list key, newest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&String, &Command)> {
        self.by_key.iter()
    }

    /// Every command that has an invocation not ended yet (or that the dispatcher has not
    /// looked at since it ended), newest first, to change.
    pub(crate) fn unfinished_mut(&mut self) -> impl Iterator<Item = &mut Command> {
        self.by_key.values_mut().filter(|c| !c.dispatch.finished)
    }

    /// Whether a command other than `command_id` may have a time-driven change due at `now`:
    /// a delivery timeout not applied yet, or a clock that went back since the dispatcher
    /// last looked at every command (or it never did).
    pub(crate) fn others_due(&self, command_id: &str, now: SystemTime) -> bool {
        self.pumped_all_at.is_none_or(|at| now < at)
            || self.by_key.values().any(|c| {
                !c.dispatch.finished
                    && !c.dispatch.expiry_applied
                    && now >= c.expires_after
                    && c.command_id != command_id
            })
    }
}

/// The dispatcher's bookkeeping of one command (`crate::run_command`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Dispatch {
    /// Instance id → index in `invocations`, filled when the command is stored.
    by_instance: HashMap<String, usize>,
    /// Every invocation ended. Terminal statuses never change, so the dispatcher has nothing
    /// more to do for this command.
    pub(crate) finished: bool,
    /// The dispatcher ran at or after `expires_after`, so every invocation not acknowledged by
    /// then timed out; a later run finds none left to time out.
    pub(crate) expiry_applied: bool,
}

/// `CommandInvocationStatus` (and `CommandStatus`, which has the same values but `Delayed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Not delivered yet, or not acknowledged by the agent yet.
    Pending,
    /// The agent has the command.
    InProgress,
    /// The node has no control channel; delivery is retried.
    Delayed,
    /// Ran successfully.
    Success,
    /// Cancelled by CancelCommand, or by the service after MaxErrors.
    Cancelled,
    /// Not delivered in time, or ran out of execution time.
    TimedOut,
    /// Ran and failed, or could not be delivered.
    Failed,
    /// CancelCommand asked the agent to stop it.
    Cancelling,
}

impl Status {
    /// The wire spelling.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "Pending",
            Status::InProgress => "InProgress",
            Status::Delayed => "Delayed",
            Status::Success => "Success",
            Status::Cancelled => "Cancelled",
            Status::TimedOut => "TimedOut",
            Status::Failed => "Failed",
            Status::Cancelling => "Cancelling",
        }
    }

    /// Whether the status is final.
    pub(crate) fn is_terminal(self) -> bool {
        matches!(
            self,
            Status::Success | Status::Cancelled | Status::TimedOut | Status::Failed
        )
    }

    /// The status and `StatusDetails` an agent's result status maps to; `None` for values
    /// that carry no information (unknown ones).
    fn from_result(status: &ResultStatus) -> Option<(Status, &'static str)> {
        Some(match status {
            ResultStatus::NotStarted => (Status::Pending, "Pending"),
            ResultStatus::InProgress => (Status::InProgress, "InProgress"),
            ResultStatus::Success
            | ResultStatus::SuccessAndReboot
            | ResultStatus::PassedAndReboot => (Status::Success, "Success"),
            ResultStatus::Skipped => (Status::Success, "Skipped"),
            ResultStatus::Failed => (Status::Failed, "Failed"),
            ResultStatus::Cancelled => (Status::Cancelled, "Cancelled"),
            ResultStatus::TimedOut => (Status::TimedOut, "ExecutionTimedOut"),
            _ => return None,
        })
    }
}

/// A `Target` of SendCommand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// `InstanceIds`, `tag:<key>` or `tag-key`.
    pub(crate) key: String,
    /// The values.
    pub(crate) values: Vec<String>,
}

/// Where an invocation's job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// Not sent (or sent on a connection that has since closed, before the agent acked it).
    NotSent,
    /// Sent, not acknowledged yet.
    Sent,
    /// The agent acknowledged it (or replied about it).
    Acked,
}

/// One command.
#[derive(Debug, Clone)]
pub(crate) struct Command {
    pub(crate) command_id: String,
    pub(crate) document_name: String,
    pub(crate) document_version: String,
    pub(crate) comment: String,
    /// Effective parameter values (with defaults), as `Command.Parameters` shows them.
    pub(crate) parameters: BTreeMap<String, Vec<String>>,
    /// `InstanceIds` as requested (empty when `Targets` was used).
    pub(crate) instance_ids: Vec<String>,
    /// `Targets` as requested.
    pub(crate) targets: Vec<Target>,
    pub(crate) requested: SystemTime,
    /// `RequestedDateTime` + `TimeoutSeconds`: undelivered invocations time out then.
    pub(crate) expires_after: SystemTime,
    pub(crate) timeout_seconds: i64,
    pub(crate) max_concurrency: String,
    pub(crate) max_errors: String,
    pub(crate) output_s3_region: String,
    pub(crate) output_s3_bucket_name: String,
    pub(crate) output_s3_key_prefix: String,
    pub(crate) service_role: String,
    /// Echoed as given.
    pub(crate) notification_config: Option<serde_json::Value>,
    /// Echoed as given.
    pub(crate) cloud_watch_output_config: Option<serde_json::Value>,
    /// Echoed as given.
    pub(crate) alarm_configuration: Option<serde_json::Value>,
    /// What every `agent_job` of this command carries.
    pub(crate) payload: SendCommandPayload,
    /// One per target, in target order.
    pub(crate) invocations: Vec<Invocation>,
    /// CancelCommand was called for every invocation.
    pub(crate) cancelled: bool,
    /// What the dispatcher keeps about this command.
    pub(crate) dispatch: Dispatch,
}

/// One command on one node.
#[derive(Debug, Clone)]
pub(crate) struct Invocation {
    pub(crate) instance_id: String,
    /// The node's `ComputerName` when known.
    pub(crate) instance_name: String,
    pub(crate) status: Status,
    pub(crate) status_details: &'static str,
    pub(crate) delivery: Delivery,
    /// CancelCommand was called for this invocation; a cancel job is owed to the agent.
    pub(crate) cancel_requested: bool,
    /// The cancel job went out.
    pub(crate) cancel_sent: bool,
    /// One per document plugin, in document order.
    pub(crate) plugins: Vec<Plugin>,
}

/// One plugin (step) of an invocation.
#[derive(Debug, Clone)]
pub(crate) struct Plugin {
    pub(crate) name: String,
    pub(crate) status: Status,
    pub(crate) status_details: &'static str,
    /// -1 until the plugin ran.
    pub(crate) response_code: i64,
    /// ISO 8601 as the agent wrote it, or empty.
    pub(crate) start: String,
    /// ISO 8601 as the agent wrote it, or empty.
    pub(crate) end: String,
    /// At most [`MAX_PLUGIN_OUTPUT`] characters.
    pub(crate) output: String,
    /// At most [`MAX_STANDARD_OUTPUT`] characters.
    pub(crate) standard_output: String,
    /// At most [`MAX_STANDARD_ERROR`] characters.
    pub(crate) standard_error: String,
}

impl Plugin {
    fn new(name: String) -> Plugin {
        Plugin {
            name,
            status: Status::Pending,
            status_details: "Pending",
            response_code: -1,
            start: String::new(),
            end: String::new(),
            output: String::new(),
            standard_output: String::new(),
            standard_error: String::new(),
        }
    }

    fn apply(&mut self, report: &PluginRuntimeStatus) {
        let Some((status, details)) = Status::from_result(&report.status) else {
            return;
        };
        if self.status.is_terminal() {
            // Replies 2 and 3 arrive in either order and carry the same final result; a
            // terminal status is never replaced.
            return;
        }
        self.status = status;
        self.status_details = details;
        if status.is_terminal() || status == Status::InProgress {
            if status.is_terminal() {
                self.response_code = report.code;
            }
            self.start = report.start_date_time.clone();
            self.end = report.end_date_time.clone();
            self.output = cap_output(&report.output);
            self.standard_output = cap(&report.standard_output, MAX_STANDARD_OUTPUT);
            self.standard_error = cap(&report.standard_error, MAX_STANDARD_ERROR);
        }
    }
}

impl Invocation {
    /// A fresh invocation of a document with `plugin_names`.
    pub(crate) fn new(
        instance_id: String,
        instance_name: String,
        plugin_names: &[String],
    ) -> Invocation {
        Invocation {
            instance_id,
            instance_name,
            status: Status::Pending,
            status_details: "Pending",
            delivery: Delivery::NotSent,
            cancel_requested: false,
            cancel_sent: false,
            plugins: plugin_names.iter().cloned().map(Plugin::new).collect(),
        }
    }

    /// Sets the status unless the invocation already ended.
    pub(crate) fn set(&mut self, status: Status, details: &'static str) {
        if !self.status.is_terminal() {
            self.status = status;
            self.status_details = details;
        }
        if status.is_terminal() {
            for plugin in &mut self.plugins {
                if !plugin.status.is_terminal() && plugin.response_code == -1 {
                    plugin.status = status;
                    plugin.status_details = details;
                }
            }
        }
    }

    /// Whether the invocation counts against `MaxErrors`.
    pub(crate) fn is_error(&self) -> bool {
        self.status == Status::Failed && self.status_details != "Undeliverable"
            || self.status_details == "ExecutionTimedOut"
    }

    /// The agent acknowledged the job.
    pub(crate) fn acked(&mut self) {
        self.delivery = Delivery::Acked;
        if matches!(self.status, Status::Pending | Status::Delayed) {
            self.set(Status::InProgress, "InProgress");
        }
    }

    /// Applies one `SendReplyPayload`: plugin results, then the document status. A terminal
    /// status is never overwritten, whatever order the replies arrive in.
    pub(crate) fn apply_reply(
        &mut self,
        document_status: &ResultStatus,
        runtime_status: Option<&BTreeMap<String, PluginRuntimeStatus>>,
    ) {
        self.delivery = Delivery::Acked;
        for (key, report) in runtime_status.into_iter().flatten() {
            let name = if report.name.is_empty() {
                key
            } else {
                &report.name
            };
            let index = match self
                .plugins
                .iter()
                .position(|p| &p.name == name || &p.name == key)
            {
                Some(index) => index,
                None => {
                    self.plugins.push(Plugin::new(name.clone()));
                    self.plugins.len() - 1
                }
            };
            self.plugins[index].apply(report);
        }
        match Status::from_result(document_status) {
            Some((status, details)) if status.is_terminal() => self.set(status, details),
            Some((Status::InProgress, _)) => {
                if matches!(self.status, Status::Pending | Status::Delayed) {
                    self.set(Status::InProgress, "InProgress");
                }
            }
            _ => {}
        }
    }
}

/// The status of a whole command, derived from its invocations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CommandCounts {
    pub(crate) target_count: usize,
    pub(crate) completed_count: usize,
    pub(crate) error_count: usize,
    pub(crate) delivery_timed_out_count: usize,
}

impl Command {
    /// How many invocations may be in flight at once (`MaxConcurrency` of the target count;
    /// a percentage rounds up, and is at least 1).
    pub(crate) fn concurrency_limit(&self) -> usize {
        limit(&self.max_concurrency, self.invocations.len(), true)
    }

    /// How many errors are tolerated (`MaxErrors`; a percentage of the target count, rounded
    /// down).
    pub(crate) fn error_limit(&self) -> usize {
        limit(&self.max_errors, self.invocations.len(), false)
    }

    /// Whether more invocations failed than `MaxErrors` allows.
    pub(crate) fn stopped_by_errors(&self) -> bool {
        self.counts().error_count > self.error_limit()
    }

    /// Invocations sent and not ended (they occupy a `MaxConcurrency` slot).
    pub(crate) fn in_flight(&self) -> usize {
        self.invocations
            .iter()
            .filter(|i| i.delivery != Delivery::NotSent && !i.status.is_terminal())
            .count()
    }

    /// `TargetCount`, `CompletedCount`, `ErrorCount`, `DeliveryTimedOutCount`.
    pub(crate) fn counts(&self) -> CommandCounts {
        let count =
            |f: &dyn Fn(&Invocation) -> bool| self.invocations.iter().filter(|i| f(i)).count();
        CommandCounts {
            target_count: self.invocations.len(),
            completed_count: count(&|i| i.status.is_terminal()),
            error_count: count(&|i| i.is_error()),
            delivery_timed_out_count: count(&|i| i.status_details == "DeliveryTimedOut"),
        }
    }

    /// The command's `Status` and `StatusDetails`.
    pub(crate) fn status(&self) -> (Status, &'static str) {
        let counts = self.counts();
        let all_done = counts.completed_count == counts.target_count;
        if counts.target_count == 0 {
            // A Targets selection that matched nothing.
            return (Status::Failed, "NoInstancesInTag");
        }
        if !all_done {
            if self.cancelled {
                return (Status::Cancelling, "Cancelling");
            }
            let started = self
                .invocations
                .iter()
                .any(|i| i.delivery != Delivery::NotSent || i.status != Status::Pending);
            return if started {
                (Status::InProgress, "InProgress")
            } else {
                (Status::Pending, "Pending")
            };
        }
        let succeeded = self
            .invocations
            .iter()
            .filter(|i| i.status == Status::Success)
            .count();
        if succeeded == counts.target_count {
            return (Status::Success, "Success");
        }
        if self.cancelled {
            return (Status::Cancelled, "Cancelled");
        }
        let max_errors = self.error_limit();
        if counts.error_count > max_errors {
            let timed_out = self
                .invocations
                .iter()
                .filter(|i| i.status_details == "ExecutionTimedOut")
                .count();
            return if timed_out * 2 > counts.error_count {
                (Status::TimedOut, "ExecutionTimedOut")
            } else {
                (Status::Failed, "Failed")
            };
        }
        if counts.delivery_timed_out_count > max_errors
            && counts.delivery_timed_out_count + succeeded == counts.target_count
        {
            return (Status::TimedOut, "DeliveryTimedOut");
        }
        (Status::Failed, "Incomplete")
    }

    /// The invocation on `instance_id`.
    pub(crate) fn invocation_mut(&mut self, instance_id: &str) -> Option<&mut Invocation> {
        if self.dispatch.by_instance.len() == self.invocations.len() {
            let index = *self.dispatch.by_instance.get(instance_id)?;
            return self.invocations.get_mut(index);
        }
        // Not stored yet (no index), or an instance targeted twice.
        self.invocations
            .iter_mut()
            .find(|i| i.instance_id == instance_id)
    }
}

/// A `MaxConcurrency`/`MaxErrors` value (`10` or `10%`) applied to `targets`.
pub(crate) fn limit(spec: &str, targets: usize, at_least_one: bool) -> usize {
    let n = match spec.strip_suffix('%') {
        Some(percent) => {
            let p: usize = percent.parse().unwrap_or(100);
            if at_least_one {
                (targets * p).div_ceil(100)
            } else {
                targets * p / 100
            }
        }
        None => spec
            .parse()
            .unwrap_or(if at_least_one { usize::MAX } else { 0 }),
    };
    if at_least_one { n.max(1) } else { n }
}

/// Whether `spec` is a valid `MaxConcurrency`/`MaxErrors`: `^([1-9][0-9]*|[1-9][0-9]%|[1-9]%|100%)$`
/// (with `0` allowed when `zero_ok`, as MaxErrors's pattern allows).
pub(crate) fn is_valid_limit(spec: &str, zero_ok: bool) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if spec.len() > 7 {
        return false;
    }
    match spec.strip_suffix('%') {
        Some(p) => {
            digits(p)
                && (p == "100" || (p.len() <= 2 && !p.starts_with('0')) || (zero_ok && p == "0"))
        }
        None => digits(spec) && (!spec.starts_with('0') || (zero_ok && spec == "0")),
    }
}

/// `s` cut to at most `max` characters, ending with the agent's truncation suffix if cut.
pub(crate) fn cap(s: &str, max: usize) -> String {
    truncate_with(s, max, TRUNCATED_SUFFIX)
}

/// A plugin `Output` cut to [`MAX_PLUGIN_OUTPUT`] with the agent's marker if cut.
pub(crate) fn cap_output(s: &str) -> String {
    truncate_with(s, MAX_PLUGIN_OUTPUT, OUTPUT_TRUNCATED_MARKER)
}

fn truncate_with(s: &str, max: usize, suffix: &str) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let keep = max.saturating_sub(suffix.chars().count());
    let mut out: String = s.chars().take(keep).collect();
    out.push_str(suffix);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_take_numbers_and_percentages() {
        assert_eq!(limit("50", 3, true), 50);
        assert_eq!(limit("1", 3, true), 1);
        assert_eq!(limit("34%", 3, true), 2);
        assert_eq!(limit("1%", 3, true), 1);
        assert_eq!(limit("0", 3, false), 0);
        assert_eq!(limit("10%", 50, false), 5);
        assert_eq!(limit("50%", 3, false), 1);
        assert!(is_valid_limit("1", false));
        assert!(is_valid_limit("100%", false));
        assert!(is_valid_limit("9%", false));
        assert!(is_valid_limit("0", true));
        assert!(!is_valid_limit("0", false));
        assert!(!is_valid_limit("101%", false));
        assert!(!is_valid_limit("05", false));
        assert!(!is_valid_limit("a", false));
        assert!(!is_valid_limit("12345678", false));
    }

    #[test]
    fn caps_keep_the_agent_markers() {
        let long = "x".repeat(30_000);
        let out = cap(&long, MAX_STANDARD_OUTPUT);
        assert_eq!(out.chars().count(), MAX_STANDARD_OUTPUT);
        assert!(out.ends_with(TRUNCATED_SUFFIX));
        let out = cap_output(&long);
        assert_eq!(out.chars().count(), MAX_PLUGIN_OUTPUT);
        assert!(out.ends_with(OUTPUT_TRUNCATED_MARKER));
        assert_eq!(cap("short", 10), "short");
    }

    #[test]
    fn a_late_in_progress_never_overwrites_a_final_status() {
        let mut inv = Invocation::new(
            "i-01234567".into(),
            String::new(),
            &["aws:runShellScript".into()],
        );
        let plugin = |status: ResultStatus| {
            BTreeMap::from([(
                "aws:runShellScript".to_owned(),
                PluginRuntimeStatus {
                    status,
                    code: 3,
                    name: "aws:runShellScript".into(),
                    output: "out".into(),
                    ..Default::default()
                },
            )])
        };
        inv.apply_reply(&ResultStatus::InProgress, None);
        assert_eq!(inv.status, Status::InProgress);
        assert_eq!(inv.plugins[0].response_code, -1);
        inv.apply_reply(&ResultStatus::Failed, Some(&plugin(ResultStatus::Failed)));
        inv.apply_reply(
            &ResultStatus::InProgress,
            Some(&plugin(ResultStatus::Failed)),
        );
        assert_eq!((inv.status, inv.status_details), (Status::Failed, "Failed"));
        assert_eq!(inv.plugins[0].response_code, 3);
        assert!(inv.is_error());
    }
}
