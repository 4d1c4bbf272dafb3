//! `ssm-agent-sim`: run a fleet of simulated amazon-ssm-agent instances against the emulator.
//!
//! Run with `cargo run -p ssm-agent-sim -- --help`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use ssm_agent_sim::config::{
    self, DEFAULT_AGENT_VERSION, DEFAULT_PLATFORM_NAME, DEFAULT_PLATFORM_VERSION, DEFAULT_REGION,
    InstanceDefaults,
};
use ssm_agent_sim::net::{Endpoint, Proxy};
use ssm_agent_sim::{FleetConfig, Timings};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// A fleet of simulated amazon-ssm-agent instances in one process.
///
/// Each agent registers with the emulator the way amazon-ssm-agent 3.3 does
/// (UpdateInstanceInformation, then CreateControlChannel and the control-channel websocket),
/// sends health pings, and runs Run Command jobs (AWS-RunShellScript) as real /bin/sh
/// processes. Start the emulator first (`cargo run -p ssm-emulator`), then e.g.
/// `ssm-agent-sim --count 3` and `aws ssm send-command --endpoint-url http://127.0.0.1:4583 …`.
///
/// Log level: RUST_LOG (default ssm_agent_sim=info).
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Args {
    /// The emulator's address (SSM API and MGS on one port); plain http only for now.
    #[arg(
        long,
        value_name = "URL",
        default_value = "http://127.0.0.1:4583",
        env = "SSM_AGENT_SIM_ENDPOINT"
    )]
    endpoint: String,

    /// How many agents to run, with ids generated from --seed. Ignored with --instances-file.
    #[arg(long, value_name = "N", default_value_t = 3)]
    count: usize,

    /// JSON file listing the instances to simulate, instead of --count generated ones.
    ///
    /// Format: {"instances": [{"id": "i-0123456789abcdef0", "platform_name": "Amazon Linux",
    /// "platform_version": "2023", "agent_version": "3.3.1142.0", "computer_name":
    /// "ip-10-0-0-4", "ip_address": "10.0.0.4", "tags": {"Env": "dev"}}, {"id":
    /// "mi-0123456789abcdef1"}]}. Only "id" is required (i- or mi- and 8 to 17 lower-case hex
    /// digits); the others default to --platform-name, --platform-version, --agent-version and
    /// a generated address. Tags are applied with AddTagsToResource once the agent has
    /// reported, so that Targets by tag find it. See agent-sim/instances.example.json.
    #[arg(long, value_name = "PATH")]
    instances_file: Option<PathBuf>,

    /// Seed for generated instance ids (the same seed gives the same ids) and for the agents'
    /// MessageIds and jitter (mixed with the clock). Random if not given.
    #[arg(long, value_name = "N", env = "SSM_AGENT_SIM_SEED")]
    seed: Option<u64>,

    /// PlatformName the agents report.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_PLATFORM_NAME)]
    platform_name: String,

    /// PlatformVersion the agents report.
    #[arg(long, value_name = "VERSION", default_value = DEFAULT_PLATFORM_VERSION)]
    platform_version: String,

    /// AgentVersion the agents report (also in the control-channel open frame and replies).
    #[arg(long, value_name = "VERSION", default_value = DEFAULT_AGENT_VERSION)]
    agent_version: String,

    /// Seconds between health pings (UpdateInstanceInformation). The real agent pings every
    /// 300; the emulator marks a node ConnectionLost when pings stop, so keep this below its
    /// --ping-grace.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    heartbeat: u64,

    /// Seconds between websocket keepalive Pings on the control channel (real agent: 54).
    #[arg(long, value_name = "SECS", default_value_t = 54)]
    keepalive: u64,

    /// Seconds between resends of command replies the emulator did not acknowledge (real
    /// agent: 300).
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    reply_resend: u64,

    /// Pace session output like the real agent: sleep 1 ms after each read of up to 1024
    /// bytes from a session's PTY (about 0.6 MB/s per session). Off by default.
    #[arg(long)]
    real_read_pacing: bool,

    /// Reach the emulator through this HTTP proxy with CONNECT, e.g. http://proxy:3128 or
    /// http://user:password@proxy:3128. Default: https_proxy / HTTPS_PROXY, honouring
    /// no_proxy / NO_PROXY.
    #[arg(long, value_name = "URL")]
    proxy: Option<String>,

    /// Directory for the agents' state (one subdirectory per instance id).
    #[arg(long, value_name = "PATH")]
    work_dir: Option<PathBuf>,

    /// Region in the agents' credential scope and AWS_SSM_REGION_NAME of their commands.
    #[arg(long, value_name = "REGION", default_value = DEFAULT_REGION)]
    region: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    init_tracing();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ssm-agent-sim: {message}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| format!("{}=info", env!("CARGO_CRATE_NAME")).into());
    tracing_subscriber::fmt().with_env_filter(filter).init();
}

async fn run(args: Args) -> Result<(), String> {
    let config = config_of(&args)?;
    ssm_agent_sim::probe_endpoint(&config)
        .await
        .map_err(|error| {
            format!(
                "cannot reach the emulator at {}: {error}\n\
             start it with `cargo run -p ssm-emulator` or pass --endpoint URL{}",
                config.endpoint,
                if config.proxy.is_some() {
                    " (and check --proxy / https_proxy)"
                } else {
                    ""
                }
            )
        })?;
    for instance in &config.instances {
        tracing::info!(instance = %instance.instance_id, "simulating");
    }
    let shutdown = CancellationToken::new();
    let fleet = tokio::spawn(ssm_agent_sim::run_fleet(config, shutdown.clone()));
    match tokio::signal::ctrl_c().await {
        Ok(()) => tracing::info!("Ctrl-C: stopping the agents"),
        Err(error) => {
            tracing::error!("cannot listen for Ctrl-C ({error}); stop the process another way");
            std::future::pending::<()>().await;
        }
    }
    shutdown.cancel();
    match fleet.await {
        Ok(result) => result.map_err(|error| error.to_string()),
        Err(error) => Err(format!("the fleet task failed: {error}")),
    }
}

fn config_of(args: &Args) -> Result<FleetConfig, String> {
    let endpoint = Endpoint::parse(&args.endpoint).map_err(|e| e.to_string())?;
    let proxy = match &args.proxy {
        Some(url) => {
            let no_proxy = std::env::var("no_proxy")
                .or_else(|_| std::env::var("NO_PROXY"))
                .unwrap_or_default();
            Some(Proxy::parse(url, &no_proxy).map_err(|e| format!("--proxy: {e}"))?)
        }
        None => Proxy::from_env().map_err(|e| format!("https_proxy: {e}"))?,
    };
    let seed = args.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let instances = match &args.instances_file {
        Some(path) => {
            let defaults = InstanceDefaults {
                platform_name: args.platform_name.clone(),
                platform_version: args.platform_version.clone(),
                agent_version: args.agent_version.clone(),
            };
            config::load_instances_file(path, &defaults).map_err(|e| e.to_string())?
        }
        None => ssm_agent_sim::default_instances(args.count, seed)
            .into_iter()
            .map(|mut instance| {
                instance.platform_name.clone_from(&args.platform_name);
                instance.platform_version.clone_from(&args.platform_version);
                instance.agent_version.clone_from(&args.agent_version);
                instance
            })
            .collect(),
    };
    config::validate_instances(&instances).map_err(|e| e.to_string())?;
    let positive = |secs: u64, flag: &str| {
        if secs == 0 {
            Err(format!("{flag} must be at least 1 second"))
        } else {
            Ok(Duration::from_secs(secs))
        }
    };
    let timings = Timings {
        heartbeat: positive(args.heartbeat, "--heartbeat")?,
        keepalive: positive(args.keepalive, "--keepalive")?,
        reply_resend: positive(args.reply_resend, "--reply-resend")?,
        real_read_pacing: args.real_read_pacing,
        ..Timings::real_agent()
    };
    Ok(FleetConfig {
        endpoint,
        instances,
        timings,
        proxy,
        work_dir: args
            .work_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("ssm-agent-sim")),
        default_working_dir: ssm_agent_sim::command::default_working_dir(),
        region: args.region.clone(),
        seed,
    })
}
