//! The emulator together with an embedded fleet of simulated agents: what `ssm-emulator` runs
//! when started with no arguments, and what tests and the benchmark start in-process.
//!
//! [`serve`] binds nothing itself: the caller passes a bound listener (so `127.0.0.1:0` works
//! and the caller knows the address), and the fleet connects to the address that listener
//! actually has. The agents are `ssm-agent-sim`'s, talking to the server over loopback TCP
//! exactly as a separate `ssm-agent-sim` process would; the emulator gives them no shortcut.
//!
//! Shutdown runs in dependency order: the fleet first (its agents kill the commands they run
//! and close their control channels), then the server.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ssm_agent_sim::net::{Endpoint, Proxy};
use ssm_agent_sim::{Fleet, FleetConfig, InstanceConfig, Timings};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::model::Emulator;

/// The fleet [`serve`] runs beside the server.
#[derive(Debug, Clone)]
pub struct FleetSetup {
    /// One simulated agent per entry; empty serves the API alone.
    pub instances: Vec<InstanceConfig>,
    /// The agents' ping, keepalive, resend and retry periods.
    pub timings: Timings,
    /// Each agent keeps its command files in `<work_dir>/<instance-id>`.
    pub work_dir: PathBuf,
    /// Seeds the agents' MessageIds and jitter.
    pub seed: u64,
}

impl FleetSetup {
    /// `count` agents with ids generated from `seed` (the same seed gives the same ids, see
    /// [`ssm_agent_sim::default_instances`]), on [`embedded_timings`].
    pub fn generated(count: usize, seed: u64, work_dir: PathBuf) -> FleetSetup {
        FleetSetup {
            instances: ssm_agent_sim::default_instances(count, seed),
            timings: embedded_timings(),
            work_dir,
            seed,
        }
    }
}

/// The embedded fleet's timings: [`Timings::fast`] (instances are Online and connected within
/// a second of start, lost control channels come back within a second or two), with a health
/// ping every 60 s instead of 5 s, well inside the emulator's ping grace and quiet enough for a
/// fleet of a thousand.
pub fn embedded_timings() -> Timings {
    Timings {
        heartbeat: Duration::from_secs(60),
        ..Timings::fast()
    }
}

/// Why [`serve`] stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The HTTP server failed.
    #[error("server failed: {0}")]
    Server(#[from] std::io::Error),
    /// The fleet's configuration was refused (an invalid or duplicate instance id).
    #[error("embedded fleet: {0}")]
    Fleet(#[from] ssm_agent_sim::config::ConfigError),
    /// A task panicked or was cancelled.
    #[error("{0}")]
    Task(String),
}

/// Serves the emulator on `listener` with the agents of `fleet` connected to it, until
/// `shutdown` completes; then stops the fleet (killing the commands it runs) and the server.
///
/// Logs the endpoint at once, one `instance i-… (Amazon Linux 2023, agent 3.3.1142.0) online`
/// line per agent as its control channel opens, and, once every agent is online, the
/// environment a client needs.
pub async fn serve(
    listener: TcpListener,
    emulator: Emulator,
    fleet: FleetSetup,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = agent_facing(listener.local_addr()?);
    tracing::info!("SSM API on http://{addr}");

    // With `--agent-proxy-listen`, the fleet reaches the emulator only through that proxy.
    let proxy = emulator.faults().agent_proxy().map(|proxy| {
        let url = format!("http://{}", agent_facing(proxy.addr()));
        Proxy::parse(&url, "").expect("a socket address is a valid proxy URL")
    });
    let agents = if fleet.instances.is_empty() {
        None
    } else {
        let config = FleetConfig {
            endpoint: Endpoint::parse(&format!("http://{addr}"))
                .expect("a socket address is a valid http endpoint"),
            instances: fleet.instances.clone(),
            timings: fleet.timings,
            proxy,
            work_dir: fleet.work_dir.clone(),
            default_working_dir: ssm_agent_sim::command::default_working_dir(),
            region: emulator.default_region().to_owned(),
            seed: fleet.seed,
        };
        let agents = Fleet::new(config)?;
        // `/_emulator/agents/…` crashes, restarts and slows these agents down.
        emulator.faults().set_fleet(agents.handle());
        Some(agents)
    };

    let server_stop = CancellationToken::new();
    let mut server = tokio::spawn(crate::run(
        listener,
        emulator.clone(),
        server_stop.clone().cancelled_owned(),
    ));

    let announcer = tokio::spawn(announce(emulator.clone(), fleet.instances.clone(), addr));
    let fleet_stop = CancellationToken::new();
    let agents = agents.map(|agents| tokio::spawn(agents.run(fleet_stop.clone())));

    let server_ended = tokio::select! {
        () = shutdown => None,
        result = &mut server => Some(result),
    };
    fleet_stop.cancel();
    announcer.abort();
    let fleet_result = match agents {
        Some(agents) => joined(agents.await),
        None => Ok(()),
    };
    server_stop.cancel();
    let server_result = match server_ended {
        Some(result) => result,
        None => server.await,
    };
    joined(server_result)?.map_err(ServeError::from)?;
    fleet_result
}

/// The environment variables an AWS client needs to reach the emulator at `addr` (unsigned
/// requests land in `region`, the emulator's default).
pub fn client_env(addr: SocketAddr, region: &str) -> String {
    format!(
        "AWS_ENDPOINT_URL=http://{addr} AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
         AWS_DEFAULT_REGION={region}"
    )
}

/// The address agents and clients dial: the listener's, with an unspecified IP (`0.0.0.0`,
/// `::`) replaced by loopback.
fn agent_facing(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

fn joined<T>(result: Result<T, tokio::task::JoinError>) -> Result<T, ServeError> {
    result.map_err(|e| ServeError::Task(format!("a task of the emulator failed: {e}")))
}

/// Logs each instance of `pending` once its control channel is open, then the banner; watches
/// the emulator's own state, so "online" means what DescribeInstanceInformation shows.
async fn announce(emulator: Emulator, mut pending: Vec<InstanceConfig>, addr: SocketAddr) {
    let scope = emulator.scope(emulator.default_region());
    let mut ticks = tokio::time::interval(Duration::from_millis(50));
    while !pending.is_empty() {
        ticks.tick().await;
        let connected: std::collections::HashSet<String> = emulator
            .instances(&scope)
            .into_iter()
            .filter(|node| node.connected)
            .map(|node| node.instance_id)
            .collect();
        pending.retain(|instance| {
            let online = connected.contains(&instance.instance_id);
            if online {
                tracing::info!(
                    "instance {} ({} {}, agent {}) online",
                    instance.instance_id,
                    instance.platform_name,
                    instance.platform_version,
                    instance.agent_version
                );
            }
            !online
        });
    }
    tracing::info!(
        "ready: point an AWS client at http://{addr}, e.g.\n    export {}\n    \
         aws ssm describe-instance-information",
        client_env(addr, emulator.default_region())
    );
}
