//! The session service (MGS, spec §1–§7, §9.1): sessions, their tokens and status, the
//! data-channel endpoints and the relay between a session's two ends.
//!
//! - StartSession (`api/ops/start_session.rs`) creates a [`Session`] (`Connecting`) with a
//!   client token and sends `interactive_shell` to the agent; ResumeSession issues another
//!   client token; TerminateSession and `agent_task_complete` end it ([`State::end_session`]).
//! - `channel`: `POST /v1/data-channel/{id}` (CreateDataChannel, the agent's token) and the
//!   websocket both ends dial on the same path; `relay`: what happens to their frames.
//! - `expiry`: the preferences `idleSessionTimeout` and `maxSessionDuration` (each session
//!   keeps the [`Preferences`] it started with), the sweeper that ends sessions past them.
//! - `audit`: a session's audit record and where its transcript is served (`OutputUrl`);
//!   `admin`: the `/_emulator` routes for them and for the clock.
//! - Tokens are single-use: each StartSession/ResumeSession token admits one client
//!   connection, each CreateDataChannel token one agent connection. A newer connection of an
//!   end replaces the older one.
//!
//! Status: `Connecting` at start; `Connected` when the agent reports `agent_session_state`
//! Connected; `Terminating` when it reports Terminating; `Disconnected` when either end's
//! socket goes away without the session ending (until both ends are attached again: the
//! client by ResumeSession, the agent by re-dialling its data channel); `Terminated`
//! after TerminateSession, a successful `agent_task_complete` or expiry; `Failed` after a
//! failed `agent_task_complete`. [`EndReason`] records which.

mod admin;
mod audit;
mod channel;
mod expiry;
mod relay;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use ssm_protocol::payload::{self, AgentTaskComplete, ChannelClosed, ResultStatus, SessionState};
use ssm_protocol::{Message, MessageType};

use crate::documents::preferences::Preferences;
use crate::model::{Emulator, Scope, State};

pub use admin::MAX_CLOCK_ADVANCE_SECONDS;
pub(crate) use audit::OutputUrls;
pub(crate) use expiry::Activity;
pub use expiry::{EXPIRY_TICK, IDLE_TIMEOUT_OUTPUT, MAX_DURATION_OUTPUT};
pub(crate) use relay::Relay;
pub use relay::{
    ACK_HOLD, Direction, End, Opcode, PassThrough, RELAY_QUEUE_FRAMES, RelayEffect, RelayHook,
    RelayStats, RelayedFrame, TRANSCRIPT_LIMIT,
};

/// Unused client (or agent) tokens kept per session; older ones stop working.
const TOKENS_PER_END: usize = 8;

/// The session service's routes (data channel, transcript, `/_emulator` audit and clock);
/// starts the expiry sweeper.
pub(crate) fn router(emu: Emulator) -> axum::Router {
    expiry::ensure_sweeper(&emu);
    channel::router(emu.clone()).merge(admin::router(emu))
}

/// A session's status, as DescribeSessions shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    /// Both ends are there and the agent reported Connected.
    Connected,
    /// Started; the agent has not reported yet.
    Connecting,
    /// The client went away without terminating; ResumeSession brings it back.
    Disconnected,
    /// Ended.
    Terminated,
    /// The agent reported that the session is ending.
    Terminating,
    /// The agent reported a failure.
    Failed,
}

impl SessionStatus {
    /// The API string.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Connected => "Connected",
            SessionStatus::Connecting => "Connecting",
            SessionStatus::Disconnected => "Disconnected",
            SessionStatus::Terminated => "Terminated",
            SessionStatus::Terminating => "Terminating",
            SessionStatus::Failed => "Failed",
        }
    }

    /// Ended for good (DescribeSessions `History`).
    pub fn is_final(self) -> bool {
        matches!(self, SessionStatus::Terminated | SessionStatus::Failed)
    }
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The agent reported `agent_task_complete` with success (the shell exited, or the agent
    /// finished after TerminateSession came to it another way).
    AgentTaskComplete,
    /// The agent reported `agent_task_complete` with a failure.
    AgentTaskFailed,
    /// TerminateSession.
    TerminateSession,
    /// No data for `idleSessionTimeout`.
    IdleSessionTimeout,
    /// `maxSessionDuration` after the start.
    MaxSessionDuration,
}

impl EndReason {
    /// The name in the audit record.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::AgentTaskComplete => "AgentTaskComplete",
            EndReason::AgentTaskFailed => "AgentTaskFailed",
            EndReason::TerminateSession => "TerminateSession",
            EndReason::IdleSessionTimeout => "IdleSessionTimeout",
            EndReason::MaxSessionDuration => "MaxSessionDuration",
        }
    }

    /// The status it leaves the session in.
    fn status(self) -> SessionStatus {
        match self {
            EndReason::AgentTaskFailed => SessionStatus::Failed,
            _ => SessionStatus::Terminated,
        }
    }

    /// Whether the agent must be told (`channel_closed` on its control channel): not when it
    /// is the one that reported the end.
    fn tells_agent(self) -> bool {
        !matches!(
            self,
            EndReason::AgentTaskComplete | EndReason::AgentTaskFailed
        )
    }
}

/// One session.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) id: String,
    pub(crate) scope: Scope,
    pub(crate) target: String,
    pub(crate) document_name: String,
    /// The caller's ARN (`SessionOwner`, DescribeSessions `Owner`).
    pub(crate) owner: String,
    pub(crate) reason: Option<String>,
    pub(crate) start: SystemTime,
    pub(crate) end: Option<SystemTime>,
    pub(crate) status: SessionStatus,
    /// The StreamUrl StartSession returned (ResumeSession returns it again).
    pub(crate) stream_url: String,
    /// Creation order, for newest-first listing.
    pub(crate) serial: u64,
    /// Whether the agent reported Connected on its data channel.
    agent_reported: bool,
    client_tokens: VecDeque<String>,
    agent_tokens: VecDeque<String>,
    pub(crate) relay: Arc<Relay>,
    /// The Session Manager preferences it started with (later changes do not reach it).
    pub(crate) preferences: Preferences,
    /// When it last carried data; the data-channel readers update it.
    pub(crate) activity: Arc<Activity>,
    /// Why it ended, once it has (none for sessions ended otherwise, e.g. by a reset).
    pub(crate) end_reason: Option<EndReason>,
}

impl Session {
    fn tokens(&mut self, end: End) -> &mut VecDeque<String> {
        match end {
            End::Client => &mut self.client_tokens,
            End::Agent => &mut self.agent_tokens,
        }
    }

    /// Records a fresh token for `end`.
    pub(crate) fn issue(&mut self, end: End, token: String) {
        let tokens = self.tokens(end);
        tokens.push_back(token);
        if tokens.len() > TOKENS_PER_END {
            tokens.pop_front();
        }
    }

    /// Uses up `token` of `end`; whether it was valid.
    fn take_token(&mut self, end: End, token: &str) -> bool {
        let tokens = self.tokens(end);
        match tokens.iter().position(|t| t == token) {
            Some(i) => {
                tokens.remove(i);
                true
            }
            None => false,
        }
    }
}

/// Every session of the emulator, across scopes (the data channel names only the session).
#[derive(Default)]
pub(crate) struct Registry {
    sessions: HashMap<String, Session>,
    next_serial: u64,
    /// The hook new sessions start with (none: [`PassThrough`]).
    default_hook: Option<Arc<dyn RelayHook>>,
    /// Whether the expiry sweeper runs (see `expiry::ensure_sweeper`).
    sweeper_started: bool,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

/// What StartSession records.
pub(crate) struct NewSession {
    pub(crate) id: String,
    pub(crate) scope: Scope,
    pub(crate) target: String,
    pub(crate) document_name: String,
    pub(crate) owner: String,
    pub(crate) reason: Option<String>,
    pub(crate) start: SystemTime,
    pub(crate) stream_url: String,
    pub(crate) preferences: Preferences,
}

impl Registry {
    /// Adds a session in `Connecting`.
    pub(crate) fn insert(&mut self, new: NewSession) -> &mut Session {
        self.next_serial += 1;
        let hook = self
            .default_hook
            .clone()
            .unwrap_or_else(|| Arc::new(PassThrough));
        let session = Session {
            relay: Arc::new(Relay::new(new.id.clone(), hook)),
            id: new.id.clone(),
            scope: new.scope,
            target: new.target,
            document_name: new.document_name,
            owner: new.owner,
            reason: new.reason,
            start: new.start,
            end: None,
            status: SessionStatus::Connecting,
            stream_url: new.stream_url,
            serial: self.next_serial,
            agent_reported: false,
            client_tokens: VecDeque::new(),
            agent_tokens: VecDeque::new(),
            preferences: new.preferences,
            activity: Arc::new(Activity::new(new.start)),
            end_reason: None,
        };
        self.sessions.entry(new.id).or_insert(session)
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Session> {
        self.sessions.get(id)
    }

    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut Session> {
        self.sessions.get_mut(id)
    }

    /// Every session, in no particular order.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values()
    }

    /// The sessions of `scope`, newest first.
    pub(crate) fn in_scope(&self, scope: &Scope) -> Vec<&Session> {
        let mut all: Vec<&Session> = self
            .sessions
            .values()
            .filter(|s| &s.scope == scope)
            .collect();
        all.sort_by_key(|s| std::cmp::Reverse(s.serial));
        all
    }
}

/// A token from the seeded RNG.
pub(crate) fn new_token(state: &mut State) -> String {
    format!("{}{}", state.uuid().simple(), state.uuid().simple())
}

impl State {
    /// Ends session `id` with `status` (Terminated or Failed): sends `channel_closed` to the
    /// client (carrying `output`), and to the agent on the control channel when `tell_agent`
    /// (TerminateSession), then closes both data sockets. Does nothing to a session that
    /// already ended. Returns whether the session exists.
    pub(crate) fn end_session(
        &mut self,
        id: &str,
        now: SystemTime,
        status: SessionStatus,
        output: &str,
        tell_agent: bool,
    ) -> bool {
        let Some(session) = self.sessions.get(id) else {
            return false;
        };
        if session.status.is_final() {
            return true;
        }
        let (scope, target, relay) = (
            session.scope.clone(),
            session.target.clone(),
            session.relay.clone(),
        );
        let message_id = self.uuid();
        let closed = ChannelClosed::new(
            message_id.to_string(),
            epoch_millis(now).to_string(),
            target.clone(),
            id.to_owned(),
            output.to_owned(),
        );
        let bytes = payload::to_json_bytes(&closed).unwrap_or_default();
        let mut frame = Message::new(MessageType::ChannelClosed, epoch_millis(now), message_id);
        frame.payload = bytes.clone();
        if tell_agent
            && self
                .send_to_agent(&scope, &target, now, MessageType::ChannelClosed, bytes)
                .is_none()
        {
            tracing::debug!(
                session_id = id,
                target,
                "TerminateSession: agent not connected"
            );
        }
        if let Some(session) = self.sessions.get_mut(id) {
            session.status = status;
            session.end = Some(now);
        }
        relay.finish(Some(frame.encode()));
        tracing::info!(session_id = id, status = status.as_str(), "session ended");
        true
    }

    /// Ends live session `id` for `reason` (see [`State::end_session`]), with `output` in the
    /// client's `channel_closed`, and records the reason. Returns whether it was live.
    pub(crate) fn end_session_for(
        &mut self,
        id: &str,
        now: SystemTime,
        reason: EndReason,
        output: &str,
    ) -> bool {
        let live = self.sessions.get(id).is_some_and(|s| !s.status.is_final());
        if live {
            self.end_session(id, now, reason.status(), output, reason.tells_agent());
            if let Some(session) = self.sessions.get_mut(id) {
                session.end_reason = Some(reason);
            }
        }
        live
    }
}

/// CreatedDate of the frames we write: epoch milliseconds, never 0.
fn epoch_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
        .max(1)
}

/// `agent_task_complete` for a session (spec §6.6, §9.1): the session ends Terminated, or
/// Failed with the agent's Output, and the client gets `channel_closed`. Not a session of
/// ours: nothing happens (the caller acks it anyway).
pub(crate) fn on_task_complete(emu: &Emulator, instance_id: &str, complete: &AgentTaskComplete) {
    let now = emu.now();
    emu.with_state(|state| {
        let ours = state
            .sessions
            .get(&complete.task_id)
            .is_some_and(|s| s.target == instance_id);
        if !ours {
            return;
        }
        let (reason, output) = match complete.final_task_status {
            ResultStatus::Failed | ResultStatus::TimedOut => {
                (EndReason::AgentTaskFailed, complete.output.as_str())
            }
            _ => (EndReason::AgentTaskComplete, ""),
        };
        state.end_session_for(&complete.task_id, now, reason, output);
    });
}

/// `agent_session_state` from the agent's data channel: consumed here, never forwarded.
pub(crate) fn on_agent_session_state(emu: &Emulator, session_id: &str, state: &SessionState) {
    emu.with_state(|s| {
        let Some(session) = s.sessions.get_mut(session_id) else {
            return;
        };
        if session.status.is_final() {
            return;
        }
        match state {
            SessionState::Connected => {
                session.agent_reported = true;
                if session.status != SessionStatus::Disconnected
                    && session.status != SessionStatus::Terminating
                {
                    session.status = SessionStatus::Connected;
                }
            }
            SessionState::Terminating => session.status = SessionStatus::Terminating,
            SessionState::Other(other) => {
                tracing::debug!(session_id, state = other, "unknown agent_session_state");
            }
        }
    });
}

/// An end attached (again): a Disconnected session is back once both ends are there.
fn on_end_attached(emu: &Emulator, session_id: &str, relay: &Relay) {
    if !(relay.is_attached(End::Client) && relay.is_attached(End::Agent)) {
        return;
    }
    emu.with_state(|s| {
        if let Some(session) = s.sessions.get_mut(session_id)
            && session.status == SessionStatus::Disconnected
        {
            session.status = if session.agent_reported {
                SessionStatus::Connected
            } else {
                SessionStatus::Connecting
            };
        }
    });
}

/// An end's socket went away without the session ending: the client's (it may ResumeSession)
/// or the agent's (a lost link: the agent re-dials its data channel, §9.1, unless it cannot
/// reach the service, as in an agent-link cut). Either way the session is Disconnected until
/// both ends are back, and the idle timeout ends it if they never are.
fn on_end_gone(emu: &Emulator, session_id: &str) {
    emu.with_state(|s| {
        if let Some(session) = s.sessions.get_mut(session_id)
            && matches!(
                session.status,
                SessionStatus::Connected | SessionStatus::Connecting
            )
        {
            session.status = SessionStatus::Disconnected;
        }
    });
}

impl Emulator {
    /// The shell output relayed so far in session `id` (see [`TRANSCRIPT_LIMIT`]).
    pub fn session_transcript(&self, id: &str) -> Option<Vec<u8>> {
        let relay = self.with_state(|s| s.sessions.get(id).map(|s| s.relay.clone()))?;
        Some(relay.transcript())
    }

    /// The relay counters of session `id`.
    pub fn session_relay_stats(&self, id: &str) -> Option<RelayStats> {
        let relay = self.with_state(|s| s.sessions.get(id).map(|s| s.relay.clone()))?;
        Some(relay.stats())
    }

    /// The status of session `id`.
    pub fn session_status(&self, id: &str) -> Option<SessionStatus> {
        self.with_state(|s| s.sessions.get(id).map(|s| s.status))
    }

    /// Why session `id` ended (`None` while it lives, or if there is no such session).
    pub fn session_end_reason(&self, id: &str) -> Option<EndReason> {
        self.with_state(|s| s.sessions.get(id).and_then(|s| s.end_reason))
    }

    /// Puts `hook` in the relay of session `id`; false if there is no such session.
    pub fn set_session_hook(&self, id: &str, hook: Arc<dyn RelayHook>) -> bool {
        match self.with_state(|s| s.sessions.get(id).map(|s| s.relay.clone())) {
            Some(relay) => {
                relay.set_hook(hook);
                true
            }
            None => false,
        }
    }

    /// The hook every session started from now on gets (`None`: [`PassThrough`]).
    pub fn set_default_session_hook(&self, hook: Option<Arc<dyn RelayHook>>) {
        self.with_state(|s| s.sessions.default_hook = hook);
    }
}
