//! How one emulator process is set up: account, default region, PingStatus grace, seed, and the
//! declared instances of the instances file.
//!
//! # The instances file
//!
//! `emulator/instances.example.json` is a complete example. JSON, so that it needs no parser beyond the one the API already uses. Unknown fields are
//! errors, so a misspelt field is caught at start instead of silently ignored:
//!
//! ```json
//! {
//!   "instances": [
//!     {
//!       "id": "i-0123456789abcdef0",
//!       "platform": "Linux",
//!       "platform_name": "Ubuntu",
//!       "platform_version": "22.04",
//!       "agent_version": "3.3.1142.0",
//!       "computer_name": "web-1",
//!       "ip_address": "10.0.0.5",
//!       "tags": { "Env": "dev", "Role": "web" }
//!     },
//!     { "id": "mi-0123456789abcdef1", "platform": "Windows", "online": false,
//!       "region": "eu-west-1", "name": "build-box" }
//!   ]
//! }
//! ```
//!
//! Only `id` is required. `platform` defaults to `Linux`, `agent_version` to
//! [`LATEST_AGENT_VERSION`], `online` to `true`, `region` to the emulator's default region;
//! `name` is the `Name` DescribeInstanceInformation shows. A declared node stays `Online` (or
//! `ConnectionLost` with `"online": false`) until an agent reports for the same id; from then on
//! its pings decide.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::model::instance::{
    LATEST_AGENT_VERSION, MAX_TAGS_PER_RESOURCE, PlatformType, is_valid_agent_version,
    is_valid_instance_id,
};

/// The account every request is served from unless configured otherwise.
pub const DEFAULT_ACCOUNT_ID: &str = "123456789012";

/// The region of requests that carry no SigV4 `Authorization` header.
pub const DEFAULT_REGION: &str = "us-east-1";

/// How long after its last `UpdateInstanceInformation` a node stays `Online` by default: two
/// real-agent health-ping periods (5 min each, spec §9.4).
pub const DEFAULT_PING_GRACE: Duration = Duration::from_secs(600);

/// How long an MDS GetMessages with nothing to deliver is held before it is answered with no
/// messages: the 5 s the recorded service held (`get_messages_hold_s` in
/// agent-accessdenied.jsonl, where empty polls are answered 5.0 s apart).
pub const DEFAULT_GET_MESSAGES_HOLD: Duration = Duration::from_secs(5);

/// Settings of one emulator process.
#[derive(Debug, Clone)]
pub struct Config {
    /// The AWS account all state lives under.
    pub account_id: String,
    /// The region of unsigned requests.
    pub default_region: String,
    /// How long a node stays `Online` after its last report.
    pub ping_grace: Duration,
    /// Seed of the one RNG all ids and tokens come from.
    pub seed: u64,
    /// Nodes that exist from the start.
    pub instances: Vec<DeclaredInstance>,
    /// How long an MDS GetMessages is held when there is nothing to deliver
    /// ([`DEFAULT_GET_MESSAGES_HOLD`]; tests shorten it).
    pub get_messages_hold: Duration,
}

impl Config {
    /// The settings the binary uses when given no flags, with the given seed and no declared
    /// instances.
    pub fn local(seed: u64) -> Config {
        Config {
            account_id: DEFAULT_ACCOUNT_ID.to_owned(),
            default_region: DEFAULT_REGION.to_owned(),
            ping_grace: DEFAULT_PING_GRACE,
            seed,
            instances: Vec::new(),
            get_messages_hold: DEFAULT_GET_MESSAGES_HOLD,
        }
    }
}

/// The top level of the instances file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstancesFile {
    /// The declared nodes.
    pub instances: Vec<DeclaredInstance>,
}

/// One node of the instances file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredInstance {
    /// `i-` and 8 or 17 word characters, or `mi-` and 17.
    pub id: String,
    /// `Linux` (default), `Windows` or `MacOS`.
    #[serde(default = "default_platform")]
    pub platform: String,
    /// `PlatformName`, e.g. `Ubuntu`.
    #[serde(default)]
    pub platform_name: Option<String>,
    /// `PlatformVersion`, e.g. `22.04`.
    #[serde(default)]
    pub platform_version: Option<String>,
    /// `AgentVersion`; defaults to the newest known.
    #[serde(default = "default_agent_version")]
    pub agent_version: String,
    /// `ComputerName`.
    #[serde(default)]
    pub computer_name: Option<String>,
    /// `IPAddress`.
    #[serde(default)]
    pub ip_address: Option<String>,
    /// `Name`.
    #[serde(default)]
    pub name: Option<String>,
    /// Tags, key to value.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// `false` makes the node `ConnectionLost` from the start.
    #[serde(default = "default_online")]
    pub online: bool,
    /// The region the node lives in; the emulator's default region if absent.
    #[serde(default)]
    pub region: Option<String>,
}

fn default_platform() -> String {
    "Linux".to_owned()
}

fn default_agent_version() -> String {
    LATEST_AGENT_VERSION.to_owned()
}

fn default_online() -> bool {
    true
}

/// Why the instances file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read instances file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid JSON of the expected shape.
    #[error(
        "instances file {path} is not valid: {source} (expected {{\"instances\": [{{\"id\": \"i-…\", …}}]}})"
    )]
    Parse {
        /// The file.
        path: String,
        /// The JSON error, with line and column.
        source: serde_json::Error,
    },
    /// A declared node has a bad field.
    #[error("instances file {path}: instance {index} ({id}): {problem}")]
    Invalid {
        /// The file.
        path: String,
        /// Position in the `instances` array, from 0.
        index: usize,
        /// The node's id as written.
        id: String,
        /// What is wrong and what would be right.
        problem: String,
    },
}

/// Reads and checks an instances file.
pub fn load_instances_file(path: &Path) -> Result<Vec<DeclaredInstance>, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: shown.clone(),
        source,
    })?;
    parse_instances(&text, &shown)
}

/// Parses and checks the text of an instances file; `path` only labels errors.
pub fn parse_instances(text: &str, path: &str) -> Result<Vec<DeclaredInstance>, ConfigError> {
    let file: InstancesFile = serde_json::from_str(text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source,
    })?;
    let mut seen = std::collections::HashSet::new();
    for (index, node) in file.instances.iter().enumerate() {
        let invalid = |problem: String| ConfigError::Invalid {
            path: path.to_owned(),
            index,
            id: node.id.clone(),
            problem,
        };
        if !is_valid_instance_id(&node.id) {
            return Err(invalid(
                "id must be i- and 8 or 17 letters/digits, or mi- and 17".to_owned(),
            ));
        }
        if !seen.insert((node.region.clone(), node.id.clone())) {
            return Err(invalid("declared twice in the same region".to_owned()));
        }
        if PlatformType::parse(&node.platform).is_none() {
            return Err(invalid(format!(
                "platform {:?} is not one of Windows, Linux, MacOS",
                node.platform
            )));
        }
        if !is_valid_agent_version(&node.agent_version) {
            return Err(invalid(format!(
                "agent_version {:?} must look like 3.3.1142.0",
                node.agent_version
            )));
        }
        if node.tags.len() > MAX_TAGS_PER_RESOURCE {
            return Err(invalid(format!(
                "at most {MAX_TAGS_PER_RESOURCE} tags per instance"
            )));
        }
    }
    Ok(file.instances)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_entry_gets_defaults() {
        let nodes = parse_instances(r#"{"instances":[{"id":"i-01234567"}]}"#, "t").unwrap();
        assert_eq!(nodes[0].platform, "Linux");
        assert_eq!(nodes[0].agent_version, LATEST_AGENT_VERSION);
        assert!(nodes[0].online);
        assert!(nodes[0].region.is_none());
    }

    #[test]
    fn example_file_is_valid() {
        let nodes = parse_instances(include_str!("../instances.example.json"), "example").unwrap();
        assert_eq!(nodes.len(), 3);
        assert!(!nodes[1].online);
        assert_eq!(nodes[2].region.as_deref(), Some("eu-west-1"));
    }

    #[test]
    fn rejects_misspelt_field_and_bad_values() {
        let err = parse_instances(r#"{"instances":[{"id":"i-01234567","onlin":false}]}"#, "t")
            .unwrap_err();
        assert!(err.to_string().contains("unknown field `onlin`"), "{err}");
        let err = parse_instances(r#"{"instances":[{"id":"i-1"}]}"#, "t").unwrap_err();
        assert!(err.to_string().contains("instance 0 (i-1)"), "{err}");
        let err = parse_instances(
            r#"{"instances":[{"id":"i-01234567","platform":"linux"}]}"#,
            "t",
        )
        .unwrap_err();
        assert!(err.to_string().contains("Windows, Linux, MacOS"), "{err}");
    }
}
