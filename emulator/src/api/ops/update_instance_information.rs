//! `UpdateInstanceInformation`: how an agent reports itself (spec §9.4). The first call after
//! start carries only `AgentName`, `AgentVersion`, `InstanceId` and `PlatformType`; the health
//! pings after it carry the full set. Either creates the node on first sight and refreshes its
//! `LastPingDateTime`. The response is `{}`.
//!
//! This operation is not in the public model; its members are those the real agent sends.
//! Members the emulator does not keep (`AvailabilityZone`, `AvailabilityZoneId`, …) are
//! accepted and ignored. An empty string means "not reported" (the agent sends `""` for what
//! it does not know yet), so it neither fails validation nor erases an earlier value.

use serde::{Deserialize, Serialize};

use crate::api::error::ApiError;
use crate::api::validate::Violations;
use crate::model::instance::{
    ManagedInstance, PlatformType, is_valid_agent_version, is_valid_instance_id,
};
use crate::model::{Emulator, Scope};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Request {
    instance_id: Option<String>,
    agent_version: Option<String>,
    agent_name: Option<String>,
    agent_status: Option<String>,
    platform_type: Option<String>,
    platform_name: Option<String>,
    platform_version: Option<String>,
    #[serde(rename = "IPAddress")]
    ip_address: Option<String>,
    computer_name: Option<String>,
    #[serde(rename = "SSMConnectionChannel")]
    ssm_connection_channel: Option<String>,
}

/// `{}`.
#[derive(Debug, Serialize)]
pub(crate) struct Response {}

/// The value of a member, unless absent or empty.
fn reported(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|s| !s.is_empty())
}

impl Request {
    pub(crate) fn validate(&self) -> Result<(), ApiError> {
        let mut v = Violations::new();
        if let Some(id) = v.required("instanceId", &self.instance_id) {
            v.pattern(
                "instanceId",
                id,
                is_valid_instance_id(id),
                r"(^i-(\w{8}|\w{17})$)|(^mi-\w{17}$)",
            );
        }
        if let Some(version) = reported(&self.agent_version) {
            v.pattern(
                "agentVersion",
                version,
                is_valid_agent_version(version),
                r"^[0-9]{1,6}(\.[0-9]{1,6}){2,3}$",
            );
        }
        if let Some(platform) = reported(&self.platform_type) {
            v.one_of("platformType", platform, &["Windows", "Linux", "MacOS"]);
        }
        if let Some(ip) = reported(&self.ip_address) {
            v.length("iPAddress", ip, 1, 46);
        }
        if let Some(name) = reported(&self.computer_name) {
            v.length("computerName", name, 1, 255);
        }
        v.finish()
    }

    pub(crate) fn apply(self, emu: &Emulator, scope: &Scope) -> Response {
        let now = emu.now();
        let id = self.instance_id.clone().unwrap_or_default();
        emu.with_state(|state| {
            let node = state
                .region_mut(scope)
                .instances
                .entry(id.clone())
                .or_insert_with(|| ManagedInstance::new(id, now));
            let keep = |field: &mut Option<String>, value: &Option<String>| {
                if let Some(v) = reported(value) {
                    *field = Some(v.to_owned());
                }
            };
            keep(&mut node.agent_version, &self.agent_version);
            keep(&mut node.agent_name, &self.agent_name);
            keep(&mut node.agent_status, &self.agent_status);
            keep(&mut node.platform_name, &self.platform_name);
            keep(&mut node.platform_version, &self.platform_version);
            keep(&mut node.ip_address, &self.ip_address);
            keep(&mut node.computer_name, &self.computer_name);
            if let Some(platform) = reported(&self.platform_type).and_then(PlatformType::parse) {
                node.platform_type = Some(platform);
            }
            // The startup ping sends "" here on purpose (spec §9.4): record it as it is.
            if let Some(channel) = &self.ssm_connection_channel {
                node.connection_channel = Some(channel.clone());
            }
            node.last_ping = Some(now);
            // A real agent now speaks for this node; its declaration no longer decides.
            node.declared_online = None;
        });
        tracing::debug!(instance_id = ?self.instance_id, region = %scope.region, "instance reported");
        Response {}
    }
}
