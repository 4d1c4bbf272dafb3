//! Who polls and what waits for them: per Destination (instance), the MDS messages queued for
//! its GetMessages, the polls being held, and when it last polled.
//!
//! It lives inside the emulator's [`State`](crate::model::State) next to the control-channel
//! registry, so that Run Command's dispatcher can pick a route and queue a message in the same
//! critical section in which it changes an invocation. Nothing here knows JSON or HTTP; time
//! comes in as an argument.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;

use crate::model::Scope;

/// How long after its last GetMessages an agent still counts as polling (for delivery and for
/// PingStatus). The real agent re-polls at once after each answer, sleeps 2–2.5 s after an
/// answer that took under 1 s, and gives up on a request after its 20 s HTTP timeout
/// (`Mds.StopTimeoutMillis`, spec §9.2), so a live agent is never silent this long.
pub(crate) const POLL_LIVENESS: Duration = Duration::from_secs(30);

/// One MDS message, as GetMessages hands it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MdsMessage {
    /// When it was queued: the message's `CreatedDate`.
    pub(crate) created: SystemTime,
    /// `aws.ssm.<commandId>.<instanceId>` (a random id instead of the command id for a cancel).
    pub(crate) message_id: String,
    /// A `SendCommandPayload` or a `CancelCommandPayload`, as a JSON string.
    pub(crate) payload: String,
    /// `aws.ssm.sendCommand` or `aws.ssm.cancelCommand`.
    pub(crate) topic: String,
}

/// MDS bookkeeping for the whole emulator.
#[derive(Debug)]
pub(crate) struct Registry {
    /// How long a GetMessages with nothing to deliver is held.
    hold: Duration,
    /// Per scope, per Destination. Nested so that the dispatcher's per-node lookups borrow
    /// instead of building a key.
    destinations: HashMap<Scope, HashMap<String, Destination>>,
}

#[derive(Debug, Default)]
struct Destination {
    /// Messages not yet acknowledged, deleted or failed, in the order they were queued.
    queue: Vec<Queued>,
    /// GetMessages requests being held right now.
    polls_held: usize,
    /// When the last GetMessages arrived or was answered.
    last_poll: Option<SystemTime>,
    /// Wakes the held polls when a message is queued.
    wake: Arc<Notify>,
}

#[derive(Debug)]
struct Queued {
    message: MdsMessage,
    /// Hidden until then after a GetMessages handed it out (`VisibilityTimeoutInSeconds`), so
    /// that a message the agent never acknowledges is handed out again, as on the real service.
    visible_at: SystemTime,
}

impl Registry {
    /// An empty registry whose held polls last `hold`.
    pub(crate) fn new(hold: Duration) -> Registry {
        Registry {
            hold,
            destinations: HashMap::new(),
        }
    }

    /// How long a GetMessages with nothing to deliver is held.
    pub(crate) fn hold(&self) -> Duration {
        self.hold
    }

    fn destination(&mut self, scope: &Scope, instance_id: &str) -> &mut Destination {
        self.destinations
            .entry(scope.clone())
            .or_default()
            .entry(instance_id.to_owned())
            .or_default()
    }

    fn get(&self, scope: &Scope, instance_id: &str) -> Option<&Destination> {
        self.destinations.get(scope)?.get(instance_id)
    }

    /// A GetMessages from `instance_id` arrived and will be held. Returns what wakes it.
    pub(crate) fn poll_started(
        &mut self,
        scope: &Scope,
        instance_id: &str,
        now: SystemTime,
    ) -> Arc<Notify> {
        let destination = self.destination(scope, instance_id);
        destination.polls_held += 1;
        destination.last_poll = Some(now);
        destination.wake.clone()
    }

    /// A held GetMessages was answered (or its client went away).
    pub(crate) fn poll_ended(&mut self, scope: &Scope, instance_id: &str, now: SystemTime) {
        let destination = self.destination(scope, instance_id);
        destination.polls_held = destination.polls_held.saturating_sub(1);
        destination.last_poll = Some(now);
    }

    /// Whether a GetMessages from `instance_id` is being held now.
    pub(crate) fn poll_held(&self, scope: &Scope, instance_id: &str) -> bool {
        self.get(scope, instance_id)
            .is_some_and(|d| d.polls_held > 0)
    }

    /// Whether `instance_id` counts as polling at `now`: a GetMessages is held, or the last one
    /// was at most [`POLL_LIVENESS`] ago.
    pub(crate) fn is_polling(&self, scope: &Scope, instance_id: &str, now: SystemTime) -> bool {
        self.get(scope, instance_id)
            .is_some_and(|d| d.is_polling(now))
    }

    /// Whether an instance of `scope` counts as polling at `now`, as [`Self::is_polling`]
    /// answers, with the scope looked up once for many questions.
    pub(crate) fn polling_in(&self, scope: &Scope, now: SystemTime) -> impl Fn(&str) -> bool + '_ {
        let destinations = self.destinations.get(scope);
        move |instance_id| {
            destinations
                .and_then(|d| d.get(instance_id))
                .is_some_and(|d| d.is_polling(now))
        }
    }

    /// Every instance of `scope` that ever polled, with whether it counts as polling at `now`.
    pub(crate) fn pollers_in(
        &self,
        scope: &Scope,
        now: SystemTime,
    ) -> impl Iterator<Item = (&str, bool)> {
        self.destinations
            .get(scope)
            .into_iter()
            .flatten()
            .map(move |(id, d)| (id.as_str(), d.is_polling(now)))
    }

    /// Queues `message` for `instance_id` (replacing a queued one with the same MessageId, so a
    /// redelivery never doubles it) and wakes its held polls.
    pub(crate) fn enqueue(
        &mut self,
        scope: &Scope,
        instance_id: &str,
        message: MdsMessage,
        now: SystemTime,
    ) {
        let destination = self.destination(scope, instance_id);
        destination
            .queue
            .retain(|q| q.message.message_id != message.message_id);
        destination.queue.push(Queued {
            message,
            visible_at: now,
        });
        destination.wake.notify_waiters();
    }

    /// Hands out the visible messages of `instance_id` and hides them for `visibility`.
    pub(crate) fn take_visible(
        &mut self,
        scope: &Scope,
        instance_id: &str,
        now: SystemTime,
        visibility: Duration,
    ) -> Vec<MdsMessage> {
        let destination = self.destination(scope, instance_id);
        let mut out = Vec::new();
        for queued in &mut destination.queue {
            if queued.visible_at <= now {
                queued.visible_at = now + visibility;
                out.push(queued.message.clone());
            }
        }
        out
    }

    /// Forgets message `message_id` of `instance_id` (acknowledged, deleted or failed).
    /// Returns whether it was queued.
    pub(crate) fn remove(&mut self, scope: &Scope, instance_id: &str, message_id: &str) -> bool {
        let destination = self.destination(scope, instance_id);
        let before = destination.queue.len();
        destination
            .queue
            .retain(|q| q.message.message_id != message_id);
        destination.queue.len() != before
    }
}

impl Destination {
    fn is_polling(&self, now: SystemTime) -> bool {
        self.polls_held > 0
            || self.last_poll.is_some_and(|last| {
                // A poll stamped after `now` (a clock set backwards) counts as fresh.
                now.duration_since(last).unwrap_or_default() <= POLL_LIVENESS
            })
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    fn scope() -> Scope {
        Scope {
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
        }
    }

    fn message(id: &str) -> MdsMessage {
        MdsMessage {
            created: UNIX_EPOCH,
            message_id: id.to_owned(),
            payload: "{}".to_owned(),
            topic: "aws.ssm.sendCommand".to_owned(),
        }
    }

    #[test]
    fn polling_lasts_while_held_and_for_the_liveness_window_after() {
        let mut r = Registry::new(Duration::from_secs(5));
        let t0 = UNIX_EPOCH + Duration::from_secs(1000);
        assert!(!r.is_polling(&scope(), "i-01234567", t0));
        r.poll_started(&scope(), "i-01234567", t0);
        assert!(r.is_polling(&scope(), "i-01234567", t0 + POLL_LIVENESS * 10));
        r.poll_ended(&scope(), "i-01234567", t0);
        assert!(r.is_polling(&scope(), "i-01234567", t0 + POLL_LIVENESS));
        assert!(!r.is_polling(
            &scope(),
            "i-01234567",
            t0 + POLL_LIVENESS + Duration::from_secs(1)
        ));
        assert!(r.polling_in(&scope(), t0)("i-01234567"));
        assert!(!r.polling_in(&scope(), t0)("i-76543210"));
        assert!(
            r.pollers_in(&scope(), t0)
                .eq([("i-01234567", true)].into_iter())
        );
    }

    #[test]
    fn handed_out_messages_hide_until_the_visibility_timeout() {
        let mut r = Registry::new(Duration::from_secs(5));
        let t0 = UNIX_EPOCH + Duration::from_secs(1000);
        let ten = Duration::from_secs(10);
        r.enqueue(&scope(), "i-01234567", message("a"), t0);
        r.enqueue(&scope(), "i-01234567", message("a"), t0);
        assert_eq!(
            r.take_visible(&scope(), "i-01234567", t0, ten).len(),
            1,
            "a requeue replaces"
        );
        assert!(r.take_visible(&scope(), "i-01234567", t0, ten).is_empty());
        assert_eq!(
            r.take_visible(&scope(), "i-01234567", t0 + ten, ten).len(),
            1
        );
        assert!(r.remove(&scope(), "i-01234567", "a"));
        assert!(!r.remove(&scope(), "i-01234567", "a"));
        assert!(
            r.take_visible(&scope(), "i-01234567", t0 + ten * 5, ten)
                .is_empty()
        );
    }
}
