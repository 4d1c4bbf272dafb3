//! A fleet: one [`crate::agent`] per configured instance, all in this process, and the
//! [`FleetHandle`] that injects agent faults into it while it runs.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use crate::agent::{Agent, AgentSetup};
use crate::command::ExecutorConfig;
use crate::config::{ConfigError, FleetConfig, validate_instances};
use crate::faults::FleetHandle;
use crate::limits::MAX_CONCURRENT_COMMANDS;
use crate::net::Connector;
use crate::service::Service;

/// A validated fleet, ready to run, with its [`FleetHandle`].
///
/// ```no_run
/// # async fn demo(config: ssm_agent_sim::FleetConfig) -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// let fleet = ssm_agent_sim::Fleet::new(config)?;
/// let agents = fleet.handle();
/// let shutdown = tokio_util::sync::CancellationToken::new();
/// let running = tokio::spawn(fleet.run(shutdown.clone()));
/// let id = agents.instances()[0].instance_id.clone();
/// agents.crash(&id, Some(Duration::from_secs(5)))?;
/// # shutdown.cancel(); running.await?; Ok(()) }
/// ```
#[derive(Debug)]
pub struct Fleet {
    config: FleetConfig,
    handle: FleetHandle,
}

impl Fleet {
    /// Checks the instances (ids valid and distinct, at least one).
    pub fn new(config: FleetConfig) -> Result<Fleet, ConfigError> {
        validate_instances(&config.instances)?;
        let handle = FleetHandle::new(&config.instances);
        Ok(Fleet { config, handle })
    }

    /// The handle to this fleet's agents; faults set on it before [`Fleet::run`] apply from
    /// the start.
    pub fn handle(&self) -> FleetHandle {
        self.handle.clone()
    }

    /// Runs every agent until `shutdown` is cancelled, then stops them (killing the commands
    /// they run) and returns. Agents that cannot reach the emulator keep retrying and log why.
    pub async fn run(self, shutdown: CancellationToken) {
        let config = self.config;
        let clock = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let connector = Connector {
            endpoint: config.endpoint.clone(),
            proxy: config.proxy.clone(),
        };
        let mut agents = tokio::task::JoinSet::new();
        for (index, instance) in config.instances.iter().enumerate() {
            let faults = self
                .handle
                .agent(&instance.instance_id)
                .expect("the handle was made from these instances");
            let setup = AgentSetup {
                service: Service {
                    connector: connector.clone(),
                    region: config.region.clone(),
                },
                timings: config.timings,
                executor: ExecutorConfig {
                    state_dir: config.work_dir.join(&instance.instance_id),
                    default_working_dir: config.default_working_dir.clone(),
                    max_concurrent_commands: MAX_CONCURRENT_COMMANDS,
                },
                seed: mix(config.seed ^ clock, index as u64),
                instance: instance.clone(),
                faults,
            };
            agents.spawn(Agent::run(setup, shutdown.clone()));
        }
        tracing::info!(
            agents = config.instances.len(),
            endpoint = %config.endpoint,
            "fleet started"
        );
        while agents.join_next().await.is_some() {}
    }
}

/// Runs every agent of `config` until `shutdown` is cancelled, then stops them (killing the
/// commands they run) and returns. Agents that cannot reach the emulator keep retrying and
/// log why; only an invalid config is an error. [`Fleet`] does the same and gives a
/// [`FleetHandle`] for faults.
pub async fn run_fleet(
    config: FleetConfig,
    shutdown: CancellationToken,
) -> Result<(), ConfigError> {
    Fleet::new(config)?.run(shutdown).await;
    Ok(())
}

/// Whether a TCP connection to the endpoint (through the proxy, if any) can be opened: a quick
/// check before starting a fleet, so that a missing emulator is reported once and clearly.
pub async fn probe_endpoint(config: &FleetConfig) -> Result<(), String> {
    let connector = Connector {
        endpoint: config.endpoint.clone(),
        proxy: config.proxy.clone(),
    };
    connector
        .connect()
        .await
        .map(drop)
        .map_err(|error| error.to_string())
}

/// SplitMix64 of `seed + index`: distinct, well-spread seeds for the agents of one fleet.
fn mix(seed: u64, index: u64) -> u64 {
    let mut z = seed.wrapping_add(index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
