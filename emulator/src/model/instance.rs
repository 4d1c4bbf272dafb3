//! Managed nodes ("instances"): what the agents report and what the API describes.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// The newest agent version the emulator knows of; `IsLatestVersion` compares against it.
/// It is the agent version the spec was verified against (spec §9).
pub const LATEST_AGENT_VERSION: &str = "3.3.1142.0";

/// Most tags one resource may carry (the real service's limit for managed nodes).
pub const MAX_TAGS_PER_RESOURCE: usize = 50;

/// A managed node in one account and region.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedInstance {
    /// `i-…` (an EC2 instance) or `mi-…` (a hybrid-activated node).
    pub instance_id: String,
    /// Last reported `AgentVersion`, if any report carried one.
    pub agent_version: Option<String>,
    /// Last reported `AgentName`, e.g. `amazon-ssm-agent`.
    pub agent_name: Option<String>,
    /// Last reported `AgentStatus`, e.g. `Active`.
    pub agent_status: Option<String>,
    /// `Windows`, `Linux` or `MacOS`.
    pub platform_type: Option<PlatformType>,
    /// e.g. `Debian GNU/Linux`.
    pub platform_name: Option<String>,
    /// e.g. `12`.
    pub platform_version: Option<String>,
    /// The node's primary IPv4 address as the agent reports it.
    pub ip_address: Option<String>,
    /// The host name as the agent reports it.
    pub computer_name: Option<String>,
    /// `Name` in DescribeInstanceInformation: the activation's default instance name for hybrid
    /// nodes. Only declared instances carry one for now.
    pub name: Option<String>,
    /// The activation a hybrid node registered with (none yet: activations are not emulated).
    pub activation_id: Option<String>,
    /// The IAM role of a hybrid node (none yet).
    pub iam_role: Option<String>,
    /// The `SSMConnectionChannel` of the last full report (`ssmmessages`, `ec2messages` or empty).
    pub connection_channel: Option<String>,
    /// When the node first became known to the emulator.
    pub registration_date: SystemTime,
    /// When the last `UpdateInstanceInformation` arrived; `None` for a declared node that has
    /// never reported.
    pub last_ping: Option<SystemTime>,
    /// Whether the node's control channel is open.
    ///
    /// This is the seam for the control channel (`/v1/control-channel/{id}`, spec §9.1): that
    /// code sets it through [`Emulator::set_connected`](crate::model::Emulator::set_connected)
    /// when the agent's websocket opens and clears it when it closes. A connected node is
    /// `Online` whatever its last ping.
    pub connected: bool,
    /// For a node declared in the instances file that no agent has reported for yet: whether it
    /// is declared online. The first real report clears this, and from then on the node's
    /// liveness comes from its pings and its control channel.
    pub declared_online: Option<bool>,
    /// Tags (`AddTagsToResource` with `ResourceType: ManagedInstance`), sorted by key.
    pub tags: BTreeMap<String, String>,
}

impl ManagedInstance {
    /// A node that has just become known, with nothing reported yet.
    pub fn new(instance_id: String, now: SystemTime) -> ManagedInstance {
        ManagedInstance {
            instance_id,
            agent_version: None,
            agent_name: None,
            agent_status: None,
            platform_type: None,
            platform_name: None,
            platform_version: None,
            ip_address: None,
            computer_name: None,
            name: None,
            activation_id: None,
            iam_role: None,
            connection_channel: None,
            registration_date: now,
            last_ping: None,
            connected: false,
            declared_online: None,
            tags: BTreeMap::new(),
        }
    }

    /// `EC2Instance` for `i-…`, `ManagedInstance` for `mi-…`.
    pub fn resource_type(&self) -> ResourceType {
        ResourceType::of_instance_id(&self.instance_id)
    }

    /// The node's PingStatus at `now`, given the configured grace period.
    ///
    /// `Online` while the control channel is open, or while the last report is no older than
    /// `grace`; `ConnectionLost` otherwise. A declared node that never reported is what its
    /// declaration says.
    pub fn ping_status(&self, now: SystemTime, grace: Duration) -> PingStatus {
        if self.connected {
            return PingStatus::Online;
        }
        if let Some(online) = self.declared_online {
            return if online {
                PingStatus::Online
            } else {
                PingStatus::ConnectionLost
            };
        }
        match self.last_ping {
            // A ping stamped after `now` (a clock set backwards) counts as fresh.
            Some(at) if now.duration_since(at).unwrap_or_default() <= grace => PingStatus::Online,
            _ => PingStatus::ConnectionLost,
        }
    }

    /// Whether the agent reports the newest version the emulator knows of.
    pub fn is_latest_version(&self) -> bool {
        self.agent_version.as_deref() == Some(LATEST_AGENT_VERSION)
    }
}

/// `PingStatus` of DescribeInstanceInformation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PingStatus {
    /// The agent reported within the grace period, or its control channel is open.
    Online,
    /// The agent has been silent for longer than the grace period.
    ConnectionLost,
    /// Deprecated by AWS; never produced, but accepted in filters.
    Inactive,
}

impl PingStatus {
    /// Every value, in the order AWS documents them.
    pub const ALL: [PingStatus; 3] = [
        PingStatus::Online,
        PingStatus::ConnectionLost,
        PingStatus::Inactive,
    ];

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PingStatus::Online => "Online",
            PingStatus::ConnectionLost => "ConnectionLost",
            PingStatus::Inactive => "Inactive",
        }
    }
}

/// `PlatformType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformType {
    /// Windows.
    Windows,
    /// Linux.
    Linux,
    /// macOS.
    MacOS,
}

impl PlatformType {
    /// Every value, in the order AWS documents them.
    pub const ALL: [PlatformType; 3] = [
        PlatformType::Windows,
        PlatformType::Linux,
        PlatformType::MacOS,
    ];

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PlatformType::Windows => "Windows",
            PlatformType::Linux => "Linux",
            PlatformType::MacOS => "MacOS",
        }
    }

    /// Parses the wire spelling (case-sensitive, as the service is).
    pub fn parse(s: &str) -> Option<PlatformType> {
        PlatformType::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// `ResourceType` of a managed node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceType {
    /// An EC2 instance (`i-…`).
    EC2Instance,
    /// A hybrid-activated node (`mi-…`).
    ManagedInstance,
}

impl ResourceType {
    /// The resource type an instance id implies.
    pub fn of_instance_id(id: &str) -> ResourceType {
        if id.starts_with("mi-") {
            ResourceType::ManagedInstance
        } else {
            ResourceType::EC2Instance
        }
    }

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceType::EC2Instance => "EC2Instance",
            ResourceType::ManagedInstance => "ManagedInstance",
        }
    }

    /// `SourceType` of DescribeInstanceInformation for this kind of node.
    pub fn source_type(self) -> &'static str {
        match self {
            ResourceType::EC2Instance => "AWS::EC2::Instance",
            ResourceType::ManagedInstance => "AWS::SSM::ManagedInstance",
        }
    }
}

/// Whether `id` is a well-formed managed node id: `i-` and 8 or 17 word characters, or `mi-`
/// and 17 (the `InstanceId` pattern of the model, spec §10).
pub fn is_valid_instance_id(id: &str) -> bool {
    let word = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if let Some(rest) = id.strip_prefix("mi-") {
        rest.len() == 17 && word(rest)
    } else if let Some(rest) = id.strip_prefix("i-") {
        (rest.len() == 8 || rest.len() == 17) && word(rest)
    } else {
        false
    }
}

/// Whether `v` matches the model's `AgentVersion` pattern `^[0-9]{1,6}(\.[0-9]{1,6}){2,3}$`.
pub fn is_valid_agent_version(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    (3..=4).contains(&parts.len())
        && parts
            .iter()
            .all(|p| (1..=6).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn instance_id_pattern() {
        assert!(is_valid_instance_id("i-0123456789abcdef0"));
        assert!(is_valid_instance_id("i-01234567"));
        assert!(is_valid_instance_id("mi-0123456789abcdef0"));
        assert!(!is_valid_instance_id("mi-01234567"));
        assert!(!is_valid_instance_id("i-0123"));
        assert!(!is_valid_instance_id("x-0123456789abcdef0"));
        assert!(!is_valid_instance_id("i-0123456789abcdef-"));
    }

    #[test]
    fn agent_version_pattern() {
        assert!(is_valid_agent_version("3.3.1142.0"));
        assert!(is_valid_agent_version("2.0.672"));
        assert!(!is_valid_agent_version("3.3"));
        assert!(!is_valid_agent_version("3.3.1142.0.1"));
        assert!(!is_valid_agent_version("3.x.1.0"));
        assert!(!is_valid_agent_version("1234567.0.0"));
    }

    #[test]
    fn ping_status_follows_grace_then_control_channel() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000);
        let grace = Duration::from_secs(60);
        let mut node = ManagedInstance::new("i-0123456789abcdef0".into(), t0);
        assert_eq!(node.ping_status(t0, grace), PingStatus::ConnectionLost);
        node.last_ping = Some(t0);
        assert_eq!(node.ping_status(t0 + grace, grace), PingStatus::Online);
        let late = t0 + grace + Duration::from_millis(1);
        assert_eq!(node.ping_status(late, grace), PingStatus::ConnectionLost);
        node.connected = true;
        assert_eq!(node.ping_status(late, grace), PingStatus::Online);
    }
}
