//! Who is connected: the control-channel tokens issued by CreateControlChannel, the one live
//! websocket per instance, and the `agent_job_reply` MessageIds already applied.
//!
//! It lives inside the emulator's [`State`](crate::model::State), so that Run Command can pick
//! an instance's connection and queue a frame for it in the same critical section in which it
//! changes an invocation.

use std::collections::{HashMap, HashSet, VecDeque};

use tokio::sync::mpsc;
use uuid::Uuid;

use crate::model::Scope;

/// Tokens kept per instance: the agent uses only the newest, but a reconnect can race a
/// second CreateControlChannel, so a few older ones stay valid.
const TOKENS_PER_INSTANCE: usize = 8;

/// Reply MessageIds remembered per instance for deduplication. The agent resends only its
/// unacknowledged replies (at most a few per running command), so a short memory suffices.
const SEEN_REPLIES_PER_INSTANCE: usize = 4096;

/// The frames queued for one websocket, already encoded.
pub(crate) type Outbox = mpsc::UnboundedSender<Vec<u8>>;

/// Control-channel bookkeeping for the whole emulator.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    /// Token → the scope and instance it was issued for.
    tokens: HashMap<String, (Scope, String)>,
    /// Instance → its tokens, oldest first, to bound `tokens`.
    tokens_by_instance: HashMap<(Scope, String), VecDeque<String>>,
    /// Scope → instance → its live connection. A newer connection replaces an older one.
    /// Nested so that the dispatcher's per-node lookups borrow instead of building a key.
    connections: HashMap<Scope, HashMap<String, Connection>>,
    /// Numbers connections, so that a replaced connection's close does not unregister its
    /// successor.
    next_connection: u64,
    /// Instance → MessageIds of `agent_job_reply` messages already applied, oldest first.
    seen_replies: HashMap<(Scope, String), (HashSet<Uuid>, VecDeque<Uuid>)>,
    /// Whether the background dispatcher task runs (it is started once, by the first `app`).
    pub(crate) dispatcher_started: bool,
}

#[derive(Debug)]
struct Connection {
    id: u64,
    outbox: Outbox,
}

impl Registry {
    /// Records a token issued for `instance_id` in `scope`.
    pub(crate) fn issue(&mut self, scope: &Scope, instance_id: &str, token: String) {
        let key = (scope.clone(), instance_id.to_owned());
        let list = self.tokens_by_instance.entry(key.clone()).or_default();
        list.push_back(token.clone());
        if list.len() > TOKENS_PER_INSTANCE
            && let Some(old) = list.pop_front()
        {
            self.tokens.remove(&old);
        }
        self.tokens.insert(token, key);
    }

    /// The scope a token was issued in, if it was issued for `instance_id`.
    pub(crate) fn check_token(&self, instance_id: &str, token: &str) -> Option<Scope> {
        match self.tokens.get(token) {
            Some((scope, id)) if id == instance_id => Some(scope.clone()),
            _ => None,
        }
    }

    /// Makes `outbox` the connection of `instance_id`, replacing (and so closing) any older
    /// one. Returns the new connection's number.
    pub(crate) fn connect(&mut self, scope: &Scope, instance_id: &str, outbox: Outbox) -> u64 {
        self.next_connection += 1;
        let id = self.next_connection;
        self.connections
            .entry(scope.clone())
            .or_default()
            .insert(instance_id.to_owned(), Connection { id, outbox });
        id
    }

    /// Forgets connection `id` of `instance_id` if it is still the current one. Returns
    /// whether it was (a replaced connection's close changes nothing).
    pub(crate) fn disconnect(&mut self, scope: &Scope, instance_id: &str, id: u64) -> bool {
        match self.connections.get_mut(scope) {
            Some(live) if live.get(instance_id).is_some_and(|c| c.id == id) => {
                live.remove(instance_id);
                true
            }
            _ => false,
        }
    }

    /// The live connection of `instance_id`, if any (open or not).
    fn connection(&self, scope: &Scope, instance_id: &str) -> Option<&Connection> {
        self.connections.get(scope)?.get(instance_id)
    }

    /// Whether `instance_id` has a live control channel.
    pub(crate) fn is_connected(&self, scope: &Scope, instance_id: &str) -> bool {
        self.connection(scope, instance_id)
            .is_some_and(|c| !c.outbox.is_closed())
    }

    /// Whether an instance of `scope` has a live control channel, as [`Self::is_connected`]
    /// answers, with the scope looked up once for many questions.
    pub(crate) fn connected_in(&self, scope: &Scope) -> impl Fn(&str) -> bool + '_ {
        let live = self.connections.get(scope);
        move |instance_id| {
            live.and_then(|live| live.get(instance_id))
                .is_some_and(|c| !c.outbox.is_closed())
        }
    }

    /// Queues an encoded frame for `instance_id`. Returns whether it had a live connection.
    pub(crate) fn send(&self, scope: &Scope, instance_id: &str, frame: Vec<u8>) -> bool {
        self.connection(scope, instance_id)
            .is_some_and(|c| c.outbox.send(frame).is_ok())
    }

    /// Records reply `message_id` from `instance_id`. Returns `false` if it was seen before.
    pub(crate) fn first_sight_of_reply(
        &mut self,
        scope: &Scope,
        instance_id: &str,
        message_id: Uuid,
    ) -> bool {
        let (set, order) = self
            .seen_replies
            .entry((scope.clone(), instance_id.to_owned()))
            .or_default();
        if !set.insert(message_id) {
            return false;
        }
        order.push_back(message_id);
        if order.len() > SEEN_REPLIES_PER_INSTANCE
            && let Some(old) = order.pop_front()
        {
            set.remove(&old);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope {
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
        }
    }

    #[test]
    fn tokens_are_bound_to_their_instance_and_bounded() {
        let mut r = Registry::default();
        for i in 0..=TOKENS_PER_INSTANCE {
            r.issue(&scope(), "i-01234567", format!("t{i}"));
        }
        assert_eq!(r.check_token("i-01234567", "t0"), None, "oldest dropped");
        assert_eq!(r.check_token("i-01234567", "t1"), Some(scope()));
        assert_eq!(r.check_token("i-76543210", "t1"), None, "other instance");
        assert_eq!(r.check_token("i-01234567", "nope"), None);
    }

    #[test]
    fn a_replaced_connection_does_not_unregister_its_successor() {
        let mut r = Registry::default();
        let (tx1, rx1) = mpsc::unbounded_channel();
        let (tx2, mut rx2) = mpsc::unbounded_channel();
        let first = r.connect(&scope(), "i-01234567", tx1);
        let second = r.connect(&scope(), "i-01234567", tx2);
        drop(rx1);
        assert!(!r.disconnect(&scope(), "i-01234567", first));
        assert!(r.is_connected(&scope(), "i-01234567"));
        assert!(r.send(&scope(), "i-01234567", vec![1]));
        assert_eq!(rx2.try_recv().unwrap(), vec![1]);
        assert!(r.disconnect(&scope(), "i-01234567", second));
        assert!(!r.send(&scope(), "i-01234567", vec![2]));
    }

    #[test]
    fn replies_are_deduplicated_by_message_id() {
        let mut r = Registry::default();
        let id = Uuid::from_u128(7);
        assert!(r.first_sight_of_reply(&scope(), "i-01234567", id));
        assert!(!r.first_sight_of_reply(&scope(), "i-01234567", id));
        assert!(r.first_sight_of_reply(&scope(), "i-76543210", id));
    }
}
