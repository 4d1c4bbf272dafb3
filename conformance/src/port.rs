//! Port forwarding pieces of `ssm-session` (spec §7): the handshake Properties and the
//! plugin's version comparison.

use serde::Deserialize;

/// The handshake `Properties` the plugin reads (§7.1); everything is a string.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Properties {
    /// Destination port on the instance side.
    #[serde(rename = "portNumber")]
    pub port_number: String,
    /// Local listen port; empty means "0", an OS-chosen port.
    #[serde(rename = "localPortNumber")]
    pub local_port_number: String,
    /// `LocalPortForwarding` selects basic/mux mode; anything else stdin/stdout mode.
    #[serde(rename = "type")]
    pub kind: String,
    /// `unix` listens on [`Properties::local_unix_socket`] instead of TCP.
    #[serde(rename = "localConnectionType")]
    pub local_connection_type: String,
    /// The Unix socket path.
    #[serde(rename = "localUnixSocket")]
    pub local_unix_socket: String,
}

impl Properties {
    /// Reads the Properties value of the SessionType action; anything that is not an object of
    /// strings gives the defaults.
    pub fn from_value(value: &serde_json::Value) -> Properties {
        serde_json::from_value(value.clone()).unwrap_or_default()
    }

    /// True for `type: LocalPortForwarding` (basic or mux mode).
    pub fn is_local_port_forwarding(&self) -> bool {
        self.kind == "LocalPortForwarding"
    }
}

/// The plugin's `versionutil` comparison (§7.2): dot-split, the same number of numeric
/// components on both sides. `None` when the versions cannot be compared, which the plugin
/// treats as "not greater".
pub fn version_greater(version: &str, than: &str) -> Option<bool> {
    let parse = |v: &str| {
        v.split('.')
            .map(|part| part.parse::<u64>().ok())
            .collect::<Option<Vec<u64>>>()
    };
    let (a, b) = (parse(version)?, parse(than)?);
    if a.len() != b.len() {
        return None;
    }
    Some(a > b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_like_the_plugin() {
        assert_eq!(version_greater("3.3.1142.0", "3.0.196.0"), Some(true));
        assert_eq!(version_greater("3.0.196.0", "3.0.196.0"), Some(false));
        assert_eq!(version_greater("3.3.1142", "3.0.196.0"), None);
        assert_eq!(version_greater("3.1.1511.0", "3.1.1511.0"), Some(false));
        assert_eq!(version_greater("3.10.0.0", "3.9.99.0"), Some(true));
    }
}
