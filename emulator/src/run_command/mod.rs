//! Run Command over the control channel (spec §9.1, §9.2): the dispatcher that delivers
//! `agent_job`s under `MaxConcurrency` and `MaxErrors`, and the handling of the agent's
//! `agent_job_ack` and `agent_job_reply`. Nodes without a control channel that poll MDS get the
//! same jobs as MDS messages (`crate::mds`), and their replies go through the same code.
//!
//! The dispatcher is one function, [`pump`], run under the state lock whenever something it
//! depends on changes: a SendCommand or CancelCommand, a control channel opening or closing,
//! an ack or a reply, and every read of command state (so that a test's
//! [`ManualClock`](crate::ManualClock) moves delivery timeouts forward). One background task
//! per emulator ([`ensure_dispatcher`]) also runs it every second, so that time-driven changes
//! happen on a real clock with nobody asking. No thread or task per command.
//!
//! Its cost is kept to the commands that can change: a command whose invocations all ended is
//! never looked at again (terminal statuses are final), reachability is asked per node of the
//! registries, and an ack or a reply runs it for its own command only ([`pump_command`]),
//! unless something time-driven may be due for another command (a delivery timeout, a poller
//! that fell silent, a clock set back), when it runs over all of them as before. Nothing else
//! changes what the dispatcher would do for another command: connections opening or closing,
//! polls starting, SendCommand and CancelCommand all run the full pump themselves.
//!
//! The agent going offline in the middle of a command (decided from the agent's behaviour in
//! spec §9.1 and the AWS status documentation):
//! - a job sent but not yet acknowledged is treated as not delivered: the invocation turns
//!   `Delayed` and the job is sent again when the node reconnects (the service "will try to
//!   send the command again"). An agent that did receive it answers the second copy with
//!   `51405 DuplicateCommand`, which counts as an acknowledgement;
//! - a job the agent acknowledged stays `InProgress`: the agent keeps running it, persists the
//!   replies it could not deliver and resends them with the same MessageIds after it
//!   reconnects (agent-reconnect.jsonl), and those replies complete the invocation;
//! - an invocation still undelivered at `ExpiresAfter` ends `TimedOut` / `DeliveryTimedOut`.

use std::time::{Duration, SystemTime};

use ssm_protocol::MessageType;
use ssm_protocol::payload::{
    self, AgentJob, AgentJobAck, AgentJobReply, CancelCommandPayload, SendReplyPayload,
    TOPIC_CANCEL_COMMAND, TOPIC_SEND_COMMAND,
};

use crate::model::command::{Command, Delivery, Status};
use crate::model::{Emulator, Scope, State};

/// How often the background dispatcher looks at the clock.
const TICK: Duration = Duration::from_secs(1);

/// The `agent_job` JobId of a command on a node.
pub(crate) fn job_id(command_id: &str, instance_id: &str) -> String {
    format!("aws.ssm.{command_id}.{instance_id}")
}

/// The CommandId of a JobId `aws.ssm.<commandId>.<instanceId>` (the agent takes the
/// second-to-last dot field the same way).
fn command_of_job(job_id: &str) -> Option<&str> {
    let rest = job_id.strip_prefix("aws.ssm.")?;
    let (command, _instance) = rest.rsplit_once('.')?;
    Some(command)
}

/// Starts the background dispatcher of `emu` once, if called inside a tokio runtime.
pub(crate) fn ensure_dispatcher(emu: &Emulator) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let start =
        emu.with_state(|state| !std::mem::replace(&mut state.control.dispatcher_started, true));
    if start {
        let emu = emu.clone();
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(TICK).await;
                pump_all(&emu);
            }
        });
    }
}

/// Runs the dispatcher over every scope that has commands.
pub(crate) fn pump_all(emu: &Emulator) {
    let now = emu.now();
    emu.with_state(|state| {
        for scope in state.scopes() {
            pump(state, &scope, now);
        }
    });
}

/// A control channel opened or closed in `scope`.
pub(crate) fn on_connectivity_change(emu: &Emulator, scope: &Scope) {
    let now = emu.now();
    emu.with_state(|state| pump(state, scope, now));
}

/// An `agent_job_ack` arrived from `instance_id`.
pub(crate) fn on_job_ack(emu: &Emulator, scope: &Scope, instance_id: &str, ack: &AgentJobAck) {
    let now = emu.now();
    emu.with_state(|state| {
        let Some(command_id) = command_of_job(&ack.job_id) else {
            return;
        };
        let region = state.region_mut(scope);
        let Some(invocation) = region
            .commands
            .get_mut(command_id)
            .and_then(|c| c.invocation_mut(instance_id))
        else {
            // The ack of a cancel job, or of a job this emulator never sent.
            return;
        };
        match ack.status_code.as_str() {
            // 51405 DuplicateCommand: the agent already has it (a resend after a reconnect).
            "200" | "51405" => invocation.acked(),
            code => {
                tracing::info!(
                    instance_id,
                    code,
                    error = ack.error_message,
                    "agent refused a job"
                );
                invocation.delivery = Delivery::Acked;
                invocation.set(Status::Failed, "Undeliverable");
            }
        }
        pump_command(state, scope, command_id, now);
    });
}

/// A new (not yet seen) `agent_job_reply` arrived from `instance_id`.
pub(crate) fn on_job_reply(
    emu: &Emulator,
    scope: &Scope,
    instance_id: &str,
    reply: &AgentJobReply,
) {
    if reply.topic.starts_with(TOPIC_CANCEL_COMMAND) {
        // The cancel job's own InProgress reply; the cancelled command reports for itself.
        return;
    }
    match reply.reply() {
        Ok(content) => apply_reply(emu, scope, instance_id, &reply.job_id, &content),
        Err(e) => {
            tracing::warn!(instance_id, error = %e, "agent_job_reply with unreadable content");
        }
    }
}

/// A new command status report from `instance_id` about job `job_id`, whichever way it came:
/// the `content` of an `agent_job_reply`, or the `Payload` of an MDS SendReply. Reports about
/// jobs that are not commands of this emulator (a cancel job's own reply) are ignored.
pub(crate) fn apply_reply(
    emu: &Emulator,
    scope: &Scope,
    instance_id: &str,
    job_id: &str,
    content: &SendReplyPayload,
) {
    let now = emu.now();
    emu.with_state(|state| {
        let Some(command_id) = command_of_job(job_id) else {
            return;
        };
        let Some(invocation) = state
            .region_mut(scope)
            .commands
            .get_mut(command_id)
            .and_then(|c| c.invocation_mut(instance_id))
        else {
            tracing::debug!(instance_id, job_id, "reply for an unknown job");
            return;
        };
        invocation.apply_reply(&content.document_status, content.runtime_status.as_ref());
        pump_command(state, scope, command_id, now);
    });
}

/// The dispatcher: applies delivery timeouts and MaxErrors, delivers jobs under
/// MaxConcurrency, sends owed cancel jobs, and turns unacknowledged jobs of nodes that went
/// away back into undelivered ones, for every command of `scope` not ended yet.
///
/// A node is reachable while its control channel is open or while it polls MDS
/// (`crate::mds`); [`deliver`] picks the route.
pub(crate) fn pump(state: &mut State, scope: &Scope, now: SystemTime) {
    crate::mds::refresh_connected(state, scope, now);
    let mut planned = Planned::default();
    let (region, control, mds) = state.dispatch_parts(scope);
    let Some(region) = region else {
        return;
    };
    let reachable = reachable_in(control, mds, scope, now);
    for command in region.commands.unfinished_mut() {
        plan(command, now, &reachable, &mut planned);
    }
    region.commands.pumped_all_at = Some(now);
    drop(reachable);
    send_planned(state, scope, now, planned);
}

/// Whether a node of `scope` is reachable at `now`: its control channel is open or it polls.
fn reachable_in<'a>(
    control: &'a crate::control::Registry,
    mds: &'a crate::mds::Registry,
    scope: &Scope,
    now: SystemTime,
) -> impl Fn(&str) -> bool + 'a {
    let connected = control.connected_in(scope);
    let polling = mds.polling_in(scope, now);
    move |instance_id| connected(instance_id) || polling(instance_id)
}

/// [`pump`] after an ack or a reply about `command_id`: the same decisions, but only for that
/// command when nothing time-driven may be due for another one (see the module docs); all of
/// them otherwise.
fn pump_command(state: &mut State, scope: &Scope, command_id: &str, now: SystemTime) {
    let lost = crate::mds::refresh_connected(state, scope, now);
    let (region, control, mds) = state.dispatch_parts(scope);
    let Some(region) = region else {
        return;
    };
    if lost || region.commands.others_due(command_id, now) {
        return pump(state, scope, now);
    }
    let Some(command) = region.commands.get_mut(command_id) else {
        return;
    };
    if command.dispatch.finished {
        return;
    }
    let reachable = reachable_in(control, mds, scope, now);
    let mut planned = Planned::default();
    plan(command, now, &reachable, &mut planned);
    drop(reachable);
    send_planned(state, scope, now, planned);
}

/// What [`plan`] decided to send: `(command id, instance id, job)` and `(command id,
/// instance id)` of owed cancels.
#[derive(Default)]
struct Planned {
    jobs: Vec<(String, String, AgentJob)>,
    cancels: Vec<(String, String)>,
}

/// Sends what [`plan`] decided, in order: jobs that could not go out turn `Delayed`, cancel
/// jobs that went out are marked sent.
fn send_planned(state: &mut State, scope: &Scope, now: SystemTime, planned: Planned) {
    for (command_id, instance_id, job) in planned.jobs {
        let sent = deliver(state, scope, &instance_id, &job, now);
        if !sent
            && let Some(invocation) = state
                .region_mut(scope)
                .commands
                .get_mut(&command_id)
                .and_then(|c| c.invocation_mut(&instance_id))
        {
            invocation.delivery = Delivery::NotSent;
            invocation.set(Status::Delayed, "Delayed");
        }
    }
    for (command_id, instance_id) in planned.cancels {
        let cancel_job = job_id(&state.uuid().to_string(), &instance_id);
        let cancel = CancelCommandPayload {
            cancel_message_id: job_id(&command_id, &instance_id),
        };
        let Ok(job) = AgentJob::cancel_command(&cancel_job, TOPIC_CANCEL_COMMAND, &cancel) else {
            continue;
        };
        let sent = deliver(state, scope, &instance_id, &job, now);
        if sent
            && let Some(invocation) = state
                .region_mut(scope)
                .commands
                .get_mut(&command_id)
                .and_then(|c| c.invocation_mut(&instance_id))
        {
            invocation.cancel_sent = true;
        }
    }
}

/// Sends `job` to `instance_id`: as an `agent_job` on its control channel if one is open,
/// otherwise as an MDS message if it polls. Returns whether it went out.
fn deliver(
    state: &mut State,
    scope: &Scope,
    instance_id: &str,
    job: &AgentJob,
    now: SystemTime,
) -> bool {
    if state.control.is_connected(scope, instance_id) {
        return payload::to_json_bytes(job).ok().is_some_and(|bytes| {
            state
                .send_to_agent(scope, instance_id, now, MessageType::AgentJob, bytes)
                .is_some()
        });
    }
    crate::mds::deliver(state, scope, instance_id, job, now)
}

/// Decides, for one command, what changes and what to send, and notes whether the command
/// ended and whether its delivery timeout is applied.
fn plan(
    command: &mut Command,
    now: SystemTime,
    reachable: &impl Fn(&str) -> bool,
    planned: &mut Planned,
) {
    let expired = now >= command.expires_after;
    plan_invocations(command, expired, reachable, planned);
    command.dispatch.expiry_applied |= expired;
    command.dispatch.finished = command.invocations.iter().all(|i| i.status.is_terminal());
}

fn plan_invocations(
    command: &mut Command,
    expired: bool,
    reachable: &impl Fn(&str) -> bool,
    Planned { jobs, cancels }: &mut Planned,
) {
    for invocation in &mut command.invocations {
        if invocation.status.is_terminal() {
            continue;
        }
        // A job sent on a connection that closed before the agent acknowledged it was not
        // delivered: send it again when the node is back.
        if invocation.delivery == Delivery::Sent && !reachable(&invocation.instance_id) {
            invocation.delivery = Delivery::NotSent;
            if invocation.status != Status::Cancelling {
                invocation.set(Status::Delayed, "Delayed");
            }
        }
        if expired && invocation.delivery != Delivery::Acked {
            invocation.set(Status::TimedOut, "DeliveryTimedOut");
            continue;
        }
        if invocation.cancel_requested
            && !invocation.cancel_sent
            && invocation.delivery != Delivery::NotSent
            && reachable(&invocation.instance_id)
        {
            cancels.push((command.command_id.clone(), invocation.instance_id.clone()));
        }
    }
    if command.stopped_by_errors() {
        for invocation in &mut command.invocations {
            if invocation.delivery == Delivery::NotSent && !invocation.status.is_terminal() {
                invocation.set(Status::Cancelled, "Terminated");
            }
        }
        return;
    }
    let limit = command.concurrency_limit();
    let mut in_flight = command.in_flight();
    let job = |command: &Command, instance_id: &str| -> Option<AgentJob> {
        AgentJob::send_command(
            &job_id(&command.command_id, instance_id),
            TOPIC_SEND_COMMAND,
            &command.payload,
        )
        .ok()
    };
    let mut picked = Vec::new();
    for (index, invocation) in command.invocations.iter_mut().enumerate() {
        if invocation.status.is_terminal() || invocation.delivery != Delivery::NotSent {
            continue;
        }
        if in_flight >= limit {
            break;
        }
        if reachable(&invocation.instance_id) {
            picked.push(index);
            in_flight += 1;
        } else {
            invocation.set(Status::Delayed, "Delayed");
        }
    }
    for index in picked {
        let instance_id = command.invocations[index].instance_id.clone();
        if let Some(agent_job) = job(command, &instance_id) {
            // Marked as sent at once, so that a second pass does not pick it again; the caller
            // turns it Delayed if the frame could not be queued.
            command.invocations[index].delivery = Delivery::Sent;
            jobs.push((command.command_id.clone(), instance_id, agent_job));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_carry_the_command_id_second_to_last() {
        let id = job_id(
            "33333333-4444-5555-6666-777777777777",
            "i-0123456789abcdef0",
        );
        assert_eq!(
            id,
            "aws.ssm.33333333-4444-5555-6666-777777777777.i-0123456789abcdef0"
        );
        assert_eq!(
            command_of_job(&id),
            Some("33333333-4444-5555-6666-777777777777")
        );
        assert_eq!(command_of_job("other"), None);
    }
}
