//! The fault rules as JSON (camelCase), the shape `POST /_emulator/faults` takes and scenario
//! files use. Every rule is either a `relay` rule (frames of the data channel) or an `api`
//! rule (SSM API requests):
//!
//! ```json
//! {"relay": {"action": {"drop": {"probability": 0.01}}, "direction": "agentToClient"}}
//! {"relay": {"action": {"close": {"code": 1000, "reason": "Bye"}}, "afterFrames": 20,
//!            "sessionId": "alice-0123456789abcdef0"}}
//! {"api": {"operation": "SendCommand", "error": "ThrottlingException", "rate": 0.5}}
//! {"api": {"operation": "GetCommandInvocation", "error": "InvocationDoesNotExist",
//!          "firstReads": 2}}
//! {"api": {"operation": "DescribeInstanceInformation", "latencyMs": 300}}
//! {"agentLink": {"instanceId": "i-0123456789abcdef0", "durationMs": 30000}}
//! {"sessionService": {}}
//! ```
//!
//! `agentLink` and `sessionService` rules act on the agents' side of the emulator (see
//! [`super::link`]).
//!
//! [`FaultRule::check`] says what is wrong with a rule in words a user can act on.

use serde::{Deserialize, Serialize};

use crate::sessions::{Direction, End};

/// One fault rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum FaultRule {
    /// A fault on the frames of the session data channel (the relay).
    Relay(RelayRule),
    /// A fault on SSM API requests.
    Api(ApiRule),
    /// The agent link is cut ("proxy loss"): every agent-facing endpoint (ssm, ec2messages,
    /// ssmmessages) is unreachable for the agent(s), and their open channels are aborted.
    AgentLink(LinkRule),
    /// "VPC endpoint missing": only the session service (ssmmessages: control and data
    /// channels) is unreachable for the agent(s); the SSM API still answers.
    SessionService(LinkRule),
}

/// Which agents an `agentLink` or `sessionService` rule cuts off, and for how long.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LinkRule {
    /// Only this instance's agent; every agent if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// The rule removes itself this many milliseconds (real time) after it was added; it
    /// stays until removed if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// A fault on relayed frames: which sessions and which direction it watches, what it does and,
/// for the one-shot actions (`close`, `pausePublication`, `startPublication`), when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RelayRule {
    /// What happens.
    pub action: RelayAction,
    /// Only this session. With neither `sessionId` nor `instanceId`: every session, including
    /// those started later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Only the sessions whose target is this instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// Only frames going this way; both ways if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<DirectionSpec>,
    /// One-shot actions: fire in a session once this many frames (of `direction`) went
    /// through it since the rule was added, right after the last of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_frames: Option<u64>,
    /// One-shot actions: fire in a session once this many bytes of frames went through it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_bytes: Option<u64>,
    /// One-shot actions: fire this many milliseconds after the rule was added, in every
    /// matching session live then. With no trigger at all a one-shot action fires at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_ms: Option<u64>,
}

/// A direction as rules name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DirectionSpec {
    /// Client (plugin) to agent.
    ClientToAgent,
    /// Agent to client.
    AgentToClient,
}

impl DirectionSpec {
    /// Whether a frame going `direction` is watched.
    pub fn matches(self, direction: Direction) -> bool {
        matches!(
            (self, direction),
            (DirectionSpec::ClientToAgent, Direction::ClientToAgent)
                | (DirectionSpec::AgentToClient, Direction::AgentToClient)
        )
    }
}

/// An end of a session as rules name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EndSpec {
    /// The client (plugin).
    #[default]
    Client,
    /// The agent.
    Agent,
}

impl From<EndSpec> for End {
    fn from(end: EndSpec) -> End {
        match end {
            EndSpec::Client => End::Client,
            EndSpec::Agent => End::Agent,
        }
    }
}

/// What a relay rule does. Per-frame actions apply to every watched frame; one-shot actions
/// fire once per session (see the triggers of [`RelayRule`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum RelayAction {
    /// Drop the frame. The sender resends it (§3.3): the plugin every 100 ms once its RTO
    /// passed, the agent once per RTO; a dropped ack is not resent, its frame is.
    Drop {
        /// Chance per frame, 0 to 1 (default 1).
        #[serde(default = "always")]
        probability: f64,
    },
    /// Send the frame twice. The plugin drops the copy silently, the agent re-acks it (§3.2).
    Duplicate {
        /// Chance per frame, 0 to 1 (default 1).
        #[serde(default = "always")]
        probability: f64,
    },
    /// Keep the frame back and send it after 1 to `window` later frames of the same direction
    /// (chosen at random). A kept frame waits for later frames: the senders' resends (§3.3)
    /// bring them when traffic stops. Removing the rule sends what it kept.
    Reorder {
        /// Chance per frame of being kept back, 0 to 1 (default 1).
        #[serde(default = "always")]
        probability: f64,
        /// The most later frames a kept frame waits for (at least 1).
        window: u32,
    },
    /// Hold the frame `ms` plus up to `jitterMs` more. Frames behind it wait (order holds).
    Delay {
        /// The fixed part, in milliseconds.
        ms: u64,
        /// The random extra, 0 to this many milliseconds (default 0).
        #[serde(default)]
        jitter_ms: u64,
    },
    /// Pace the frames of each watched direction of a session to this many bytes a second.
    Bandwidth {
        /// Bytes per second (at least 1).
        bytes_per_second: u64,
    },
    /// Damage the frame (§1.4).
    Corrupt {
        /// What to damage.
        what: Corruption,
        /// Chance per frame, 0 to 1 (default 1).
        #[serde(default = "always")]
        probability: f64,
    },
    /// Stop forwarding (every watched frame vanishes) but keep both sockets open.
    Blackhole {},
    /// One-shot: close an end's websocket with a close frame.
    Close {
        /// Whose socket (default the client's).
        #[serde(default)]
        end: EndSpec,
        /// Close code (default 1000, what the real service sends).
        #[serde(default = "normal_close")]
        code: u16,
        /// Close reason (default "Bye", what the real service sends).
        #[serde(default = "bye")]
        reason: String,
    },
    /// One-shot: send `pause_publication` to the agent (§5): it stops sending and resending
    /// until `start_publication`, or until it receives any input or ack.
    PausePublication {},
    /// One-shot: send `start_publication` to the agent (§5).
    StartPublication {},
}

/// What [`RelayAction::Corrupt`] damages, and what each reader does with it (§1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Corruption {
    /// Flip the first byte of PayloadDigest. The plugin drops such a frame without an ack
    /// when PayloadLength is not 0 (so the agent resends it); the agent never checks the
    /// digest and takes the frame as it is.
    Digest,
    /// Zero CreatedDate. Both readers refuse the frame (no ack), so the sender resends it.
    Header,
}

fn always() -> f64 {
    1.0
}

fn normal_close() -> u16 {
    1000
}

fn bye() -> String {
    "Bye".to_owned()
}

impl RelayAction {
    /// Whether the action fires once per session rather than on every frame.
    pub fn is_one_shot(&self) -> bool {
        matches!(
            self,
            RelayAction::Close { .. }
                | RelayAction::PausePublication {}
                | RelayAction::StartPublication {}
        )
    }

    /// The action's name as in JSON, for counters and logs.
    pub fn name(&self) -> &'static str {
        match self {
            RelayAction::Drop { .. } => "drop",
            RelayAction::Duplicate { .. } => "duplicate",
            RelayAction::Reorder { .. } => "reorder",
            RelayAction::Delay { .. } => "delay",
            RelayAction::Bandwidth { .. } => "bandwidth",
            RelayAction::Corrupt { .. } => "corrupt",
            RelayAction::Blackhole {} => "blackhole",
            RelayAction::Close { .. } => "close",
            RelayAction::PausePublication {} => "pausePublication",
            RelayAction::StartPublication {} => "startPublication",
        }
    }
}

/// A fault on SSM API requests (`POST /`, `X-Amz-Target: AmazonSSM.<operation>`): an error
/// instead of the answer, added latency, or both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiRule {
    /// The operation, e.g. `SendCommand`. Absent: every operation, including the ones agents
    /// call (UpdateInstanceInformation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// The error to answer with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiFaultError>,
    /// Chance per request of the error, 0 to 1 (default 1).
    #[serde(default = "always")]
    pub rate: f64,
    /// `InvocationDoesNotExist` only: the first this-many GetCommandInvocation reads of each
    /// CommandId fail, later ones get the real answer (what a client sees right after
    /// SendCommand on the real service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_reads: Option<u32>,
    /// Milliseconds added before every matching request is answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
}

/// The errors an API rule can inject (spec §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApiFaultError {
    /// HTTP 400 `{"__type":"ThrottlingException","message":"Rate exceeded"}`: botocore and the
    /// Rust SDK retry it as throttling.
    ThrottlingException,
    /// HTTP 500: the SDKs retry it as a transient error.
    InternalServerError,
    /// HTTP 400 `InvocationDoesNotExist` for the first `firstReads` GetCommandInvocation reads
    /// of each CommandId.
    InvocationDoesNotExist,
}

/// The largest close code a rule may use (4000–4999 are for applications, RFC 6455 §7.4.2).
const MAX_CLOSE_CODE: u16 = 4999;

impl FaultRule {
    /// What is wrong with the rule, worded so the user can fix it; `None` if it is usable.
    /// `known_operation` says whether the SSM API serves an operation of that name.
    pub fn check(&self, known_operation: impl Fn(&str) -> bool) -> Option<String> {
        match self {
            FaultRule::Relay(rule) => rule.check(),
            FaultRule::Api(rule) => rule.check(known_operation),
            FaultRule::AgentLink(rule) | FaultRule::SessionService(rule) => rule.check(),
        }
    }
}

fn check_probability(name: &str, p: f64) -> Option<String> {
    (!(0.0..=1.0).contains(&p)).then(|| format!("{name} must be between 0 and 1, got {p}"))
}

impl RelayRule {
    fn check(&self) -> Option<String> {
        if self.session_id.is_some() && self.instance_id.is_some() {
            return Some(
                "give sessionId or instanceId, not both (neither: every session)".to_owned(),
            );
        }
        let triggers = [self.after_frames, self.after_bytes, self.after_ms]
            .iter()
            .filter(|t| t.is_some())
            .count();
        if !self.action.is_one_shot() && triggers > 0 {
            return Some(format!(
                "afterFrames, afterBytes and afterMs apply to close, pausePublication and \
                 startPublication only; {} acts on every frame",
                self.action.name()
            ));
        }
        if triggers > 1 {
            return Some("give at most one of afterFrames, afterBytes, afterMs".to_owned());
        }
        if self.after_frames == Some(0) || self.after_bytes == Some(0) {
            return Some(
                "afterFrames and afterBytes must be at least 1 (leave them out to fire at once)"
                    .to_owned(),
            );
        }
        match &self.action {
            RelayAction::Drop { probability }
            | RelayAction::Duplicate { probability }
            | RelayAction::Corrupt { probability, .. } => {
                check_probability("probability", *probability)
            }
            RelayAction::Reorder {
                probability,
                window,
            } => check_probability("probability", *probability).or_else(|| {
                (*window == 0).then(|| "reorder window must be at least 1 frame".to_owned())
            }),
            RelayAction::Bandwidth { bytes_per_second } => (*bytes_per_second == 0)
                .then(|| "bandwidth bytesPerSecond must be at least 1".to_owned()),
            RelayAction::Close { code, reason, .. } => check_close(*code, reason),
            RelayAction::Delay { .. }
            | RelayAction::Blackhole {}
            | RelayAction::PausePublication {}
            | RelayAction::StartPublication {} => None,
        }
    }
}

/// Codes a close frame may carry (RFC 6455 §7.4): 1000–1003, 1007–1014 and 3000–4999; 1004,
/// 1005, 1006 and 1015 must never be sent.
fn check_close(code: u16, reason: &str) -> Option<String> {
    let sendable = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=MAX_CLOSE_CODE);
    if !sendable {
        return Some(format!(
            "close code {code} cannot be sent: use 1000-1003, 1007-1014 or 3000-4999 \
             (1000 \"Bye\" is what the real service sends)"
        ));
    }
    // A close frame's payload is at most 125 bytes: 2 for the code, 123 for the reason.
    (reason.len() > 123).then(|| "close reason must be at most 123 bytes".to_owned())
}

impl LinkRule {
    fn check(&self) -> Option<String> {
        if let Some(id) = &self.instance_id
            && !crate::model::instance::is_valid_instance_id(id)
        {
            return Some(format!(
                "instanceId {id:?} is not an instance id (i-0123456789abcdef0 or \
                 mi-0123456789abcdef0); leave it out to cut every agent"
            ));
        }
        (self.duration_ms == Some(0)).then(|| {
            "durationMs must be at least 1 (leave it out to cut until the rule is removed)"
                .to_owned()
        })
    }
}

impl ApiRule {
    fn check(&self, known_operation: impl Fn(&str) -> bool) -> Option<String> {
        if let Some(op) = &self.operation
            && !known_operation(op)
        {
            return Some(format!(
                "operation {op:?} is not one ssm-emulator serves: give the name without the \
                 AmazonSSM. prefix, e.g. SendCommand"
            ));
        }
        if self.error.is_none() && self.latency_ms.is_none() {
            return Some("an api rule needs an error, a latencyMs or both".to_owned());
        }
        if let Some(message) = check_probability("rate", self.rate) {
            return Some(message);
        }
        let invocation = self.error == Some(ApiFaultError::InvocationDoesNotExist);
        if invocation && self.operation.as_deref() != Some("GetCommandInvocation") {
            return Some(
                "InvocationDoesNotExist applies to operation GetCommandInvocation only".to_owned(),
            );
        }
        if invocation && self.first_reads.is_none() {
            return Some(
                "InvocationDoesNotExist needs firstReads: how many reads of each CommandId fail"
                    .to_owned(),
            );
        }
        if !invocation && self.first_reads.is_some() {
            return Some("firstReads applies to InvocationDoesNotExist only".to_owned());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> FaultRule {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn action_fields_are_camel_case_as_documented() {
        let rule = parse(r#"{"relay": {"action": {"delay": {"ms": 5, "jitterMs": 20}}}}"#);
        let FaultRule::Relay(relay) = &rule else {
            panic!("relay rule expected")
        };
        assert_eq!(
            relay.action,
            RelayAction::Delay {
                ms: 5,
                jitter_ms: 20
            }
        );
        let rule = parse(r#"{"relay": {"action": {"bandwidth": {"bytesPerSecond": 600000}}}}"#);
        let FaultRule::Relay(relay) = &rule else {
            panic!("relay rule expected")
        };
        assert_eq!(
            relay.action,
            RelayAction::Bandwidth {
                bytes_per_second: 600_000
            }
        );
        assert_eq!(
            serde_json::to_value(&relay.action).unwrap(),
            serde_json::json!({"bandwidth": {"bytesPerSecond": 600000}})
        );
        // The snake_case spelling the docs never showed is refused, not ignored.
        assert!(
            serde_json::from_str::<FaultRule>(
                r#"{"relay": {"action": {"bandwidth": {"bytes_per_second": 600000}}}}"#
            )
            .is_err()
        );
    }

    #[test]
    fn rules_read_as_documented() {
        let rule = parse(
            r#"{"relay": {"action": {"drop": {"probability": 0.01}}, "direction": "agentToClient"}}"#,
        );
        let FaultRule::Relay(relay) = &rule else {
            panic!("relay rule expected")
        };
        assert_eq!(relay.action, RelayAction::Drop { probability: 0.01 });
        assert_eq!(relay.direction, Some(DirectionSpec::AgentToClient));
        assert_eq!(rule.check(|_| true), None);

        let rule = parse(r#"{"relay": {"action": {"close": {}}, "afterFrames": 3}}"#);
        let FaultRule::Relay(relay) = &rule else {
            panic!("relay rule expected")
        };
        assert_eq!(
            relay.action,
            RelayAction::Close {
                end: EndSpec::Client,
                code: 1000,
                reason: "Bye".into()
            }
        );

        let rule = parse(
            r#"{"api": {"operation": "GetCommandInvocation", "error": "InvocationDoesNotExist", "firstReads": 2}}"#,
        );
        assert_eq!(rule.check(|op| op == "GetCommandInvocation"), None);
        // Round trip: what the list endpoint shows can be posted again.
        let json = serde_json::to_string(&rule).unwrap();
        assert_eq!(parse(&json), rule);
    }

    #[test]
    fn mistakes_are_refused_with_what_to_fix() {
        let cases = [
            (
                r#"{"relay": {"action": {"drop": {"probability": 2}}}}"#,
                "between 0 and 1",
            ),
            (
                r#"{"relay": {"action": {"drop": {}}, "afterFrames": 2}}"#,
                "apply to close",
            ),
            (
                r#"{"relay": {"action": {"close": {"code": 1006}}}}"#,
                "cannot be sent",
            ),
            (
                r#"{"relay": {"action": {"reorder": {"window": 0}}}}"#,
                "at least 1",
            ),
            (
                r#"{"relay": {"action": {"blackhole": {}}, "sessionId": "a", "instanceId": "i"}}"#,
                "not both",
            ),
            (r#"{"api": {"operation": "SendCommand"}}"#, "needs an error"),
            (
                r#"{"api": {"operation": "Nope", "error": "ThrottlingException"}}"#,
                "not one ssm-emulator serves",
            ),
            (
                r#"{"api": {"operation": "SendCommand", "error": "InvocationDoesNotExist", "firstReads": 1}}"#,
                "GetCommandInvocation only",
            ),
        ];
        for (json, expected) in cases {
            let message = parse(json)
                .check(|op| op != "Nope")
                .unwrap_or_else(|| panic!("{json} was accepted"));
            assert!(message.contains(expected), "{json}: {message}");
        }
        assert!(
            serde_json::from_str::<FaultRule>(r#"{"relay": {"action": {"dorp": {}}}}"#).is_err()
        );
    }
}
