//! Run Command over the control channel (§9.1, §9.2): `agent_job` in; `agent_job_ack` and
//! `agent_job_reply` out; `agent_job_reply_ack` in.
//!
//! For a command, as the real agent does:
//! 1. `agent_job_ack` (200 Successful, `createdDate` = the job's CreatedDate) and, in the same
//!    breath, reply 1: InProgress with `runtimeStatus: null`, sent once and never retried.
//! 2. After the agent's [`Slowness::command_start_delay`] (none unless set), the script runs
//!    on the agent's [`Executor`] (at most five at once).
//! 3. Reply 2 (InProgress + the plugin's status) and reply 3 (terminal status). Both wait for
//!    `agent_job_reply_ack`; unacknowledged ones are resent with the same MessageId and a new
//!    `dateTime` every [`Timings::reply_resend`].
//!
//! A CommandId seen before gets `agent_job_ack` 51405 DuplicateCommand and nothing else. A
//! cancel gets its own ack and one InProgress reply on topic `aws.ssm.cancelCommand`, then
//! cancels the running job, whose replies 2 and 3 report Cancelled.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use ssm_protocol::payload::{
    AdditionalInfo, AgentInfo, AgentJob, AgentJobAck, AgentJobReply, AgentJobReplyAck, JobContent,
    PluginRuntimeStatus, ResultStatus, SendCommandPayload, SendReplyPayload, TOPIC_CANCEL_COMMAND,
    TOPIC_SEND_COMMAND, from_json_bytes, to_json_bytes,
};
use ssm_protocol::{Message, MessageType};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::agent::Outbox;
use crate::command::{
    self, CommandId, CommandJob, ExecutionTimeout, Executor, PLUGIN_NAME, PluginOutcome, agent_time,
};
use crate::config::{InstanceConfig, Timings};
use crate::faults::{self, Slowness};

/// `statusCode`/`errorMessage` of an accepted job.
const ACK_OK: (&str, &str) = ("200", "Successful");
/// `statusCode`/`errorMessage` of a CommandId already received.
const ACK_DUPLICATE: (&str, &str) = ("51405", "DuplicateCommand");

/// One agent's Run Command state; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Jobs {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    instance: InstanceConfig,
    region: String,
    executor: Executor,
    outbox: Outbox,
    timings: Timings,
    /// The agent's delays, for the command start delay.
    slowness: watch::Receiver<Slowness>,
    /// Parent of every running job's token: cancelled when the agent stops.
    shutdown: CancellationToken,
    /// The commands' tasks, so that a stopping agent can wait until their process groups are
    /// killed (a detached task would die with the runtime and leave the scripts running).
    /// Finished ones are reaped whenever a new one starts.
    tasks: Mutex<tokio::task::JoinSet<()>>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Every CommandId received, for DuplicateCommand (the real agent persists these).
    seen: HashSet<String>,
    /// JobId of each running command → its cancel token.
    running: HashMap<String, CancellationToken>,
    /// Replies 2 and 3 not yet acknowledged, by MessageId.
    unacked: HashMap<Uuid, Unacked>,
}

#[derive(Debug)]
struct Unacked {
    job_id: String,
    topic: &'static str,
    reply: SendReplyPayload,
    sent: Instant,
}

impl Jobs {
    pub(crate) fn new(
        instance: InstanceConfig,
        region: String,
        executor: Executor,
        outbox: Outbox,
        timings: Timings,
        slowness: watch::Receiver<Slowness>,
        shutdown: CancellationToken,
    ) -> Jobs {
        Jobs {
            inner: Arc::new(Inner {
                instance,
                region,
                executor,
                outbox,
                timings,
                slowness,
                shutdown,
                tasks: Mutex::new(tokio::task::JoinSet::new()),
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// Handles an `agent_job`: acks it at once and starts or cancels the command.
    pub(crate) fn on_agent_job(&self, message: &Message) {
        let instance = &self.inner.instance.instance_id;
        let job: AgentJob = match from_json_bytes(&message.payload) {
            Ok(job) => job,
            Err(error) => {
                tracing::warn!(%instance, "agent_job payload unreadable, dropped: {error}");
                return;
            }
        };
        let content = match job.job_content() {
            Ok(content) => content,
            Err(error) => {
                tracing::warn!(%instance, job = %job.job_id, "agent_job dropped: {error}");
                return;
            }
        };
        match content {
            JobContent::SendCommand(command) => self.start(message, &job, command),
            JobContent::CancelCommand(cancel) => {
                self.ack(message, &job.job_id, ACK_OK);
                self.send_reply(
                    &job.job_id,
                    TOPIC_CANCEL_COMMAND,
                    &self.in_progress(),
                    false,
                );
                let token = self.state().running.get(&cancel.cancel_message_id).cloned();
                match token {
                    Some(token) => {
                        tracing::info!(%instance, job = %cancel.cancel_message_id, "cancelling");
                        token.cancel();
                    }
                    None => tracing::info!(
                        %instance,
                        job = %cancel.cancel_message_id,
                        "cancel for a job that is not running"
                    ),
                }
            }
        }
    }

    /// Handles an `agent_job_reply_ack`: the reply it names needs no resend.
    pub(crate) fn on_reply_ack(&self, message: &Message) {
        let Ok(ack) = from_json_bytes::<AgentJobReplyAck>(&message.payload) else {
            tracing::warn!("agent_job_reply_ack payload unreadable, ignored");
            return;
        };
        if let Ok(id) = Uuid::parse_str(&ack.acknowledged_message_id) {
            self.state().unacked.remove(&id);
        }
    }

    /// Resends unacknowledged replies 2 and 3 every `reply_resend`, forever.
    pub(crate) async fn resend_unacked(&self) {
        let mut ticks = tokio::time::interval(self.inner.timings.reply_resend);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let now = Instant::now();
            let due: Vec<(Uuid, Vec<u8>)> = {
                let mut state = self.state();
                state
                    .unacked
                    .iter_mut()
                    .filter(|(_, u)| {
                        now.duration_since(u.sent) >= self.inner.timings.reply_ack_wait
                    })
                    .filter_map(|(id, unacked)| {
                        unacked.sent = now;
                        unacked.reply.additional_info.date_time = now_iso();
                        let reply = AgentJobReply::from_reply(
                            &unacked.job_id,
                            unacked.topic,
                            &unacked.reply,
                        )
                        .ok()?;
                        Some((*id, to_json_bytes(&reply).ok()?))
                    })
                    .collect()
            };
            for (id, payload) in due {
                tracing::debug!(instance = %self.inner.instance.instance_id, %id, "resending unacknowledged reply");
                self.inner
                    .outbox
                    .send_as(MessageType::AgentJobReply, id, payload);
            }
        }
    }

    /// Kills every running command (agent shutdown).
    pub(crate) fn shutdown(&self) {
        self.inner.shutdown.cancel();
    }

    /// After [`Jobs::shutdown`]: waits until every command has ended (its process group
    /// killed). Call it once the control channel, the only source of new commands, is stopped.
    pub(crate) async fn stopped(&self) {
        let mut tasks = std::mem::take(&mut *lock(&self.inner.tasks));
        while tasks.join_next().await.is_some() {}
    }

    fn start(&self, message: &Message, job: &AgentJob, command: SendCommandPayload) {
        let instance = &self.inner.instance.instance_id;
        let Ok(id) = CommandId::parse(&command.command_id) else {
            tracing::warn!(%instance, command = %command.command_id, "agent_job with an unusable CommandId dropped");
            return;
        };
        let token = self.inner.shutdown.child_token();
        {
            let mut state = self.state();
            if !state.seen.insert(command.command_id.clone()) {
                drop(state);
                tracing::info!(%instance, command = %command.command_id, "DuplicateCommand");
                self.ack(message, &job.job_id, ACK_DUPLICATE);
                return;
            }
            state.running.insert(job.job_id.clone(), token.clone());
        }
        self.ack(message, &job.job_id, ACK_OK);
        self.send_reply(&job.job_id, TOPIC_SEND_COMMAND, &self.in_progress(), false);
        tracing::info!(%instance, command = %command.command_id, "running");

        let jobs = self.clone();
        let job_id = job.job_id.clone();
        let acked = tokio::time::Instant::now();
        let slowness = self.inner.slowness.clone();
        let mut tasks = lock(&self.inner.tasks);
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move {
            // A cancel while waiting ends the job before it starts (the executor sees the
            // cancelled token).
            tokio::select! {
                () = faults::delay_since(slowness, acked, |s| s.command_start_delay) => {}
                () = token.cancelled() => {}
            }
            let outcome = match jobs.command_job(&command) {
                Ok(spec) => jobs.inner.executor.run(&id, &spec, &token).await,
                Err(message) => command::invalid_plugin_input(&message),
            };
            jobs.state().running.remove(&job_id);
            if jobs.inner.shutdown.is_cancelled() {
                return;
            }
            let status = ResultStatus::from(outcome.status.as_str().to_owned());
            let plugin = plugin_status(&outcome);
            let counts = BTreeMap::from([(status.as_str().to_owned(), 1)]);
            let per_plugin = jobs.reply(ResultStatus::InProgress, Some(&plugin), Some(&counts));
            let last = jobs.reply(status, Some(&plugin), Some(&counts));
            jobs.send_reply(&job_id, TOPIC_SEND_COMMAND, &per_plugin, true);
            jobs.send_reply(&job_id, TOPIC_SEND_COMMAND, &last, true);
        });
    }

    /// Maps the SendCommandPayload parameters onto the executor's job, or gives the agent's
    /// error message for plugin properties it cannot decode.
    fn command_job(&self, command: &SendCommandPayload) -> Result<CommandJob, String> {
        let parameters = &command.parameters;
        let working_directory = match parameters.get("workingDirectory") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(dir)) => dir.clone(),
            Some(other) => return Err(invalid_properties(parameters, other)),
        };
        let commands = match parameters.get("commands") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items.iter().map(go_format).collect(),
            Some(other) => vec![go_format(other)],
        };
        let execution_timeout = match parameters.get("executionTimeout") {
            Some(Value::String(raw)) => ExecutionTimeout::from_parameter(raw),
            Some(Value::Number(number)) => ExecutionTimeout::from_parameter(&number.to_string()),
            _ => ExecutionTimeout::DEFAULT,
        };
        let instance = &self.inner.instance;
        Ok(CommandJob {
            commands,
            working_directory,
            execution_timeout,
            env: vec![
                ("AWS_SSM_INSTANCE_ID".into(), instance.instance_id.clone()),
                ("AWS_SSM_REGION_NAME".into(), self.inner.region.clone()),
                (
                    "AWS_SSM_PLATFORM_NAME".into(),
                    instance.platform_name.clone(),
                ),
                (
                    "AWS_SSM_PLATFORM_VERSION".into(),
                    instance.platform_version.clone(),
                ),
            ],
        })
    }

    fn ack(&self, message: &Message, job_id: &str, (status_code, error_message): (&str, &str)) {
        let ack = AgentJobAck {
            job_id: job_id.to_owned(),
            acknowledged_message_id: message.message_id.to_string(),
            created_date: agent_time::format(
                UNIX_EPOCH + Duration::from_millis(message.created_date),
            ),
            status_code: status_code.to_owned(),
            error_message: error_message.to_owned(),
        };
        let payload = to_json_bytes(&ack).expect("strings serialize");
        self.inner.outbox.send(MessageType::AgentJobAck, payload);
    }

    /// Sends a reply; `track` keeps it for resending until acknowledged.
    fn send_reply(&self, job_id: &str, topic: &'static str, reply: &SendReplyPayload, track: bool) {
        let wrapped = AgentJobReply::from_reply(job_id, topic, reply).expect("strings serialize");
        let payload = to_json_bytes(&wrapped).expect("strings serialize");
        let id = self.inner.outbox.send(MessageType::AgentJobReply, payload);
        if track {
            self.state().unacked.insert(
                id,
                Unacked {
                    job_id: job_id.to_owned(),
                    topic,
                    reply: reply.clone(),
                    sent: Instant::now(),
                },
            );
        }
    }

    fn in_progress(&self) -> SendReplyPayload {
        self.reply(ResultStatus::InProgress, None, None)
    }

    fn reply(
        &self,
        document_status: ResultStatus,
        plugin: Option<&PluginRuntimeStatus>,
        counts: Option<&BTreeMap<String, i64>>,
    ) -> SendReplyPayload {
        SendReplyPayload {
            additional_info: AdditionalInfo {
                agent: AgentInfo {
                    lang: "en-US".to_owned(),
                    name: "amazon-ssm-agent".to_owned(),
                    os: "linux".to_owned(),
                    // What the recorded agent reported (§9.2 example and every trace).
                    osver: "1".to_owned(),
                    ver: self.inner.instance.agent_version.clone(),
                },
                date_time: now_iso(),
                run_id: String::new(),
                runtime_status_counts: counts.cloned(),
                able_to_open_mgs_connection: None,
            },
            document_status,
            document_trace_output: String::new(),
            runtime_status: plugin.map(|p| BTreeMap::from([(PLUGIN_NAME.to_owned(), p.clone())])),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.inner.state)
    }
}

/// Locks `mutex`; never held across an await, and a panic elsewhere leaves consistent data.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn plugin_status(outcome: &PluginOutcome) -> PluginRuntimeStatus {
    PluginRuntimeStatus {
        status: ResultStatus::from(outcome.status.as_str().to_owned()),
        code: i64::from(outcome.code),
        name: PLUGIN_NAME.to_owned(),
        output: outcome.output.clone(),
        start_date_time: outcome.start_date_time.clone(),
        end_date_time: outcome.end_date_time.clone(),
        output_s3_bucket_name: String::new(),
        output_s3_key_prefix: String::new(),
        step_name: String::new(),
        standard_output: outcome.standard_output.clone(),
        standard_error: outcome.standard_error.clone(),
    }
}

fn now_iso() -> String {
    agent_time::format(SystemTime::now())
}

/// The agent's message for a `workingDirectory` that is not a string: the substituted plugin
/// properties printed with Go's `%v`, then the `encoding/json` error.
fn invalid_properties(parameters: &serde_json::Map<String, Value>, bad: &Value) -> String {
    let parameter = |name: &str, default: Value| parameters.get(name).cloned().unwrap_or(default);
    // Go prints a map with sorted keys.
    let properties = Value::Object(serde_json::Map::from_iter([
        ("id".to_owned(), Value::from("0.aws:runShellScript")),
        (
            "runCommand".to_owned(),
            parameter("commands", Value::Array(Vec::new())),
        ),
        (
            "timeoutSeconds".to_owned(),
            parameter("executionTimeout", Value::from("3600")),
        ),
        ("workingDirectory".to_owned(), bad.clone()),
    ]));
    let kind = match bad {
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        Value::Bool(_) => "bool",
        _ => "number",
    };
    format!(
        "Invalid format in plugin properties {};\nerror json: cannot unmarshal {kind} into Go struct field RunScriptPluginInput.WorkingDirectory of type string",
        go_format(&properties)
    )
}

/// A decoded JSON value as Go's `fmt` `%v` prints it.
fn go_format(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(go_format).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let entries: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{k}:{}", go_format(v)))
                .collect();
            format!("map[{}]", entries.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_valued_working_directory_gives_the_recorded_message() {
        let parameters: serde_json::Map<String, Value> = serde_json::from_str(
            r#"{"commands":["echo hello from run command","id -un","echo err >&2","exit 3"],
                "workingDirectory":[""],"executionTimeout":["3600"]}"#,
        )
        .unwrap();
        let message = invalid_properties(&parameters, &parameters["workingDirectory"]);
        assert_eq!(
            message,
            "Invalid format in plugin properties map[id:0.aws:runShellScript runCommand:[echo hello from run command id -un echo err >&2 exit 3] timeoutSeconds:[3600] workingDirectory:[]];\nerror json: cannot unmarshal array into Go struct field RunScriptPluginInput.WorkingDirectory of type string"
        );
    }
}
