//! `ssm-agent-sim`: run a fleet of simulated amazon-ssm-agent instances against the emulator.
//!
//! Run with `cargo run -p ssm-agent-sim -- --help`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use ssm_agent_sim::config::{
    self, DEFAULT_AGENT_VERSION, DEFAULT_PLATFORM_NAME, DEFAULT_PLATFORM_VERSION, DEFAULT_REGION,
    InstanceDefaults,
};
use ssm_agent_sim::faults::parse_duration;
use ssm_agent_sim::net::{Endpoint, Proxy};
use ssm_agent_sim::{Fleet, FleetConfig, InstanceFaults, PlannedCrash, Slowness, Timings};
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
    /// reported, so that Targets by tag find it. An entry may also set "job_ack_delay",
    /// "command_start_delay", "crash_after" and "restart_after" (durations such as "2s"),
    /// overriding the flags of those names for that instance. See
    /// agent-sim/instances.example.json.
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

    /// AgentVersion the agents report (also in the control-channel open frame, replies and
    /// port-session handshakes), e.g. an old 2.3.0.0 to exercise clients' version-gated paths.
    #[arg(long, value_name = "VERSION", default_value = DEFAULT_AGENT_VERSION)]
    agent_version: String,

    /// A slow agent: hold each Run Command job this long before acknowledging it
    /// (agent_job_ack and the first InProgress reply), e.g. 500ms, 2s, 1m.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    job_ack_delay: Option<Duration>,

    /// A slow agent: after acknowledging a command, wait this long before starting its
    /// process.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    command_start_delay: Option<Duration>,

    /// Crash each agent this long after start, as the real agent process dies: the control
    /// channel is dropped without a Close frame, pings stop, queued frames are lost; running
    /// commands and sessions go on (the real agent's worker processes survive it).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    crash_after: Option<Duration>,

    /// Restart a crashed agent after this long (the normal startup sequence, same instance
    /// id). Without it a crashed agent stays down.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    restart_after: Option<Duration>,

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
    // Colour only on a terminal: `docker-compose logs` and CI logs get plain text.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal())
        .init();
}

async fn run(args: Args) -> Result<(), String> {
    let (config, faults) = config_of(&args)?;
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
    let fleet = Fleet::new(config.clone()).map_err(|e| e.to_string())?;
    let handle = fleet.handle();
    for (instance, faults) in config.instances.iter().zip(faults) {
        if faults == InstanceFaults::NONE {
            tracing::info!(instance = %instance.instance_id, "simulating");
        } else {
            tracing::info!(instance = %instance.instance_id, ?faults, "simulating, with faults");
        }
        handle
            .apply(&instance.instance_id, faults)
            .map_err(|e| e.to_string())?;
    }
    let shutdown = CancellationToken::new();
    let fleet = tokio::spawn(fleet.run(shutdown.clone()));
    match tokio::signal::ctrl_c().await {
        Ok(()) => tracing::info!("Ctrl-C: stopping the agents"),
        Err(error) => {
            tracing::error!("cannot listen for Ctrl-C ({error}); stop the process another way");
            std::future::pending::<()>().await;
        }
    }
    shutdown.cancel();
    fleet
        .await
        .map_err(|error| format!("the fleet task failed: {error}"))
}

/// The faults every instance starts with unless its instances file entry says otherwise.
fn default_faults(args: &Args) -> InstanceFaults {
    InstanceFaults {
        slowness: Slowness {
            job_ack_delay: args.job_ack_delay.unwrap_or_default(),
            command_start_delay: args.command_start_delay.unwrap_or_default(),
        },
        crash: args.crash_after.map(|after| PlannedCrash {
            after,
            restart_after: args.restart_after,
        }),
    }
}

fn config_of(args: &Args) -> Result<(FleetConfig, Vec<InstanceFaults>), String> {
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
    let faults = default_faults(args);
    let (instances, faults): (Vec<_>, Vec<_>) = match &args.instances_file {
        Some(path) => {
            let defaults = InstanceDefaults {
                platform_name: args.platform_name.clone(),
                platform_version: args.platform_version.clone(),
                agent_version: args.agent_version.clone(),
                faults,
            };
            config::load_instances_file(path, &defaults)
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|entry| (entry.instance, entry.faults))
                .unzip()
        }
        None => {
            if args.restart_after.is_some() && args.crash_after.is_none() {
                return Err("--restart-after needs --crash-after".to_owned());
            }
            ssm_agent_sim::default_instances(args.count, seed)
                .into_iter()
                .map(|mut instance| {
                    instance.platform_name.clone_from(&args.platform_name);
                    instance.platform_version.clone_from(&args.platform_version);
                    instance.agent_version.clone_from(&args.agent_version);
                    (instance, faults)
                })
                .unzip()
        }
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
    let config = FleetConfig {
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
    };
    Ok((config, faults))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[&str]) -> Result<(FleetConfig, Vec<InstanceFaults>), String> {
        let args =
            Args::try_parse_from(std::iter::once("ssm-agent-sim").chain(argv.iter().copied()))
                .map_err(|e| e.to_string())?;
        config_of(&args)
    }

    #[test]
    fn an_old_slow_crashing_agent_from_flags() {
        let (config, faults) = parse(&[
            "--count",
            "2",
            "--seed",
            "1",
            "--agent-version",
            "2.3.0.0",
            "--job-ack-delay",
            "2s",
            "--command-start-delay",
            "100ms",
            "--crash-after",
            "1m",
            "--restart-after",
            "5s",
        ])
        .unwrap();
        assert_eq!(config.instances.len(), 2);
        assert!(
            config
                .instances
                .iter()
                .all(|i| i.agent_version == "2.3.0.0")
        );
        let expected = InstanceFaults {
            slowness: Slowness {
                job_ack_delay: Duration::from_secs(2),
                command_start_delay: Duration::from_millis(100),
            },
            crash: Some(PlannedCrash {
                after: Duration::from_secs(60),
                restart_after: Some(Duration::from_secs(5)),
            }),
        };
        assert_eq!(faults, vec![expected; 2]);
    }

    #[test]
    fn bad_fault_flags_are_refused() {
        assert!(parse(&["--job-ack-delay", "2"]).is_err());
        assert!(parse(&["--restart-after", "2s"]).is_err());
        let (_, faults) = parse(&["--count", "1"]).unwrap();
        assert_eq!(faults, vec![InstanceFaults::NONE]);
    }
}
