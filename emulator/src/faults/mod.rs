//! Fault injection (issue #5): faults on the data-channel relay and on the SSM API, set and
//! cleared through the admin API under `/_emulator/` or `ssm-emulator fault …`. Off by
//! default: with no rule in force nothing is injected and the relay hook passes every frame
//! on without taking a lock.
//!
//! - [`rules`]: the rules as JSON (also the shape of scenario files);
//! - [`engine`]: the rules in force, their counters, and every decision, with one seeded RNG;
//! - `hook`: the [`RelayHook`](crate::sessions::RelayHook) every session's relay runs, and the
//!   one-shot actions fired at once or by a timer;
//! - `api`: the check every SSM API request passes before its operation runs;
//! - `admin`: the `/_emulator/faults`, `/_emulator/seed` and `/_emulator/reset` routes;
//! - [`cli`]: the `ssm-emulator fault|seed|reset` subcommands, clients of the admin API.
//! - [`link`]: `agentLink` and `sessionService` rules: abortable connections and the gate in
//!   front of the agent-facing endpoints; [`proxy`]: the built-in CONNECT proxy for agents;
//!   `agents`: the proxy and embedded-fleet admin routes; [`agents_cli`]: their subcommands.
//!
//! Determinism: every random decision (drop, duplicate, reorder, jitter, corrupt, API error
//! rates, the MessageIds of injected frames) comes from the one RNG of [`Faults`], seeded from
//! `--seed` and reseeded by `POST /_emulator/seed`. It is separate from the RNG of ids and
//! tokens, so API traffic does not shift fault decisions: the same seed, rules and frames in
//! the same order give the same decisions.
//!
//! Lock order: the emulator state lock, then a relay's lock, then the fault engine's lock.
//! Code holding the engine lock takes no other.

pub(crate) mod admin;
mod agents;
pub mod agents_cli;
pub(crate) mod api;
pub mod cli;
pub mod engine;
mod hook;
pub mod link;
pub mod proxy;
pub mod rules;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

pub use engine::{FaultsReport, RuleReport};
pub(crate) use hook::FaultHook;
pub use rules::FaultRule;

use engine::Engine;

/// The faults of one emulator: a cheap-clone handle on the rules, their state and the RNG.
#[derive(Debug, Clone)]
pub struct Faults {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// Whether any relay rule is in force: read on every relayed frame without the lock.
    relay_rules: AtomicBool,
    /// Whether any api rule is in force: read on every API request without the lock.
    api_rules: AtomicBool,
    /// Whether any agentLink or sessionService rule is in force: read on every agent request.
    link_rules: AtomicBool,
    /// The connections of the plain listener, for link rules to abort.
    links: link::Links,
    /// The built-in CONNECT proxy for agents, if `--agent-proxy-listen` started one.
    proxy: Mutex<Option<Arc<proxy::AgentProxy>>>,
    /// The embedded fleet's agents, for `/_emulator/agents/…` (none without a fleet).
    fleet: Mutex<Option<ssm_agent_sim::FleetHandle>>,
    /// A std mutex: held for one decision, never across an `.await`.
    engine: Mutex<Engine>,
}

impl Faults {
    /// No rules; the RNG seeded with `seed`.
    pub fn new(seed: u64) -> Faults {
        Faults {
            shared: Arc::new(Shared {
                relay_rules: AtomicBool::new(false),
                api_rules: AtomicBool::new(false),
                link_rules: AtomicBool::new(false),
                links: link::Links::default(),
                proxy: Mutex::new(None),
                fleet: Mutex::new(None),
                engine: Mutex::new(Engine::new(seed)),
            }),
        }
    }

    /// Runs `f` on the engine and refreshes the lock-free flags after it.
    fn with_engine<R>(&self, f: impl FnOnce(&mut Engine) -> R) -> R {
        let mut engine = self.lock();
        let result = f(&mut engine);
        self.shared
            .relay_rules
            .store(engine.has_relay_rules(), Ordering::Release);
        self.shared
            .api_rules
            .store(engine.has_api_rules(), Ordering::Release);
        self.shared
            .link_rules
            .store(engine.has_link_rules(), Ordering::Release);
        result
    }

    fn lock(&self) -> MutexGuard<'_, Engine> {
        self.shared
            .engine
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn any_relay_rules(&self) -> bool {
        self.shared.relay_rules.load(Ordering::Acquire)
    }

    fn any_api_rules(&self) -> bool {
        self.shared.api_rules.load(Ordering::Acquire)
    }

    /// Whether the link rules refuse a request of `instance_id`'s agent to `service`.
    fn refuses_agent(&self, service: link::AgentService, instance_id: &str) -> bool {
        self.shared.link_rules.load(Ordering::Acquire)
            && self.lock().refuses_agent(service, instance_id)
    }

    /// Whether link rule `id` cuts `instance_id`'s agent off `service`.
    fn link_rule_cuts(&self, id: &str, service: link::AgentService, instance_id: &str) -> bool {
        self.lock().link_rule_cuts(id, service, instance_id)
    }

    /// The connections of the plain listener ([`link::LinkListener`] takes it).
    pub fn links(&self) -> &link::Links {
        &self.shared.links
    }

    /// Makes `proxy` the one `/_emulator/proxy` turns down and up.
    pub fn set_agent_proxy(&self, proxy: Arc<proxy::AgentProxy>) {
        *lock_any(&self.shared.proxy) = Some(proxy);
    }

    /// The built-in CONNECT proxy for agents, if one was started.
    pub fn agent_proxy(&self) -> Option<Arc<proxy::AgentProxy>> {
        lock_any(&self.shared.proxy).clone()
    }

    /// Makes `fleet` the embedded fleet `/_emulator/agents/…` acts on.
    pub fn set_fleet(&self, fleet: ssm_agent_sim::FleetHandle) {
        *lock_any(&self.shared.fleet) = Some(fleet);
    }

    fn fleet(&self) -> Option<ssm_agent_sim::FleetHandle> {
        lock_any(&self.shared.fleet).clone()
    }

    /// The rules in force with their counters, and the totals.
    pub fn report(&self) -> FaultsReport {
        self.lock().report()
    }

    /// Restarts the fault RNG from `seed`.
    pub fn reseed(&self, seed: u64) {
        self.lock().reseed(seed);
    }
}

/// A std mutex held for a moment; a panic elsewhere does not poison it for us.
fn lock_any<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
