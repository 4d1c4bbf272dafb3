//! The one way tests talk to the emulator: [`TestEmu::call`] sends an SSM request through
//! `app().oneshot` and returns the status, the request id and the JSON body.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use serde_json::Value;
use ssm_emulator::config::DeclaredInstance;
use ssm_emulator::{Config, Emulator, ManualClock, app};
use tower::ServiceExt;

/// The clock's start: 2023-11-14T22:13:20Z.
pub const START: u64 = 1_700_000_000;

/// The grace period tests run with.
pub const GRACE: Duration = Duration::from_secs(60);

/// An emulator on a manual clock.
pub struct TestEmu {
    pub emu: Emulator,
    pub clock: Arc<ManualClock>,
}

/// What came back.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub request_id: Option<String>,
    pub content_type: Option<String>,
    pub body: Value,
}

impl TestEmu {
    pub fn new() -> TestEmu {
        TestEmu::with_instances(Vec::new())
    }

    pub fn with_instances(instances: Vec<DeclaredInstance>) -> TestEmu {
        let mut config = Config::local(7);
        config.ping_grace = GRACE;
        config.instances = instances;
        let clock = Arc::new(ManualClock::at_epoch_secs(START));
        TestEmu {
            emu: Emulator::new(config, clock.clone()),
            clock,
        }
    }

    /// Calls `AmazonSSM.<op>` with `body`, unsigned (so in the default region).
    pub async fn call(&self, op: &str, body: Value) -> Reply {
        self.send(
            Some(&format!("AmazonSSM.{op}")),
            None,
            body.to_string().into_bytes(),
        )
        .await
    }

    /// Calls `AmazonSSM.<op>` signed for `region`.
    pub async fn call_in(&self, region: &str, op: &str, body: Value) -> Reply {
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential=AKIDTEST/20240101/{region}/ssm/aws4_request, \
             SignedHeaders=content-length;content-type;host;x-amz-date;x-amz-target, \
             Signature=0000"
        );
        self.send(
            Some(&format!("AmazonSSM.{op}")),
            Some(&auth),
            body.to_string().into_bytes(),
        )
        .await
    }

    /// Sends raw bytes with an optional `X-Amz-Target` and `Authorization`.
    pub async fn send(&self, target: Option<&str>, auth: Option<&str>, body: Vec<u8>) -> Reply {
        let mut request = Request::post("/").header("content-type", "application/x-amz-json-1.1");
        if let Some(target) = target {
            request = request.header("x-amz-target", target);
        }
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = app(self.emu.clone())
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let (status, request_id, content_type) = (
            response.status().as_u16(),
            header("x-amzn-requestid"),
            header("content-type"),
        );
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Reply {
            status,
            request_id,
            content_type,
            body,
        }
    }

    /// Reports a node the way the real agent's health ping does.
    pub async fn report(&self, id: &str) {
        self.call("UpdateInstanceInformation", full_report(id))
            .await
            .ok();
    }

    /// `InstanceInformationList` of an unfiltered, unpaginated DescribeInstanceInformation.
    pub async fn describe_all(&self) -> Vec<Value> {
        let body = self
            .call("DescribeInstanceInformation", serde_json::json!({}))
            .await
            .ok();
        body["InstanceInformationList"].as_array().unwrap().clone()
    }

    /// Ids listed by DescribeInstanceInformation with `request`.
    pub async fn ids(&self, request: Value) -> Vec<String> {
        let body = self.call("DescribeInstanceInformation", request).await.ok();
        body["InstanceInformationList"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["InstanceId"].as_str().unwrap().to_owned())
            .collect()
    }
}

impl Reply {
    /// The body of a success; fails the test with the error otherwise.
    pub fn ok(self) -> Value {
        assert_eq!(self.status, 200, "expected success, got {:?}", self.body);
        self.assert_request_id();
        assert_eq!(
            self.content_type.as_deref(),
            Some("application/x-amz-json-1.1")
        );
        self.body
    }

    /// Asserts an AWS error of `code` with `status`, and returns its message.
    pub fn error(self, status: u16, code: &str) -> String {
        assert_eq!(
            (self.status, self.body["__type"].as_str()),
            (status, Some(code)),
            "unexpected reply {:?}",
            self.body
        );
        self.assert_request_id();
        assert_eq!(
            self.content_type.as_deref(),
            Some("application/x-amz-json-1.1")
        );
        self.body["message"].as_str().unwrap().to_owned()
    }

    /// Asserts a 400 of `code` and returns its message.
    pub fn client_error(self, code: &str) -> String {
        self.error(400, code)
    }

    fn assert_request_id(&self) {
        let id = self
            .request_id
            .as_deref()
            .expect("x-amzn-RequestId missing");
        assert!(uuid_shaped(id), "request id {id:?} is not a UUID");
    }
}

pub fn uuid_shaped(s: &str) -> bool {
    let groups: Vec<usize> = s.split('-').map(str::len).collect();
    groups == [8, 4, 4, 4, 12] && s.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
}

/// The full startup/health-ping body of the real agent (spec §9.4).
pub fn full_report(id: &str) -> Value {
    serde_json::json!({
        "AgentName": "amazon-ssm-agent", "AgentStatus": "Active", "AgentVersion": "3.3.1142.0",
        "AvailabilityZone": "", "AvailabilityZoneId": "", "ComputerName": "host-1",
        "IPAddress": "10.0.0.7", "InstanceId": id, "PlatformName": "Debian GNU/Linux",
        "PlatformType": "Linux", "PlatformVersion": "12", "SSMConnectionChannel": ""
    })
}

/// A declared instance with defaults, as the instances file would give it.
pub fn declared(entry: Value) -> DeclaredInstance {
    let mut file = serde_json::Map::new();
    file.insert("instances".to_owned(), Value::Array(vec![entry]));
    let file = Value::Object(file);
    ssm_emulator::config::parse_instances(&file.to_string(), "test")
        .unwrap()
        .remove(0)
}

/// `i-` and 17 hex digits ending in `n`.
pub fn ec2_id(n: u32) -> String {
    format!("i-{n:017x}")
}
