//! The emulator on a real TCP listener (`run` on 127.0.0.1:0), spoken to with raw HTTP/1.1
//! bytes, as an AWS SDK or the real agent would: headers, status, body, graceful shutdown.
//!
//! Run with `cargo test -p ssm-emulator --test server`.

mod support;

use std::net::SocketAddr;

use serde_json::{Value, json};
use ssm_emulator::run;
use support::TestEmu;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running server and the means to stop it.
struct Server {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

async fn start(t: &TestEmu) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(run(listener, t.emu.clone(), async {
        let _ = stopped.await;
    }));
    Server { addr, stop, task }
}

/// A parsed HTTP response.
struct Http {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Http {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request on a fresh connection, the way aws-sdk-go does for the agent (§9.4).
async fn post(addr: SocketAddr, target: &str, body: &str) -> Http {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Target: {target}\r\nX-Amz-Date: 20240101T000000Z\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=AKIDTEST/20240101/us-east-1/ssm/aws4_request, \
         SignedHeaders=content-length;content-type;host;x-amz-date;x-amz-target, Signature=00\r\n\
         User-Agent: aws-sdk-go/1.44 (go1.22; linux; amd64) amazon-ssm-agent/3.3.1142.0\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    Http {
        status,
        headers,
        body: serde_json::from_str(body).unwrap(),
    }
}

#[tokio::test]
async fn agent_report_then_describe_over_tcp() {
    let t = TestEmu::new();
    let server = start(&t).await;
    let id = "i-0123456789abcdef0";

    let minimal = json!({"AgentName":"amazon-ssm-agent","AgentVersion":"3.3.1142.0",
                         "InstanceId": id,"PlatformType":"Linux"});
    let reply = post(
        server.addr,
        "AmazonSSM.UpdateInstanceInformation",
        &minimal.to_string(),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, json!({}));
    assert_eq!(
        reply.header("content-type"),
        Some("application/x-amz-json-1.1")
    );
    assert!(support::uuid_shaped(
        reply.header("x-amzn-RequestId").unwrap()
    ));

    let reply = post(server.addr, "AmazonSSM.DescribeInstanceInformation", "{}").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["InstanceInformationList"][0]["InstanceId"], id);
    assert_eq!(
        reply.body["InstanceInformationList"][0]["PingStatus"],
        "Online"
    );

    server.stop.send(()).unwrap();
    server.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn errors_over_tcp_carry_type_message_and_request_id() {
    let t = TestEmu::new();
    let server = start(&t).await;

    let reply = post(server.addr, "AmazonSSM.NoSuchThing", "{}").await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.body["__type"], "UnknownOperationException");
    assert!(reply.header("x-amzn-RequestId").is_some());

    let reply = post(
        server.addr,
        "AmazonSSM.DescribeInstanceInformation",
        "{not json",
    )
    .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.body["__type"], "SerializationException");
    assert!(reply.body["message"].is_string());
    assert!(reply.header("x-amzn-RequestId").is_some());

    let reply = post(
        server.addr,
        "AmazonSSM.DescribeInstanceInformation",
        r#"{"MaxResults": 1}"#,
    )
    .await;
    assert_eq!(
        (reply.status, reply.body["__type"].as_str()),
        (400, Some("ValidationException"))
    );

    server.stop.send(()).unwrap();
    server.task.await.unwrap().unwrap();
}
