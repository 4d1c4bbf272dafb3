//! The classic message delivery service, MDS or `ec2messages` (spec §9.2): Run Command for
//! agents that poll. AWS JSON 1.1 on the same `POST /` as the SSM API, told apart by
//! `X-Amz-Target: EC2WindowsMessageDeliveryService.<Op>`.
//!
//! - `registry`: per instance, the queued messages, the polls being held and the last poll;
//! - `ops`: the six operations' wire shapes and what each does.
//!
//! # Delivery rule
//! Run Command's dispatcher (`crate::run_command::pump`) sends a job to an instance with an open
//! control channel as an `agent_job`, and otherwise, if the instance counts as *polling*, queues
//! it here as an MDS message (`aws.ssm.sendCommand` / `aws.ssm.cancelCommand`) that the next
//! GetMessages hands out. An instance counts as polling while one of its GetMessages is held
//! and for [`registry::POLL_LIVENESS`] (30 s) after its last one. The real agent keeps polling
//! MDS for 60 s after its control channel opens; by then jobs already go over the channel.
//!
//! # Liveness
//! A polling instance counts as connected, exactly like one with an open control channel: it is
//! `Online` in DescribeInstanceInformation and `connected` in GetConnectionStatus while it
//! polls by the rule above, whatever its last UpdateInstanceInformation. The dispatcher keeps
//! the node's `connected` flag equal to "control channel open or polling".
//!
//! # GetMessages
//! A long poll: answered at once when a message for the Destination is queued (or becomes
//! queued while the request is held), otherwise after [`Config::get_messages_hold`]
//! (`crate::config::DEFAULT_GET_MESSAGES_HOLD`, 5 s, what the recorded service held) with an
//! empty `Messages` list. A handed-out message stays hidden for `VisibilityTimeoutInSeconds`
//! and is handed out again unless AcknowledgeMessage, DeleteMessage or FailMessage removed it.
//!
//! # Replies
//! SendReply's `Payload` is the `SendReplyPayload` an `agent_job_reply` carries, and goes
//! through the same code ([`crate::run_command::apply_reply`]); AcknowledgeMessage is applied
//! as an `agent_job_ack` with status 200, FailMessage as a refused one.
//!
//! [`Config::get_messages_hold`]: crate::Config::get_messages_hold

mod ops;
pub(crate) mod registry;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ssm_protocol::payload::AgentJob;

use crate::model::{Emulator, Scope, State};
pub(crate) use ops::apply as handle;
use registry::MdsMessage;
pub(crate) use registry::Registry;

/// The `X-Amz-Target` prefix of MDS operations.
pub(crate) const TARGET_PREFIX: &str = "EC2WindowsMessageDeliveryService.";

impl Emulator {
    /// Whether a GetMessages from `instance_id` is being held in `scope` right now (for tests
    /// that must know a long poll is waiting before they queue work for it).
    pub fn mds_poll_held(&self, scope: &Scope, instance_id: &str) -> bool {
        self.with_state(|state| state.mds.poll_held(scope, instance_id))
    }
}

/// Queues `job` as an MDS message for `instance_id` if it is polling. Returns whether it did.
pub(crate) fn deliver(
    state: &mut State,
    scope: &Scope,
    instance_id: &str,
    job: &AgentJob,
    now: SystemTime,
) -> bool {
    if !state.mds.is_polling(scope, instance_id, now) {
        return false;
    }
    let message = MdsMessage {
        created: now,
        message_id: job.job_id.clone(),
        payload: job.content.clone(),
        topic: job.topic.clone(),
    };
    state.mds.enqueue(scope, instance_id, message, now);
    true
}

/// Keeps the `connected` flag of every node that ever polled equal to "control channel open
/// or polling at `now`". Returns whether a node lost its connection by this (it stopped
/// polling and has no control channel): the dispatcher must then look at every command.
pub(crate) fn refresh_connected(state: &mut State, scope: &Scope, now: SystemTime) -> bool {
    let (region, control, mds) = state.dispatch_parts(scope);
    let Some(region) = region else {
        return false;
    };
    let mut lost = false;
    for (instance_id, polling) in mds.pollers_in(scope, now) {
        let up = control.is_connected(scope, instance_id) || polling;
        if let Some(node) = region.instances.get_mut(instance_id) {
            lost |= node.connected && !up;
            node.connected = up;
        }
    }
    lost
}

/// `t` as `YYYY-MM-DDTHH:MM:SS.mmmZ`, the 24-character `CreatedDate` the agent requires.
fn iso8601_millis(t: SystemTime) -> String {
    let seconds = crate::clock::iso8601_seconds(t);
    let millis = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_millis())
        .unwrap_or(0);
    format!("{}.{millis:03}Z", seconds.trim_end_matches('Z'))
}

/// The default `VisibilityTimeoutInSeconds` (what the agent sends).
const DEFAULT_VISIBILITY: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_date_has_millis_and_24_chars() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_388_026_776);
        let s = iso8601_millis(t);
        assert_eq!(s, "2026-11-22T22:53:46.776Z");
        assert_eq!(s.len(), 24);
    }
}
