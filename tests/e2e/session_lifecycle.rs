//! A session's life as Session Manager preferences shape it, through the AWS CLI v1 with
//! `ssm-session` as `session-manager-plugin`, the real emulator and a separate `ssm-agent-sim`:
//! preferences saved with `update-document`, the idle timeout reached by moving the emulator's
//! clock (`POST /_emulator/clock`, no waiting), and the History's `OutputUrl` serving the
//! transcript. TerminateSession from another process is `session_cli`'s.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::{Value, json};
use ssm_e2e::Fleet;
use ssm_e2e::session::{CliSession, Plugin, history};

/// A bound on each read from the emulator. Not an assertion: each takes well under a second.
const LIMIT: Duration = Duration::from_secs(60);

/// One plain HTTP/1.1 request to the emulator; returns the status and the body.
fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).expect("can connect to the emulator");
    stream
        .set_read_timeout(Some(LIMIT))
        .expect("can set a timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("can send the request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("can read the response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response");
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    // `Connection: close` and no chunking from axum for these small bodies.
    (status, raw[split + 4..].to_vec())
}

/// idleSessionTimeout 1 and an S3 bucket saved with `aws ssm update-document`; a shell prints
/// `idle-42`; moving the emulator's clock 61 s ends the session: the client prints the plugin's
/// line `SessionId: <id> : Your session timed out due to inactivity and has been terminated.`
/// and exits 0; `describe-sessions --state History` lists it Terminated with an `OutputUrl`
/// whose transcript holds `idle-42`.
#[test]
fn idle_timeout_ends_the_client_and_the_history_links_the_transcript() {
    let fleet = Fleet::start(&Fleet::plain('8', 1), &[], &[]);
    let aws = fleet.emu.aws();
    let preferences = json!({
        "schemaVersion": "1.0",
        "description": "Document to hold regional settings for Session Manager",
        "sessionType": "Standard_Stream",
        "inputs": {"s3BucketName": "audit-bucket", "s3KeyPrefix": "shells",
                   "s3EncryptionEnabled": false, "cloudWatchLogGroupName": "",
                   "cloudWatchStreamingEnabled": false, "cloudWatchEncryptionEnabled": false,
                   "idleSessionTimeout": "1", "maxSessionDuration": "", "kmsKeyId": "",
                   "runAsEnabled": false, "runAsDefaultUser": "",
                   "shellProfile": {"windows": "", "linux": ""}}
    });
    let file = fleet.emu.dir().join("preferences.json");
    std::fs::write(&file, preferences.to_string()).expect("can write the preferences");
    let updated = aws
        .ssm(&[
            "update-document",
            "--name",
            "SSM-SessionManagerRunShell",
            "--content",
            &format!("file://{}", file.display()),
            "--document-version",
            "$LATEST",
        ])
        .json();
    assert_eq!(
        updated["DocumentDescription"]["LatestVersion"], "2",
        "{updated:#}"
    );

    let plugin = Plugin::install();
    let mut client =
        CliSession::over_pipes(plugin.start_session(&aws, &["--target", &fleet.ids[0]]));
    let (session_id, _) = client.wait_for_shell();
    client.type_in("echo idle-$((6*7))\n");
    client.wait_for("idle-42", |text| text.contains("idle-42\n").then_some(()));

    let (status, body) = http(
        fleet.emu.addr(),
        "POST",
        "/_emulator/clock",
        r#"{"advanceSeconds": 61}"#,
    );
    let moved: Value = serde_json::from_slice(&body).expect("the clock answers JSON");
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["expiredSessions"], json!([session_id]), "{moved}");

    let line = format!(
        "\n\nSessionId: {session_id} : Your session timed out due to inactivity and has been \
         terminated.\n\n"
    );
    client.wait_for("the timeout line", |text| {
        text.ends_with(&line).then_some(())
    });
    assert!(client.wait_exit().success(), "output:\n{}", client.text());

    let session = history(&aws, &session_id);
    assert_eq!(session["Status"], "Terminated", "{session:#}");
    let url = session["OutputUrl"]["S3OutputUrl"]
        .as_str()
        .unwrap_or_else(|| panic!("no S3OutputUrl: {session:#}"));
    let expected = format!(
        "{}/_emulator/s3/audit-bucket/shells/{session_id}.log",
        fleet.emu.endpoint()
    );
    assert_eq!(url, expected);
    let (status, transcript) = http(
        fleet.emu.addr(),
        "GET",
        url.strip_prefix(&fleet.emu.endpoint())
            .expect("on the emulator"),
        "",
    );
    let transcript = String::from_utf8_lossy(&transcript);
    assert_eq!(status, 200, "{transcript}");
    assert!(transcript.contains("idle-42"), "{transcript:?}");
}
