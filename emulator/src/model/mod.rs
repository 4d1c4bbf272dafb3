//! The emulator's state: one in-memory store per process, keyed by account and region like the
//! real service, behind the cheap-to-clone [`Emulator`] handle.
//!
//! Architecture invariant: nothing here knows AWS JSON or HTTP. The `api` module turns requests
//! into calls on this state and the results into responses.

pub(crate) mod command;
pub mod instance;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::clock::{Clock, Shifted};
use crate::config::{Config, DeclaredInstance};
use instance::{ManagedInstance, PlatformType};

/// Which account and region a request acts on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    /// The 12-digit account id.
    pub account_id: String,
    /// The region, e.g. `us-east-1`.
    pub region: String,
}

/// A handle on one emulator's state. Cloning it is cheap and every clone sees the same state.
#[derive(Debug, Clone)]
pub struct Emulator {
    /// Everything behind one `Arc`, so that axum can clone the handle per request.
    shared: Arc<Shared>,
}

/// A handle that does not keep the emulator alive: for what the emulator itself holds (the
/// fault hook in every session's relay) and for timers.
#[derive(Debug, Clone)]
pub(crate) struct WeakEmulator(Weak<Shared>);

impl WeakEmulator {
    /// The emulator, if it still exists.
    pub(crate) fn upgrade(&self) -> Option<Emulator> {
        self.0.upgrade().map(|shared| Emulator { shared })
    }
}

#[derive(Debug)]
struct Shared {
    /// The account every request is served from.
    account_id: String,
    /// The region of unsigned requests.
    default_region: String,
    /// How long a node stays `Online` after its last report.
    ping_grace: Duration,
    /// The one source of time (tests pass a [`ManualClock`](crate::clock::ManualClock)),
    /// shifted forward by `POST /_emulator/clock`.
    clock: Shifted,
    /// Fault rules and their RNG (their own lock: the relay consults them on every frame).
    faults: crate::faults::Faults,
    /// The mutable state. A std mutex, not a tokio one: every operation runs to completion
    /// without awaiting while it holds the lock, so there is never a reason to yield with it
    /// held, and a std mutex is cheaper (the same reasoning as mini-redis's `Db`).
    state: Mutex<State>,
}

/// The mutable part of the emulator, reached through [`Emulator::with_state`].
#[derive(Debug)]
pub(crate) struct State {
    /// The one RNG all ids and tokens come from, seeded from [`Config::seed`], so that a run
    /// with the same seed and the same requests produces the same ids.
    rng: StdRng,
    /// Per account and region. Created on first touch.
    regions: HashMap<Scope, RegionState>,
    /// Control-channel tokens and connections (spec §9.1), across all scopes.
    pub(crate) control: crate::control::Registry,
    /// MDS (`ec2messages`) message queues and polls (spec §9.2), across all scopes.
    pub(crate) mds: crate::mds::Registry,
    /// Sessions (spec §9.1), across all scopes: the data channel names only the session.
    pub(crate) sessions: crate::sessions::Registry,
}

/// The resources of one account in one region.
#[derive(Debug, Default)]
pub(crate) struct RegionState {
    /// Managed nodes by id. A `BTreeMap` so that listing order, and with it pagination, is stable.
    pub(crate) instances: BTreeMap<String, ManagedInstance>,
    /// Run Command: commands and their invocations (`crate::run_command` dispatches them).
    pub(crate) commands: command::Commands,
    /// The account's own SSM documents (the AWS-owned ones are shared and live in `documents`).
    pub(crate) documents: crate::documents::DocumentStore,
}

impl Emulator {
    /// A fresh emulator with `config`'s declared instances already present, reading time from
    /// `clock`.
    pub fn new(config: Config, clock: Arc<dyn Clock>) -> Emulator {
        let now = clock.now();
        let mut state = State {
            rng: StdRng::seed_from_u64(config.seed),
            regions: HashMap::new(),
            control: crate::control::Registry::default(),
            mds: crate::mds::Registry::new(config.get_messages_hold),
            sessions: crate::sessions::Registry::default(),
        };
        for declared in &config.instances {
            let scope = Scope {
                account_id: config.account_id.clone(),
                region: declared
                    .region
                    .clone()
                    .unwrap_or_else(|| config.default_region.clone()),
            };
            let node = declared_node(declared, now);
            state
                .region_mut(&scope)
                .instances
                .insert(node.instance_id.clone(), node);
        }
        let emulator = Emulator {
            shared: Arc::new(Shared {
                account_id: config.account_id,
                default_region: config.default_region,
                ping_grace: config.ping_grace,
                clock: Shifted::new(clock),
                faults: crate::faults::Faults::new(config.seed),
                state: Mutex::new(state),
            }),
        };
        // Every session's relay runs the fault rules (none by default: frames pass unchanged).
        let hook = crate::faults::FaultHook::new(&emulator);
        emulator.set_default_session_hook(Some(Arc::new(hook)));
        emulator
    }

    /// The fault rules and their RNG.
    pub fn faults(&self) -> &crate::faults::Faults {
        &self.shared.faults
    }

    /// A handle that does not keep the emulator alive.
    pub(crate) fn downgrade(&self) -> WeakEmulator {
        WeakEmulator(Arc::downgrade(&self.shared))
    }

    /// The account all state lives under.
    pub fn account_id(&self) -> &str {
        &self.shared.account_id
    }

    /// The region of unsigned requests.
    pub fn default_region(&self) -> &str {
        &self.shared.default_region
    }

    /// How long a node stays `Online` after its last report.
    pub fn ping_grace(&self) -> Duration {
        self.shared.ping_grace
    }

    /// The current time on the emulator's clock.
    pub fn now(&self) -> SystemTime {
        self.shared.clock.now()
    }

    /// Moves the emulator's time forward by `by` (`POST /_emulator/clock`); returns how far
    /// ahead of its underlying clock it now is.
    pub fn advance_clock(&self, by: Duration) -> Duration {
        self.shared.clock.advance(by)
    }

    /// The scope of `region` in the emulator's account.
    pub fn scope(&self, region: &str) -> Scope {
        Scope {
            account_id: self.shared.account_id.clone(),
            region: region.to_owned(),
        }
    }

    /// Runs `f` with the state locked. `f` must not block; it cannot await.
    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held leaves the state as the panicking operation left it;
        // serving on is more useful to a test run than poisoning every later request.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// A fresh request id (a UUID from the seeded RNG) for `x-amzn-RequestId`.
    pub fn next_request_id(&self) -> String {
        self.with_state(|state| state.uuid().to_string())
    }

    /// A copy of one node, if it exists in `scope`.
    pub fn instance(&self, scope: &Scope, instance_id: &str) -> Option<ManagedInstance> {
        self.with_state(|state| {
            state
                .region(scope)
                .and_then(|r| r.instances.get(instance_id).cloned())
        })
    }

    /// Copies of every node in `scope`, sorted by id.
    pub fn instances(&self, scope: &Scope) -> Vec<ManagedInstance> {
        self.with_state(|state| {
            state
                .region(scope)
                .map(|r| r.instances.values().cloned().collect())
                .unwrap_or_default()
        })
    }

    /// Records that a node's control channel opened (`true`) or closed (`false`). Returns
    /// whether the node exists.
    ///
    /// This is the seam the control-channel code uses: a connected node is `Online` and
    /// GetConnectionStatus reports it `connected`, whatever its last ping.
    pub fn set_connected(&self, scope: &Scope, instance_id: &str, connected: bool) -> bool {
        self.with_state(
            |state| match state.region_mut(scope).instances.get_mut(instance_id) {
                Some(node) => {
                    node.connected = connected;
                    true
                }
                None => false,
            },
        )
    }
}

impl State {
    /// The resources of `scope`, if anything was ever stored there.
    pub(crate) fn region(&self, scope: &Scope) -> Option<&RegionState> {
        self.regions.get(scope)
    }

    /// The resources of `scope`, created empty on first use.
    pub(crate) fn region_mut(&mut self, scope: &Scope) -> &mut RegionState {
        self.regions.entry(scope.clone()).or_default()
    }

    /// Every scope anything was ever stored in.
    pub(crate) fn scopes(&self) -> Vec<Scope> {
        self.regions.keys().cloned().collect()
    }

    /// The resources of `scope` (if anything was ever stored there) and the two registries
    /// that say who is reachable, borrowed apart so that the dispatcher can change commands
    /// while it asks about nodes.
    pub(crate) fn dispatch_parts(
        &mut self,
        scope: &Scope,
    ) -> (
        Option<&mut RegionState>,
        &crate::control::Registry,
        &crate::mds::Registry,
    ) {
        (self.regions.get_mut(scope), &self.control, &self.mds)
    }

    /// Restarts the RNG of ids and tokens from `seed`.
    pub(crate) fn reseed(&mut self, seed: u64) {
        self.rng = StdRng::seed_from_u64(seed);
    }

    /// A random (version 4) UUID from the seeded RNG.
    pub(crate) fn uuid(&mut self) -> uuid::Uuid {
        let mut bytes = [0u8; 16];
        self.rng.fill_bytes(&mut bytes);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}

fn declared_node(declared: &DeclaredInstance, now: SystemTime) -> ManagedInstance {
    let mut node = ManagedInstance::new(declared.id.clone(), now);
    node.agent_version = Some(declared.agent_version.clone());
    node.agent_name = Some("amazon-ssm-agent".to_owned());
    node.agent_status = Some("Active".to_owned());
    node.platform_type = PlatformType::parse(&declared.platform);
    node.platform_name = declared.platform_name.clone();
    node.platform_version = declared.platform_version.clone();
    node.ip_address = declared.ip_address.clone();
    node.computer_name = declared.computer_name.clone();
    node.name = declared.name.clone();
    node.tags = declared.tags.clone();
    node.declared_online = Some(declared.online);
    // Shown as LastPingDateTime until a real agent reports.
    node.last_ping = Some(now);
    node
}
