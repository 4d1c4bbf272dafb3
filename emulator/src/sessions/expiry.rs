//! Idle and maximum-duration expiry, the Session Manager preferences `idleSessionTimeout` and
//! `maxSessionDuration` (read at StartSession, see `documents::preferences`).
//!
//! - Every session has an [`Activity`]: the emulator time of its last data. The data-channel
//!   readers record each frame before it is relayed.
//! - A sweeper task wakes every [`EXPIRY_TICK`] of real time and compares the emulator's clock
//!   with each live session's deadlines; `POST /_emulator/clock` sweeps at once after moving the
//!   clock. All time is the emulator's [`Clock`](crate::clock::Clock), so tests move a
//!   `ManualClock` and call [`Emulator::sweep_sessions`] instead of waiting.
//! - A session past `start + maxSessionDuration` ends with [`MAX_DURATION_OUTPUT`]; one whose
//!   last data is `idleSessionTimeout` old ends with [`IDLE_TIMEOUT_OUTPUT`]. Either way it ends
//!   like TerminateSession: the agent gets `channel_closed` on its control channel, the client
//!   gets `channel_closed` carrying that Output (the plugin prints `SessionId: <id> : <Output>`),
//!   both data sockets close and the status is Terminated. This holds in every live status:
//!   a Disconnected session (client gone without TerminateSession) has no data and ends after
//!   the idle timeout; its client, if it comes back with an unused token, finds the
//!   `channel_closed` waiting.
//!
//! What counts as data (UNCONFIRMED: the real service's rule is not documented): the client's
//! `input_stream_data` (keystrokes, terminal size, flags, handshake replies) and the agent's
//! `output_stream_data`, each sequence number once per direction. Acknowledgements,
//! `agent_session_state`, websocket pings and resent frames are not: a peer resending what the
//! other end never acknowledged (a client gone away) must not keep the session alive.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use ssm_protocol::MessageType;
use ssm_protocol::message::Header;

use super::{End, EndReason, Session};
use crate::model::Emulator;

/// How often, in real time, the sweeper compares the clock with the sessions' deadlines. A
/// second is well under the one-minute resolution of the preferences, and a sweep is a walk
/// over the sessions under the state lock.
pub const EXPIRY_TICK: Duration = Duration::from_secs(1);

/// The `channel_closed` Output of a session that was idle for `idleSessionTimeout`: the real
/// service's text (aws/amazon-ssm-agent#261 quotes the plugin printing it).
pub const IDLE_TIMEOUT_OUTPUT: &str =
    "Your session timed out due to inactivity and has been terminated.";

/// The `channel_closed` Output of a session that reached `maxSessionDuration`. UNCONFIRMED: no
/// recording or public report shows the real service's wording; this one follows the idle text.
pub const MAX_DURATION_OUTPUT: &str =
    "Your session has reached its maximum session duration and has been terminated.";

/// When a session last carried data.
#[derive(Debug)]
pub(crate) struct Activity {
    /// A std mutex held for one update: data-channel readers take it once per frame.
    inner: Mutex<ActivityInner>,
}

#[derive(Debug)]
struct ActivityInner {
    /// Emulator time of the last data (the start until there is some).
    last: SystemTime,
    /// The next client `input_stream_data` sequence number not seen yet.
    next_input: i64,
    /// The next agent `output_stream_data` sequence number not seen yet.
    next_output: i64,
}

impl Activity {
    /// No data yet: the session counts as active from its start.
    pub(crate) fn new(start: SystemTime) -> Activity {
        Activity {
            inner: Mutex::new(ActivityInner {
                last: start,
                next_input: 0,
                next_output: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ActivityInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Emulator time of the last data.
    pub(crate) fn last(&self) -> SystemTime {
        self.lock().last
    }

    /// Records `frame`, read from `from`, if it is new data; `now` is asked only then.
    pub(crate) fn record(&self, from: End, frame: &[u8], now: impl FnOnce() -> SystemTime) {
        let Ok(header) = Header::parse(frame) else {
            return;
        };
        let mut inner = self.lock();
        let next = match (from, header.message_type) {
            (End::Client, MessageType::InputStreamData) => &mut inner.next_input,
            (End::Agent, MessageType::OutputStreamData) => &mut inner.next_output,
            _ => return,
        };
        if header.sequence_number < *next {
            return;
        }
        *next = header.sequence_number.saturating_add(1);
        let now = now();
        if now > inner.last {
            inner.last = now;
        }
    }
}

impl Session {
    /// Why this live session must end at `now`, if it must.
    fn due(&self, now: SystemTime) -> Option<EndReason> {
        if let Some(max) = self.preferences.max_session_duration()
            && now >= self.start + max
        {
            return Some(EndReason::MaxSessionDuration);
        }
        let idle_since = self.activity.last();
        (now >= idle_since + self.preferences.idle_session_timeout())
            .then_some(EndReason::IdleSessionTimeout)
    }
}

impl Emulator {
    /// Ends every live session past its idle or maximum duration on the emulator's clock;
    /// returns their ids. The sweeper calls it every [`EXPIRY_TICK`]; tests call it after
    /// moving a `ManualClock`.
    pub fn sweep_sessions(&self) -> Vec<String> {
        let now = self.now();
        self.with_state(|state| {
            let due: Vec<(String, EndReason)> = state
                .sessions
                .all()
                .filter(|s| !s.status.is_final())
                .filter_map(|s| s.due(now).map(|reason| (s.id.clone(), reason)))
                .collect();
            for (id, reason) in &due {
                let output = match reason {
                    EndReason::MaxSessionDuration => MAX_DURATION_OUTPUT,
                    _ => IDLE_TIMEOUT_OUTPUT,
                };
                tracing::info!(session_id = id, reason = reason.as_str(), "session expired");
                state.end_session_for(id, now, *reason, output);
            }
            due.into_iter().map(|(id, _)| id).collect()
        })
    }
}

/// Starts the sweeper of `emu` once, if called inside a tokio runtime.
pub(crate) fn ensure_sweeper(emu: &Emulator) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let start = emu.with_state(|s| !std::mem::replace(&mut s.sessions.sweeper_started, true));
    if start {
        let emu = emu.clone();
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(EXPIRY_TICK).await;
                emu.sweep_sessions();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssm_protocol::Message;
    use std::time::UNIX_EPOCH;
    use uuid::Uuid;

    fn frame(message_type: MessageType, seq: i64) -> Vec<u8> {
        let mut m = Message::new(message_type, 1, Uuid::from_u128(seq as u128 + 7));
        m.sequence_number = seq;
        m.payload = b"x".to_vec();
        m.encode()
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn new_data_counts_and_acks_resends_and_wrong_directions_do_not() {
        let activity = Activity::new(at(100));
        activity.record(End::Client, &frame(MessageType::Acknowledge, 0), || at(101));
        activity.record(End::Agent, &frame(MessageType::InputStreamData, 0), || {
            at(102)
        });
        activity.record(
            End::Client,
            &frame(MessageType::OutputStreamData, 0),
            || at(103),
        );
        activity.record(End::Agent, b"not a frame", || at(104));
        assert_eq!(activity.last(), at(100));

        activity.record(End::Client, &frame(MessageType::InputStreamData, 0), || {
            at(110)
        });
        assert_eq!(activity.last(), at(110));
        activity.record(End::Agent, &frame(MessageType::OutputStreamData, 0), || {
            at(120)
        });
        assert_eq!(activity.last(), at(120));
        // The agent resending output the client never acknowledged is not activity.
        activity.record(End::Agent, &frame(MessageType::OutputStreamData, 0), || {
            at(130)
        });
        activity.record(End::Client, &frame(MessageType::InputStreamData, 0), || {
            at(130)
        });
        assert_eq!(activity.last(), at(120));
        activity.record(End::Agent, &frame(MessageType::OutputStreamData, 1), || {
            at(140)
        });
        assert_eq!(activity.last(), at(140));
    }
}
