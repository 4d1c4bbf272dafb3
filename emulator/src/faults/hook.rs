//! The relay hook every session runs, and the operations on an [`Emulator`] that change the
//! rules: adding one installs the hook on live sessions and fires one-shot actions that are
//! due at once (or starts their timer); removing one sends on what it kept back.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use tokio::time::Instant;

use super::engine::{FramePlace, parse_id};
use super::rules::{FaultRule, RelayRule};
use super::{Faults, engine};
use crate::model::{Emulator, State, WeakEmulator};
use crate::sessions::{Direction, Relay, RelayEffect, RelayHook, RelayedFrame};

/// The hook of every session's relay: the relay rules of the emulator's [`Faults`].
#[derive(Debug)]
pub(crate) struct FaultHook {
    faults: Faults,
    /// Weak: the emulator holds its sessions, which hold this hook.
    emu: WeakEmulator,
}

impl FaultHook {
    pub(crate) fn new(emu: &Emulator) -> FaultHook {
        FaultHook {
            faults: emu.faults().clone(),
            emu: emu.downgrade(),
        }
    }
}

impl RelayHook for FaultHook {
    fn relay(
        &self,
        session_id: &str,
        direction: Direction,
        frame: RelayedFrame,
        out: &mut Vec<RelayedFrame>,
        effects: &mut Vec<RelayEffect>,
    ) {
        if !self.faults.any_relay_rules() {
            out.push(frame);
            return;
        }
        let Some(emu) = self.emu.upgrade() else {
            out.push(frame);
            return;
        };
        // The emulator lock is taken before (never while) the engine's.
        let instance_id = if self.faults.lock().needs_targets() {
            emu.with_state(|s| s.sessions.get(session_id).map(|s| s.target.clone()))
        } else {
            None
        };
        let place = FramePlace {
            session_id,
            instance_id: instance_id.as_deref(),
            direction,
        };
        let wall_ms = wall_ms(&emu);
        self.faults
            .lock()
            .on_frame(place, frame, Instant::now(), wall_ms, out, effects);
    }
}

/// Why a rule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RuleError(pub String);

impl Emulator {
    /// Adds a fault rule; returns its id (`f-1`, …) or what is wrong with it. A one-shot relay
    /// action without a frame or byte trigger fires now in every matching live session, or
    /// `afterMs` from now (which needs a tokio runtime).
    pub fn add_fault(&self, rule: FaultRule) -> Result<String, RuleError> {
        if let Some(message) = rule.check(crate::api::is_operation) {
            return Err(RuleError(message));
        }
        let timer = match &rule {
            FaultRule::Relay(r) if is_timed(r) => {
                Some(Duration::from_millis(r.after_ms.unwrap_or(0)))
            }
            _ => None,
        };
        if timer.is_some_and(|t| !t.is_zero()) && tokio::runtime::Handle::try_current().is_err() {
            return Err(RuleError(
                "afterMs needs the emulator's tokio runtime".to_owned(),
            ));
        }
        let link = matches!(rule, FaultRule::AgentLink(_) | FaultRule::SessionService(_))
            .then(|| rule.clone());
        let id = self.faults().with_engine(|e| e.add(rule));
        tracing::info!(id, "fault rule added");
        if let Some(link) = link {
            self.on_link_rule_added(&id, &link);
            return Ok(id);
        }
        self.install_hooks();
        match timer {
            Some(delay) if delay.is_zero() => fire(self, &id),
            Some(delay) => {
                let (emu, id) = (self.downgrade(), id.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    if let Some(emu) = emu.upgrade() {
                        fire(&emu, &id);
                    }
                });
            }
            None => {}
        }
        Ok(id)
    }

    /// Removes fault rule `id`; false if there is none. Frames it kept back are sent now.
    pub fn remove_fault(&self, id: &str) -> bool {
        match self.faults().with_engine(|e| e.remove(id)) {
            Some(released) => {
                tracing::info!(id, "fault rule removed");
                self.send_released(released);
                true
            }
            None => false,
        }
    }

    /// Removes every fault rule. Frames they kept back are sent now.
    pub fn clear_faults(&self) {
        let released = self.faults().with_engine(engine::Engine::clear);
        tracing::info!("fault rules cleared");
        self.send_released(released);
    }

    /// Reseeds both RNGs, the one of ids and tokens and the one of faults, with `seed`.
    pub fn reseed(&self, seed: u64) {
        self.with_state(|s| s.reseed(seed));
        self.faults().reseed(seed);
        tracing::info!(seed, "reseeded");
    }

    /// Clears the fault rules and their totals, ends every live session (closing its sockets
    /// and telling its agent), and forgets all sessions, commands and the account's own
    /// documents. Instances, their agents' connections and the seed stay.
    pub fn reset(&self) {
        self.faults().with_engine(engine::Engine::reset);
        let now = self.now();
        self.with_state(|state| {
            for id in live_sessions(state, |_| true) {
                state.end_session(
                    &id.0,
                    now,
                    crate::sessions::SessionStatus::Terminated,
                    "",
                    true,
                );
            }
            state.sessions = crate::sessions::Registry::default();
            for scope in state.scopes() {
                let region = state.region_mut(&scope);
                region.commands = Default::default();
                region.documents = Default::default();
            }
        });
        self.set_default_session_hook(Some(Arc::new(FaultHook::new(self))));
        tracing::info!("reset: faults, sessions, commands and documents cleared");
    }

    /// Puts the fault hook on every live session (new ones get it as their default).
    fn install_hooks(&self) {
        let relays: Vec<Arc<Relay>> = self.with_state(|state| {
            live_sessions(state, |_| true)
                .into_iter()
                .map(|(_, relay)| relay)
                .collect()
        });
        for relay in relays {
            relay.set_hook(Arc::new(FaultHook::new(self)));
        }
    }

    fn send_released(&self, released: engine::Released) {
        for (session_id, end, bytes) in released {
            let relay = self.with_state(|s| s.sessions.get(&session_id).map(|s| s.relay.clone()));
            if let Some(relay) = relay {
                relay.apply(vec![RelayEffect::Inject { end, bytes }]);
            }
        }
    }
}

/// Whether a relay rule is a one-shot action fired by time (or at once) rather than by frames.
fn is_timed(rule: &RelayRule) -> bool {
    rule.action.is_one_shot() && rule.after_frames.is_none() && rule.after_bytes.is_none()
}

/// Fires the one-shot relay rule `id` in every matching live session.
fn fire(emu: &Emulator, id: &str) {
    let Some(FaultRule::Relay(rule)) = emu.faults().lock().rule(id).cloned() else {
        tracing::debug!(id, "timed fault: rule gone before it fired");
        return;
    };
    let relays = emu.with_state(|state| {
        live_sessions(state, |s| engine::watches_session(&rule, &s.id, &s.target))
    });
    let wall_ms = wall_ms(emu);
    let count = relays.len() as u64;
    for (session_id, relay) in relays {
        let effect = emu.faults().lock().one_shot_effect(&rule.action, wall_ms);
        tracing::info!(id, session_id, action = rule.action.name(), "fault fired");
        relay.apply(vec![effect]);
    }
    if let Some(n) = parse_id(id) {
        emu.faults().lock().count_fired(n, count);
    }
}

/// The ids and relays of the sessions not ended that `keep` accepts.
fn live_sessions(
    state: &State,
    keep: impl Fn(&crate::sessions::Session) -> bool,
) -> Vec<(String, Arc<Relay>)> {
    state
        .scopes()
        .iter()
        .flat_map(|scope| state.sessions.in_scope(scope))
        .filter(|s| !s.status.is_final() && keep(s))
        .map(|s| (s.id.clone(), s.relay.clone()))
        .collect()
}

/// The emulator's time as epoch milliseconds (CreatedDate of frames the service writes).
fn wall_ms(emu: &Emulator) -> u64 {
    emu.now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_millis() as u64)
}
