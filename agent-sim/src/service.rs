//! The agent's HTTP calls: the SSM API (`UpdateInstanceInformation`, `AddTagsToResource`) and
//! MGS `CreateControlChannel` / `CreateDataChannel` (§9.1, §9.4), with the bodies and headers the real agent sends.
//!
//! Requests carry an `Authorization` header shaped like SigV4 (credential scope with the
//! configured region, so that the emulator files the instance under it) but with a placeholder
//! signature: agent-sim has no credentials, and the emulator does not verify signatures.

use std::time::SystemTime;

use serde::Serialize;

use crate::command::agent_time;
use crate::config::InstanceConfig;
use crate::net::{Connector, NetError, content_type, go_user_agent};

/// `SSMConnectionChannel` of the health pings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectionChannel {
    /// `""`: the startup ping, before MGS is decided.
    Undecided,
    /// `ssmmessages`: the control channel is up.
    Mgs,
    /// `ec2messages`: MGS cannot be reached.
    Mds,
}

impl ConnectionChannel {
    fn as_str(self) -> &'static str {
        match self {
            ConnectionChannel::Undecided => "",
            ConnectionChannel::Mgs => "ssmmessages",
            ConnectionChannel::Mds => "ec2messages",
        }
    }
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("{call} answered HTTP {status}: {body}")]
    Status {
        call: &'static str,
        status: u16,
        body: String,
    },
    #[error("CreateControlChannel was denied (AccessDeniedException)")]
    AccessDenied,
    #[error("{call} answered 201 without a TokenValue: {body}")]
    NoToken { call: &'static str, body: String },
}

/// The first call after start, the hibernation check (§9.4 step 1).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct MinimalInstanceInformation<'a> {
    agent_name: &'a str,
    agent_version: &'a str,
    instance_id: &'a str,
    platform_type: &'a str,
}

/// Every later health ping (§9.4 step 2), in the real agent's member order.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct InstanceInformation<'a> {
    agent_name: &'a str,
    agent_status: &'a str,
    agent_version: &'a str,
    availability_zone: &'a str,
    availability_zone_id: &'a str,
    computer_name: &'a str,
    #[serde(rename = "IPAddress")]
    ip_address: &'a str,
    instance_id: &'a str,
    platform_name: &'a str,
    platform_type: &'a str,
    platform_version: &'a str,
    #[serde(rename = "SSMConnectionChannel")]
    ssm_connection_channel: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct AddTagsToResource<'a> {
    resource_type: &'a str,
    resource_id: &'a str,
    tags: Vec<Tag<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Tag<'a> {
    key: &'a str,
    value: &'a str,
}

/// The CreateDataChannel request body (§9.1), in the real agent's key order.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CreateDataChannel<'a> {
    message_schema_version: &'a str,
    request_id: &'a str,
    client_id: &'a str,
}

/// The CreateControlChannel request body (§9.1).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CreateControlChannel<'a> {
    message_schema_version: &'a str,
    request_id: &'a str,
}

const AGENT_NAME: &str = "amazon-ssm-agent";
const PLATFORM_TYPE: &str = "Linux";

/// The HTTP side of one agent.
#[derive(Debug, Clone)]
pub(crate) struct Service {
    pub(crate) connector: Connector,
    pub(crate) region: String,
}

impl Service {
    /// `UpdateInstanceInformation` with the four members of the startup check.
    pub(crate) async fn report_minimal(&self, instance: &InstanceConfig) -> Result<(), CallError> {
        let body = MinimalInstanceInformation {
            agent_name: AGENT_NAME,
            agent_version: &instance.agent_version,
            instance_id: &instance.instance_id,
            platform_type: PLATFORM_TYPE,
        };
        self.ssm("UpdateInstanceInformation", instance, &body).await
    }

    /// A health ping: `UpdateInstanceInformation` with every member.
    pub(crate) async fn report(
        &self,
        instance: &InstanceConfig,
        channel: ConnectionChannel,
    ) -> Result<(), CallError> {
        let body = InstanceInformation {
            agent_name: AGENT_NAME,
            agent_status: "Active",
            agent_version: &instance.agent_version,
            availability_zone: "",
            availability_zone_id: "",
            computer_name: &instance.computer_name,
            ip_address: &instance.ip_address,
            instance_id: &instance.instance_id,
            platform_name: &instance.platform_name,
            platform_type: PLATFORM_TYPE,
            platform_version: &instance.platform_version,
            ssm_connection_channel: channel.as_str(),
        };
        self.ssm("UpdateInstanceInformation", instance, &body).await
    }

    /// `AddTagsToResource` for the instance's configured tags (none: no call).
    pub(crate) async fn apply_tags(&self, instance: &InstanceConfig) -> Result<(), CallError> {
        if instance.tags.is_empty() {
            return Ok(());
        }
        let body = AddTagsToResource {
            resource_type: "ManagedInstance",
            resource_id: &instance.instance_id,
            tags: instance
                .tags
                .iter()
                .map(|(key, value)| Tag { key, value })
                .collect(),
        };
        self.ssm("AddTagsToResource", instance, &body).await
    }

    /// `POST /v1/control-channel/<id>`; the token of the 201 answer.
    pub(crate) async fn create_control_channel(
        &self,
        instance_id: &str,
        request_id: &str,
    ) -> Result<String, CallError> {
        let body = CreateControlChannel {
            message_schema_version: "1.0",
            request_id,
        };
        let path = format!("/v1/control-channel/{instance_id}");
        self.create_channel("CreateControlChannel", &path, &body)
            .await
    }

    /// `POST /v1/data-channel/<sessionId>` (§9.1); the token of the 201 answer.
    pub(crate) async fn create_data_channel(
        &self,
        session_id: &str,
        request_id: &str,
    ) -> Result<String, CallError> {
        let body = CreateDataChannel {
            message_schema_version: "1.0",
            request_id,
            client_id: "",
        };
        let path = format!("/v1/data-channel/{session_id}");
        self.create_channel("CreateDataChannel", &path, &body).await
    }

    /// One MGS REST call: a 201 answer with a `TokenValue` element, or an error.
    async fn create_channel<T: Serialize>(
        &self,
        call: &'static str,
        path: &str,
        body: &T,
    ) -> Result<String, CallError> {
        let body = serde_json::to_vec(body).expect("plain strings serialize");
        let (amz_date, authorization) =
            self.authorization("ssmmessages", "content-type;host;x-amz-date");
        let headers = [
            go_user_agent(),
            ("authorization", authorization),
            content_type("application/json"),
            ("x-amz-date", amz_date),
        ];
        let (status, response) = self.connector.post(path, &headers, body).await?;
        let text = String::from_utf8_lossy(&response).into_owned();
        if call == "CreateControlChannel" && text.contains("<AccessDeniedException>") {
            return Err(CallError::AccessDenied);
        }
        if status.as_u16() != 201 {
            return Err(CallError::Status {
                call,
                status: status.as_u16(),
                body: text,
            });
        }
        xml_element(&text, "TokenValue").ok_or(CallError::NoToken { call, body: text })
    }

    /// The headers of the control- and data-channel websocket upgrades (§9.1), besides the
    /// standard ones.
    pub(crate) fn upgrade_headers(&self) -> Vec<(&'static str, String)> {
        let (amz_date, authorization) = self.authorization("ssmmessages", "host;x-amz-date");
        vec![
            go_user_agent(),
            ("authorization", authorization),
            ("x-amz-date", amz_date),
        ]
    }

    async fn ssm<T: Serialize>(
        &self,
        operation: &'static str,
        instance: &InstanceConfig,
        body: &T,
    ) -> Result<(), CallError> {
        let body = serde_json::to_vec(body).expect("plain strings serialize");
        let (amz_date, authorization) = self.authorization(
            "ssm",
            "content-length;content-type;host;x-amz-date;x-amz-target",
        );
        let headers = [
            (
                "user-agent",
                format!(
                    "aws-sdk-go/1.51.20 (go1.23.5; linux; amd64) amazon-ssm-agent/{}",
                    instance.agent_version
                ),
            ),
            ("authorization", authorization),
            content_type("application/x-amz-json-1.1"),
            ("x-amz-date", amz_date),
            ("x-amz-target", format!("AmazonSSM.{operation}")),
        ];
        let (status, response) = self.connector.post("/", &headers, body).await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(CallError::Status {
                call: operation,
                status: status.as_u16(),
                body: String::from_utf8_lossy(&response).into_owned(),
            })
        }
    }

    /// `X-Amz-Date` and a SigV4-shaped `Authorization` with a placeholder signature.
    fn authorization(&self, service: &str, signed_headers: &str) -> (String, String) {
        // `2026-11-22T22:41:05.881Z` → `20261122T224105Z`.
        let iso = agent_time::format(SystemTime::now());
        let compact: String = iso[..19]
            .chars()
            .filter(|c| *c != '-' && *c != ':')
            .collect();
        let amz_date = format!("{compact}Z");
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential=AKIDAGENTSIM/{}/{}/{service}/aws4_request, \
             SignedHeaders={signed_headers}, Signature={}",
            &compact[..8],
            self.region,
            "0".repeat(64)
        );
        (amz_date, authorization)
    }
}

/// The text of the first `<name>…</name>` element anywhere in `xml`, entities decoded: all the
/// agent reads of a CreateControlChannel answer (the root element's name does not matter).
pub(crate) fn xml_element(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}");
    let mut rest = xml;
    loop {
        let at = rest.find(&open)?;
        let after = &rest[at + open.len()..];
        // `<TokenValueX>` is another element; `<TokenValue>` and `<TokenValue attr="…">` match.
        match after.chars().next() {
            Some('>') | Some(' ') | Some('\t') | Some('\r') | Some('\n') => {
                let start = after.find('>')? + 1;
                if after[..start].ends_with("/>") {
                    return Some(String::new());
                }
                let body = &after[start..];
                let end = body.find(&format!("</{name}"))?;
                return Some(decode_entities(&body[..end]));
            }
            _ => rest = after,
        }
    }
}

fn decode_entities(text: &str) -> String {
    let text = text.trim();
    if let Some(cdata) = text
        .strip_prefix("<![CDATA[")
        .and_then(|t| t.strip_suffix("]]>"))
    {
        return cdata.to_owned();
    }
    const ENTITIES: [(&str, &str); 5] = [
        ("&amp;", "&"),
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&quot;", "\""),
        ("&apos;", "'"),
    ];
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let (replacement, len) = ENTITIES
            .iter()
            .find(|(entity, _)| tail.starts_with(entity))
            .map_or(("&", 1), |(entity, ch)| (*ch, entity.len()));
        out.push_str(replacement);
        rest = &tail[len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_from_the_recorded_answer() {
        let xml = "<CreateControlChannelResponse><MessageSchemaVersion>1.0</MessageSchemaVersion>\
                   <TokenValue>cc-token-5f85b4cec455</TokenValue></CreateControlChannelResponse>";
        assert_eq!(
            xml_element(xml, "TokenValue").as_deref(),
            Some("cc-token-5f85b4cec455")
        );
        assert_eq!(
            xml_element(xml, "MessageSchemaVersion").as_deref(),
            Some("1.0")
        );
    }

    #[test]
    fn token_in_any_root_with_entities_and_attributes() {
        let xml = r#"<?xml version="1.0"?><Whatever xmlns="x"><TokenValueOld>no</TokenValueOld><TokenValue kind="a">a&amp;b&lt;c</TokenValue></Whatever>"#;
        assert_eq!(xml_element(xml, "TokenValue").as_deref(), Some("a&b<c"));
        assert_eq!(xml_element("<R></R>", "TokenValue"), None);
    }
}
