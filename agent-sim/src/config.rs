//! What a fleet is made of: the instances it simulates, where it reports, and its timings.
//!
//! Config structs have no `Default`: every caller says what it wants, through the named
//! constructors ([`Timings::real_agent`], [`Timings::fast`], [`default_instances`]) or by hand.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Deserialize;

use crate::faults::{InstanceFaults, PlannedCrash, Slowness, parse_duration};
use crate::net::{Endpoint, Proxy};

/// The agent version the simulated agents report unless told otherwise: the recorded agent's.
pub const DEFAULT_AGENT_VERSION: &str = "3.3.1142.0";
/// `PlatformName` unless told otherwise.
pub const DEFAULT_PLATFORM_NAME: &str = "Amazon Linux";
/// `PlatformVersion` unless told otherwise.
pub const DEFAULT_PLATFORM_VERSION: &str = "2023";
/// The region the agents put into their (unsigned) credential scope and into
/// `AWS_SSM_REGION_NAME`.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Everything [`crate::run_fleet`] needs.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// The emulator: SSM API (`POST /`) and MGS (`/v1/control-channel/…`) on one address.
    pub endpoint: Endpoint,
    /// One simulated agent per entry.
    pub instances: Vec<InstanceConfig>,
    /// Health-ping, keepalive, resend and reconnect intervals.
    pub timings: Timings,
    /// How every connection is opened: directly, or through an HTTP CONNECT proxy.
    pub proxy: Option<Proxy>,
    /// Each agent keeps its state (the orchestration directories of running commands) in
    /// `<work_dir>/<instance-id>`, the counterpart of `/var/lib/amazon/ssm/<instance-id>`.
    pub work_dir: PathBuf,
    /// Where scripts run when `workingDirectory` is empty. The real agent runs as root in `/`.
    pub default_working_dir: PathBuf,
    /// The region of the credential scope and of `AWS_SSM_REGION_NAME`.
    pub region: String,
    /// Seeds the agents' MessageIds and RequestIds (mixed with the clock, so that two runs with
    /// one seed never repeat a MessageId the emulator has already seen) and reconnect jitter.
    pub seed: u64,
}

/// Who one simulated agent claims to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceConfig {
    /// `i-…` (EC2) or `mi-…` (hybrid) followed by hex digits.
    pub instance_id: String,
    /// `PlatformName`, e.g. `Amazon Linux`.
    pub platform_name: String,
    /// `PlatformVersion`, e.g. `2023`.
    pub platform_version: String,
    /// `AgentVersion`, also in the open frame and in reply `additionalInfo.agent.ver`.
    pub agent_version: String,
    /// `ComputerName`.
    pub computer_name: String,
    /// `IPAddress`.
    pub ip_address: String,
    /// Applied with `AddTagsToResource` after the first successful report (the real agent
    /// reports no tags; this is what a user does with the console), so that Targets by tag work.
    pub tags: BTreeMap<String, String>,
}

/// The periods that make an agent's traffic; the real agent's in [`Timings::real_agent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// Period of the health ping (`UpdateInstanceInformation`). The first periodic ping comes
    /// at a random offset in `[0, heartbeat)` after start, as on the real agent.
    pub heartbeat: Duration,
    /// Period of the websocket Ping `keepalive` on the control channel.
    pub keepalive: Duration,
    /// How long to wait for `agent_job_reply_ack` before a reply counts as unacknowledged.
    pub reply_ack_wait: Duration,
    /// How often unacknowledged replies 2 and 3 are resent (same MessageId, new `dateTime`).
    pub reply_resend: Duration,
    /// Upper bound of the random wait before reconnecting a failed control channel.
    pub reconnect_jitter: Duration,
    /// First retry delay after a failed connect; each retry waits between this and twice this,
    /// then the delay doubles.
    pub retry_initial: Duration,
    /// Cap of the retry delay.
    pub retry_max: Duration,
    /// Sleep 1 ms after each read of session output (at most 1024 bytes), as the real agent's
    /// read pumps do (§6.2, §7.4), which caps a session near its ≈0.6 MB/s. Off in both named
    /// schedules: agent-sim then forwards output as fast as the data channel takes it.
    pub real_read_pacing: bool,
}

impl Timings {
    /// The schedule of amazon-ssm-agent 3.3 (§9.1, §9.4): pings every 5 min, keepalive every
    /// 54 s, replies resent by the 5-minute job, reconnect after 0–2.5 s, retries from 5–10 s
    /// doubling up to 40 min.
    pub fn real_agent() -> Timings {
        Timings {
            heartbeat: Duration::from_secs(300),
            keepalive: Duration::from_secs(54),
            reply_ack_wait: Duration::from_secs(1),
            reply_resend: Duration::from_secs(300),
            reconnect_jitter: Duration::from_millis(2500),
            retry_initial: Duration::from_secs(5),
            retry_max: Duration::from_secs(40 * 60),
            real_read_pacing: false,
        }
    }

    /// The real schedule compressed for tests and the emulator's embedded fleet: the same
    /// sequence of events, within a second or two instead of minutes.
    pub fn fast() -> Timings {
        Timings {
            heartbeat: Duration::from_secs(5),
            keepalive: Duration::from_secs(5),
            reply_ack_wait: Duration::from_millis(200),
            reply_resend: Duration::from_millis(500),
            reconnect_jitter: Duration::from_millis(100),
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(2),
            real_read_pacing: false,
        }
    }
}

/// `count` instances with ids `i-` + 17 hex digits drawn from `seed` (the same seed always
/// gives the same ids), the default platform and agent version, and no tags.
pub fn default_instances(count: usize, seed: u64) -> Vec<InstanceConfig> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|index| {
            let hex: String = (0..17)
                .map(|_| char::from_digit(rng.random_range(0..16u32), 16).unwrap_or('0'))
                .collect();
            let ip_address = format!("10.0.{}.{}", index / 250, index % 250 + 4);
            InstanceConfig {
                instance_id: format!("i-{hex}"),
                platform_name: DEFAULT_PLATFORM_NAME.to_owned(),
                platform_version: DEFAULT_PLATFORM_VERSION.to_owned(),
                agent_version: DEFAULT_AGENT_VERSION.to_owned(),
                computer_name: format!("ip-{}", ip_address.replace('.', "-")),
                ip_address,
                tags: BTreeMap::new(),
            }
        })
        .collect()
}

/// Whether `id` is an instance id the agent could have: `i-` or `mi-` and 8 to 17 lower-case
/// hex digits.
pub fn is_valid_instance_id(id: &str) -> bool {
    let hex = id.strip_prefix("i-").or_else(|| id.strip_prefix("mi-"));
    hex.is_some_and(|hex| {
        (8..=17).contains(&hex.len())
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Why an instances file or a fleet config was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the instances file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not the documented JSON.
    #[error("the instances file {path} is not valid: {source} (see `ssm-agent-sim --help`)")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// An instance id that no agent could have.
    #[error("instance id {0:?} is not i- or mi- followed by 8 to 17 lower-case hex digits")]
    InvalidInstanceId(String),
    /// Two agents would report as one instance.
    #[error("instance id {0} appears twice")]
    DuplicateInstanceId(String),
    /// Nothing to simulate.
    #[error("no instances to simulate: pass --count 1 or more, or a non-empty instances file")]
    NoInstances,
    /// A fault setting of an instance that is not a duration.
    #[error("instance {instance}: {field}: {message}")]
    InvalidDuration {
        /// The instance id.
        instance: String,
        /// The field of the instances file.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// `restart_after` without a `crash_after` to restart from.
    #[error("instance {0}: restart_after needs crash_after (or --crash-after)")]
    RestartWithoutCrash(String),
}

/// The instances file: `{"instances": [{"id": "i-0123456789abcdef0", …}, …]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InstancesFile {
    instances: Vec<InstanceEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InstanceEntry {
    id: String,
    platform_name: Option<String>,
    platform_version: Option<String>,
    agent_version: Option<String>,
    computer_name: Option<String>,
    ip_address: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    /// Durations such as `"2s"` ([`parse_duration`]); see [`InstanceFaults`].
    job_ack_delay: Option<String>,
    command_start_delay: Option<String>,
    crash_after: Option<String>,
    restart_after: Option<String>,
}

/// Defaults for what an instances file entry leaves out.
#[derive(Debug, Clone)]
pub struct InstanceDefaults {
    /// `PlatformName`.
    pub platform_name: String,
    /// `PlatformVersion`.
    pub platform_version: String,
    /// `AgentVersion`.
    pub agent_version: String,
    /// Delays and planned crash; an entry overrides each field it sets.
    pub faults: InstanceFaults,
}

/// One instance of an instances file and the faults it starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInstance {
    /// Who it is.
    pub instance: InstanceConfig,
    /// Its faults, for [`crate::FleetHandle::apply`].
    pub faults: InstanceFaults,
}

/// Reads an instances file (format in `ssm-agent-sim --help` and `instances.example.json`).
pub fn load_instances_file(
    path: &Path,
    defaults: &InstanceDefaults,
) -> Result<Vec<FileInstance>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_instances(&text, defaults).map_err(|error| match error {
        ParseError::Json(source) => ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        },
        ParseError::Config(error) => error,
    })
}

enum ParseError {
    Json(serde_json::Error),
    Config(ConfigError),
}

fn parse_instances(
    text: &str,
    defaults: &InstanceDefaults,
) -> Result<Vec<FileInstance>, ParseError> {
    let file: InstancesFile = serde_json::from_str(text).map_err(ParseError::Json)?;
    let instances: Vec<FileInstance> = file
        .instances
        .into_iter()
        .enumerate()
        .map(|(index, entry)| {
            let faults = entry_faults(&entry, &defaults.faults)?;
            let ip_address = entry
                .ip_address
                .unwrap_or_else(|| format!("10.0.{}.{}", index / 250, index % 250 + 4));
            let instance = InstanceConfig {
                instance_id: entry.id,
                platform_name: entry
                    .platform_name
                    .unwrap_or_else(|| defaults.platform_name.clone()),
                platform_version: entry
                    .platform_version
                    .unwrap_or_else(|| defaults.platform_version.clone()),
                agent_version: entry
                    .agent_version
                    .unwrap_or_else(|| defaults.agent_version.clone()),
                computer_name: entry
                    .computer_name
                    .unwrap_or_else(|| format!("ip-{}", ip_address.replace('.', "-"))),
                ip_address,
                tags: entry.tags,
            };
            Ok(FileInstance { instance, faults })
        })
        .collect::<Result<_, ConfigError>>()
        .map_err(ParseError::Config)?;
    let configs: Vec<InstanceConfig> = instances.iter().map(|i| i.instance.clone()).collect();
    validate_instances(&configs).map_err(ParseError::Config)?;
    Ok(instances)
}

/// An entry's fault fields over the defaults.
fn entry_faults(
    entry: &InstanceEntry,
    defaults: &InstanceFaults,
) -> Result<InstanceFaults, ConfigError> {
    let duration = |field: &'static str, value: &Option<String>| {
        value
            .as_deref()
            .map(|text| {
                parse_duration(text).map_err(|message| ConfigError::InvalidDuration {
                    instance: entry.id.clone(),
                    field,
                    message,
                })
            })
            .transpose()
    };
    let slowness = Slowness {
        job_ack_delay: duration("job_ack_delay", &entry.job_ack_delay)?
            .unwrap_or(defaults.slowness.job_ack_delay),
        command_start_delay: duration("command_start_delay", &entry.command_start_delay)?
            .unwrap_or(defaults.slowness.command_start_delay),
    };
    let crash_after =
        duration("crash_after", &entry.crash_after)?.or(defaults.crash.map(|c| c.after));
    let restart_after = duration("restart_after", &entry.restart_after)?
        .or(defaults.crash.and_then(|c| c.restart_after));
    let crash = match (crash_after, restart_after) {
        (Some(after), restart_after) => Some(PlannedCrash {
            after,
            restart_after,
        }),
        (None, Some(_)) => return Err(ConfigError::RestartWithoutCrash(entry.id.clone())),
        (None, None) => None,
    };
    Ok(InstanceFaults { slowness, crash })
}

/// Checks ids and uniqueness; [`crate::run_fleet`] calls it too.
pub fn validate_instances(instances: &[InstanceConfig]) -> Result<(), ConfigError> {
    if instances.is_empty() {
        return Err(ConfigError::NoInstances);
    }
    let mut seen = std::collections::HashSet::new();
    for instance in instances {
        if !is_valid_instance_id(&instance.instance_id) {
            return Err(ConfigError::InvalidInstanceId(instance.instance_id.clone()));
        }
        if !seen.insert(instance.instance_id.as_str()) {
            return Err(ConfigError::DuplicateInstanceId(
                instance.instance_id.clone(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> InstanceDefaults {
        InstanceDefaults {
            platform_name: DEFAULT_PLATFORM_NAME.to_owned(),
            platform_version: DEFAULT_PLATFORM_VERSION.to_owned(),
            agent_version: DEFAULT_AGENT_VERSION.to_owned(),
            faults: InstanceFaults::NONE,
        }
    }

    #[test]
    fn generated_ids_are_deterministic_and_valid() {
        let a = default_instances(5, 42);
        let b = default_instances(5, 42);
        assert_eq!(a, b);
        assert_ne!(a, default_instances(5, 43));
        for instance in &a {
            assert_eq!(instance.instance_id.len(), 2 + 17);
            assert!(is_valid_instance_id(&instance.instance_id));
        }
        validate_instances(&a).unwrap();
    }

    #[test]
    fn the_example_instances_file_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("instances.example.json");
        let instances: Vec<InstanceConfig> = load_instances_file(&path, &defaults())
            .unwrap()
            .into_iter()
            .map(|i| i.instance)
            .collect();
        assert!(instances.len() >= 2);
        assert!(instances.iter().any(|i| i.instance_id.starts_with("mi-")));
        assert!(instances.iter().any(|i| !i.tags.is_empty()));
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let parse = |text: &str| parse_instances(text, &defaults());
        assert!(matches!(
            parse(r#"{"instances":[{"id":"x-1"}]}"#),
            Err(ParseError::Config(ConfigError::InvalidInstanceId(_)))
        ));
        assert!(matches!(
            parse(r#"{"instances":[{"id":"i-0123456789abcdef0"},{"id":"i-0123456789abcdef0"}]}"#),
            Err(ParseError::Config(ConfigError::DuplicateInstanceId(_)))
        ));
        assert!(matches!(
            parse(r#"{"instances":[{"id":"i-0123456789abcdef0","colour":"red"}]}"#),
            Err(ParseError::Json(_))
        ));
        let ok = parse(r#"{"instances":[{"id":"mi-0123456789abcdef0"}]}"#);
        assert!(matches!(ok, Ok(ref v) if v[0].instance.agent_version == DEFAULT_AGENT_VERSION));
        assert!(matches!(
            parse(r#"{"instances":[{"id":"i-0123456789abcdef0","job_ack_delay":"5"}]}"#),
            Err(ParseError::Config(ConfigError::InvalidDuration {
                field: "job_ack_delay",
                ..
            }))
        ));
        assert!(matches!(
            parse(r#"{"instances":[{"id":"i-0123456789abcdef0","restart_after":"5s"}]}"#),
            Err(ParseError::Config(ConfigError::RestartWithoutCrash(_)))
        ));
    }

    #[test]
    fn entries_set_their_own_version_and_faults() {
        let mut defaults = defaults();
        defaults.faults.slowness.job_ack_delay = Duration::from_secs(1);
        defaults.faults.crash = Some(PlannedCrash {
            after: Duration::from_secs(60),
            restart_after: None,
        });
        let text = r#"{"instances":[
            {"id":"i-0123456789abcdef0","agent_version":"2.3.0.0","command_start_delay":"250ms",
             "crash_after":"30s","restart_after":"5s"},
            {"id":"i-0123456789abcdef1"}]}"#;
        let Ok(instances) = parse_instances(text, &defaults) else {
            panic!("the file parses")
        };
        let (old, plain) = (&instances[0], &instances[1]);
        assert_eq!(old.instance.agent_version, "2.3.0.0");
        assert_eq!(
            old.faults,
            InstanceFaults {
                slowness: Slowness {
                    job_ack_delay: Duration::from_secs(1),
                    command_start_delay: Duration::from_millis(250),
                },
                crash: Some(PlannedCrash {
                    after: Duration::from_secs(30),
                    restart_after: Some(Duration::from_secs(5)),
                }),
            }
        );
        assert_eq!(plain.instance.agent_version, DEFAULT_AGENT_VERSION);
        assert_eq!(plain.faults, defaults.faults);
    }
}
