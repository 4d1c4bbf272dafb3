//! `ssm-emulator`: serve the emulated AWS Systems Manager API on a local port.
//!
//! Run with `cargo run -p ssm-emulator -- --help`.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use ssm_emulator::config::{self, Config};
use ssm_emulator::{Emulator, FleetSetup, SystemClock};
use tracing_subscriber::EnvFilter;

/// Offline emulator of AWS Systems Manager (Session Manager and Run Command).
///
/// With no arguments it serves the SSM API on 127.0.0.1:4583 with an embedded fleet of three
/// simulated instances (Online within a second; Run Command runs real /bin/sh processes).
/// Point an AWS client at it with `--endpoint-url http://127.0.0.1:4583` (any credentials;
/// the region comes from the request's signature), or export
/// AWS_ENDPOINT_URL=http://127.0.0.1:4583 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
/// AWS_DEFAULT_REGION=us-east-1.
///
/// The subcommands (fault, seed, reset, proxy, agent) drive an emulator that is already
/// running, through its admin API under /_emulator/.
///
/// Log level: RUST_LOG (default ssm_emulator=info).
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Args {
    /// Without a subcommand: serve.
    #[command(subcommand)]
    command: Option<Subcommands>,

    /// Address to serve the SSM API on. Use port 0 for any free port.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:4583",
        env = "SSM_EMULATOR_LISTEN"
    )]
    listen: SocketAddr,

    /// JSON file of instances that exist from the start.
    ///
    /// Format: {"instances": [{"id": "i-0123456789abcdef0", "platform": "Linux",
    /// "tags": {"Env": "dev"}}, {"id": "mi-0123456789abcdef1", "online": false}]}.
    /// Only "id" is required. Optional fields: "platform" (Linux|Windows|MacOS, default
    /// Linux), "platform_name", "platform_version", "agent_version" (default 3.3.1142.0),
    /// "computer_name", "ip_address", "name", "tags", "online" (default true; false makes
    /// the node ConnectionLost), "region" (default: --region). A declared node keeps its
    /// declared status until an agent reports for the same id.
    #[arg(long, value_name = "PATH", env = "SSM_EMULATOR_INSTANCES_FILE")]
    instances_file: Option<PathBuf>,

    /// Seconds a node stays Online after its last UpdateInstanceInformation before it turns
    /// ConnectionLost.
    #[arg(long, value_name = "SECS", default_value_t = config::DEFAULT_PING_GRACE.as_secs(), env = "SSM_EMULATOR_PING_GRACE")]
    ping_grace: u64,

    /// Seed of the random generator behind every id and token, and of the embedded fleet's
    /// instance ids; the same seed and requests give the same responses. Random if not given
    /// (the log shows the one used).
    #[arg(long, value_name = "N", env = "SSM_EMULATOR_SEED")]
    seed: Option<u64>,

    /// How many simulated instances (ssm-agent-sim agents, Amazon Linux 2023, agent
    /// 3.3.1142.0) to run inside the emulator, connected to its own address. 0 serves the API
    /// alone (for the real amazon-ssm-agent or a separate ssm-agent-sim).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 3,
        env = "SSM_EMULATOR_FLEET"
    )]
    fleet: usize,

    /// The AWS account id every request is served from.
    #[arg(long, value_name = "ID", default_value = config::DEFAULT_ACCOUNT_ID, env = "SSM_EMULATOR_ACCOUNT_ID")]
    account_id: String,

    /// Region of requests that carry no SigV4 Authorization header.
    #[arg(long, value_name = "REGION", default_value = config::DEFAULT_REGION, env = "SSM_EMULATOR_REGION")]
    region: String,

    /// Also run an HTTP CONNECT proxy for agents on this address (e.g. 127.0.0.1:4590), which
    /// tunnels only to this emulator's own listeners. The embedded fleet then connects through
    /// it; point other agents at it with ssm-agent-sim --proxy or HTTPS_PROXY. `ssm-emulator
    /// proxy down|up` (POST /_emulator/proxy) stops and restarts it: a real proxy outage.
    #[arg(long, value_name = "ADDR", env = "SSM_EMULATOR_AGENT_PROXY_LISTEN")]
    agent_proxy_listen: Option<SocketAddr>,

    /// TLS listener (https/wss) for the real amazon-ssm-agent.
    #[command(flatten)]
    tls: ssm_emulator::tls::TlsArgs,
}

/// The subcommands that drive a running emulator.
#[derive(Debug, clap::Subcommand)]
enum Subcommands {
    #[command(flatten)]
    Faults(ssm_emulator::faults::cli::Command),
    #[command(flatten)]
    Agents(ssm_emulator::faults::agents_cli::Command),
    /// Run a scenario (a timeline of faults, workloads and expectations) against an emulator
    /// of its own, or list the shipped ones.
    Scenario {
        /// What to do.
        #[command(subcommand)]
        command: ssm_emulator::scenario::cli::Command,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = Args::parse();
    if let Some(command) = args.command.take() {
        let result = match command {
            Subcommands::Scenario { command } => {
                init_tracing_quiet();
                return ssm_emulator::scenario::cli::main(command).await;
            }
            Subcommands::Faults(command) => ssm_emulator::faults::cli::run(command).await,
            Subcommands::Agents(command) => ssm_emulator::faults::agents_cli::run(command).await,
        };
        return match result {
            Ok(output) => {
                println!("{output}");
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("ssm-emulator: {message}");
                ExitCode::FAILURE
            }
        };
    }
    init_tracing();
    match serve(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ssm-emulator: {message}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| format!("{}=info", env!("CARGO_CRATE_NAME")).into());
    // Colour only on a terminal: `docker-compose logs` and CI logs get plain text.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal())
        .init();
}

/// Scenario runs print a report on stdout; the emulator inside logs only warnings to stderr
/// unless RUST_LOG says otherwise.
fn init_tracing_quiet() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

async fn serve(args: Args) -> Result<(), String> {
    let config = config_of(&args)?;
    let seed = config.seed;
    tracing::info!(
        seed,
        declared_instances = config.instances.len(),
        fleet = args.fleet,
        "starting"
    );
    let emulator = Emulator::new(config, Arc::new(SystemClock));
    let tls_addr = ssm_emulator::tls::start(&args.tls, &emulator, shutdown_signal()).await?;

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => format!(
                "address {} already in use: pass --listen 127.0.0.1:<port> \
                 (or 127.0.0.1:0 for any free port)",
                args.listen
            ),
            _ => format!("cannot listen on {}: {e}", args.listen),
        })?;

    if let Some(addr) = args.agent_proxy_listen {
        let api = listener.local_addr().map_err(|e| e.to_string())?;
        let allowed = std::iter::once(api).chain(tls_addr).collect();
        let proxy = ssm_emulator::faults::proxy::AgentProxy::start(addr, allowed)
            .await
            .map_err(|e| e.to_string())?;
        emulator.faults().set_agent_proxy(proxy);
    }

    // One directory per run for the fleet's command files, removed when the fleet has stopped.
    let work_dir = std::env::temp_dir().join(format!("ssm-emulator-{}", std::process::id()));
    let fleet = FleetSetup::generated(args.fleet, seed, work_dir.clone());
    let result = ssm_emulator::serve(listener, emulator, fleet, shutdown_signal()).await;
    if let Err(e) = std::fs::remove_dir_all(&work_dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("cannot remove {}: {e}", work_dir.display());
    }
    result.map_err(|e| e.to_string())
}

fn config_of(args: &Args) -> Result<Config, String> {
    let seed = args.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    let mut config = Config::local(seed);
    config.account_id.clone_from(&args.account_id);
    config.default_region.clone_from(&args.region);
    config.ping_grace = Duration::from_secs(args.ping_grace);
    if let Some(path) = &args.instances_file {
        config.instances = config::load_instances_file(path).map_err(|e| e.to_string())?;
    }
    Ok(config)
}

async fn shutdown_signal() {
    match tokio::signal::ctrl_c().await {
        Ok(()) => tracing::info!("Ctrl-C: shutting down"),
        Err(e) => {
            tracing::error!("cannot listen for Ctrl-C ({e}); stop the process another way");
            std::future::pending::<()>().await;
        }
    }
}
