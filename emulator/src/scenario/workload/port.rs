//! `port-transfer`: a port-forwarding session (AWS-StartPortForwardingSession) of
//! `ssm-session` to a sink the runner listens with on 127.0.0.1, which the instance's agent
//! dials (agent-sim runs on this machine, so the instance's localhost is ours). The runner
//! connects to the client's local port and both ends send the same amount of seeded
//! pseudo-random data at once; each end hashes what it sent and what it received.
//!
//! Neither end closes before it has received everything, so the transfer never depends on
//! how a close travels through smux (§7.4). The session ends as a user ends it: SIGINT to the
//! client, which sends Flag TerminateSession (§6.4).
//!
//! Facts: `megabytes`, `seconds` (first byte sent to last byte received, both ways),
//! `baseline-seconds` and `slowdown` (with `baseline = true`), the SHA-256 of what each end
//! sent and received (`up-sent-sha256`, `up-received-sha256`, `down-…`), `up-intact` and
//! `down-intact`, the byte counts received, `exit-code`, `error`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use super::plugin::Plugin;
use super::{Context, Outcome};
use crate::scenario::file::{PortTransferSpec, show_duration};
use crate::scenario::limits::CLIENT_START_LIMIT;

/// Seeds of the data each way, mixed into the scenario's seed: different bytes up and down.
const UP_STREAM: u64 = 0x7570;
const DOWN_STREAM: u64 = 0x646f_776e;

/// How the bytes of one direction went.
#[derive(Debug, Clone)]
pub struct Leg {
    /// SHA-256 (hex) of what the sender sent.
    pub sent: String,
    /// SHA-256 (hex) of what the receiver got.
    pub received: String,
    /// How many bytes the receiver got.
    pub bytes: u64,
}

/// One transfer.
#[derive(Debug, Clone)]
pub struct Transfer {
    /// Client to instance.
    pub up: Leg,
    /// Instance to client.
    pub down: Leg,
    /// From the connection to the last byte of both directions.
    pub seconds: f64,
    /// The client's exit code after SIGINT.
    pub exit_code: Option<i32>,
}

/// Runs the transfer of `spec` once.
pub async fn transfer(ctx: &Context, spec: &PortTransferSpec) -> Result<Transfer, String> {
    let size = (spec.megabytes * 1024.0 * 1024.0) as usize;
    let up = data(ctx.seed ^ UP_STREAM, size);
    let down = data(ctx.seed ^ DOWN_STREAM, size);
    let sink = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot listen for the agent: {e}"))?;
    let sink_port = sink.local_addr().map_err(|e| e.to_string())?.port();
    let parameters = json!({
        "portNumber": [sink_port.to_string()],
        "localPortNumber": ["0"],
    });
    let mut plugin = Plugin::start(
        ctx,
        &spec.instance,
        Some(("AWS-StartPortForwardingSession", parameters)),
    )
    .await?;
    let opened = format!(" opened for sessionId {}.", plugin.session_id);
    let local_port = plugin
        .wait_for(0, CLIENT_START_LIMIT, |text| {
            text.lines().find_map(|line| {
                line.strip_prefix("Port ")?
                    .strip_suffix(opened.as_str())?
                    .parse::<u16>()
                    .ok()
            })
        })
        .await
        .ok_or_else(|| {
            format!(
                "ssm-session did not open its local port within {}: {}{}",
                show_duration(CLIENT_START_LIMIT),
                plugin.output(),
                plugin.errors()
            )
        })?;

    // Bytes received so far at each end, to say where a transfer that never ends stopped.
    let (up_got, down_got) = (AtomicU64::new(0), AtomicU64::new(0));
    let moved = tokio::time::timeout(spec.wait, async {
        let instance_end = async {
            let (socket, _) = sink.accept().await?;
            exchange(socket, &down, size, &up_got).await
        };
        let started = Instant::now();
        let client_end = async {
            let socket = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], local_port))).await?;
            exchange(socket, &up, size, &down_got).await
        };
        let (at_instance, at_client) = tokio::try_join!(instance_end, client_end)?;
        Ok::<_, std::io::Error>((at_instance, at_client, started.elapsed()))
    })
    .await;
    plugin.interrupt();
    let exit_code = plugin.wait_exit(CLIENT_START_LIMIT).await;
    let (at_instance, at_client, took) = match moved {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => return Err(format!("transfer failed: {e}")),
        Err(_) => {
            return Err(format!(
                "the transfer did not finish within {}: {} of {size} bytes up and {} down \
                 had arrived",
                show_duration(spec.wait),
                up_got.load(Ordering::Relaxed),
                down_got.load(Ordering::Relaxed)
            ));
        }
    };
    Ok(Transfer {
        up: Leg {
            sent: hex(&Sha256::digest(&up)),
            received: at_instance.0,
            bytes: at_instance.1,
        },
        down: Leg {
            sent: hex(&Sha256::digest(&down)),
            received: at_client.0,
            bytes: at_client.1,
        },
        seconds: took.as_secs_f64(),
        exit_code,
    })
}

/// The report of a transfer, next to its fault-free baseline if there was one.
pub fn outcome(
    spec: &PortTransferSpec,
    result: Result<Transfer, String>,
    baseline: Option<Result<Transfer, String>>,
) -> Outcome {
    let mut out = Outcome::default();
    out.fact("megabytes", spec.megabytes);
    let baseline_seconds = match baseline {
        Some(Ok(baseline)) => {
            out.line(format!(
                "baseline (no faults): {:.2}s, intact: {}",
                baseline.seconds,
                intact(&baseline)
            ));
            out.fact("baseline-seconds", baseline.seconds);
            out.fact("baseline-intact", intact(&baseline));
            Some(baseline.seconds)
        }
        Some(Err(e)) => {
            out.line(format!("baseline failed: {e}"));
            out.fact("baseline-error", e);
            None
        }
        None => None,
    };
    let transfer = match result {
        Ok(transfer) => transfer,
        Err(e) => {
            out.error(e);
            return out;
        }
    };
    let mut timing = format!(
        "{} MiB each way in {:.2}s",
        spec.megabytes, transfer.seconds
    );
    if let Some(base) = baseline_seconds.filter(|s| *s > 0.0) {
        let slowdown = transfer.seconds / base;
        timing.push_str(&format!(
            " (baseline {base:.2}s without faults: {slowdown:.1}x)"
        ));
        out.fact("slowdown", slowdown);
    }
    out.line(timing);
    for (name, leg) in [("up", &transfer.up), ("down", &transfer.down)] {
        out.line(format!(
            "{name}: sent sha256 {}, received sha256 {} ({} bytes): {}",
            &leg.sent[..16],
            &leg.received[..16],
            leg.bytes,
            if leg.sent == leg.received {
                "intact"
            } else {
                "DIFFERENT"
            }
        ));
        out.fact(&format!("{name}-sent-sha256"), leg.sent.clone());
        out.fact(&format!("{name}-received-sha256"), leg.received.clone());
        out.fact(&format!("{name}-bytes-received"), leg.bytes);
        out.fact(&format!("{name}-intact"), leg.sent == leg.received);
    }
    out.fact("seconds", transfer.seconds);
    out.fact("exit-code", f64::from(transfer.exit_code.unwrap_or(-1)));
    out
}

fn intact(transfer: &Transfer) -> bool {
    transfer.up.sent == transfer.up.received && transfer.down.sent == transfer.down.received
}

/// Sends `data` and receives `expect` bytes at once on `socket`; the SHA-256 of what came
/// and how much. Stops receiving early at EOF.
async fn exchange(
    socket: TcpStream,
    data: &[u8],
    expect: usize,
    got: &AtomicU64,
) -> std::io::Result<(String, u64)> {
    let (mut reader, mut writer) = socket.into_split();
    let (_, received) =
        tokio::try_join!(send(&mut writer, data), receive(&mut reader, expect, got))?;
    Ok(received)
}

async fn send(writer: &mut (impl AsyncWrite + Unpin), data: &[u8]) -> std::io::Result<()> {
    writer.write_all(data).await?;
    writer.flush().await
}

async fn receive(
    reader: &mut (impl AsyncRead + Unpin),
    expect: usize,
    got_so_far: &AtomicU64,
) -> std::io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    while got < expect {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        got += n;
        got_so_far.store(got as u64, Ordering::Relaxed);
    }
    Ok((hex(&hasher.finalize()), got as u64))
}

/// `size` pseudo-random bytes from `seed`.
fn data(seed: u64, size: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; size];
    StdRng::seed_from_u64(seed).fill_bytes(&mut bytes);
    bytes
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
