//! The admin routes of the agent side:
//!
//! - `GET /_emulator/proxy`: `{"state":"up"|"down","address":"127.0.0.1:PORT"}`;
//!   `POST /_emulator/proxy {"state":"down"|"up"}` turns the built-in CONNECT proxy
//!   ([`super::proxy`]) down or up (404 without `--agent-proxy-listen`);
//! - `GET /_emulator/agents`: the embedded fleet's agents and their state;
//! - `POST /_emulator/agents/{instanceId}/crash {"restartAfterSeconds": N|null}`: the agent
//!   dies as the real agent's process does; it restarts after N seconds, or stays down until
//!   `POST /_emulator/agents/{instanceId}/restart`;
//! - `POST /_emulator/agents/{instanceId}/slowness {"jobAckDelayMs": N, "commandStartDelayMs": N}`:
//!   the agent acknowledges jobs and starts commands that much later (absent members: 0).
//!
//! The agent routes act on the embedded fleet (`ssm-emulator --fleet N`), and answer 404 when
//! there is none or it has no such instance. Errors are `{"message": "..."}` as in
//! [`super::admin`].

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use ssm_agent_sim::{AgentState, AgentStatus, FleetHandle, Slowness};

use super::admin::{answer, parse, refuse};
use super::proxy::ProxyState;
use crate::model::Emulator;

/// The proxy and agent routes.
pub(crate) fn router(emu: Emulator) -> Router {
    Router::new()
        .route("/_emulator/proxy", get(proxy_state).post(set_proxy))
        .route("/_emulator/agents", get(agents))
        .route("/_emulator/agents/{instance_id}/crash", post(crash))
        .route("/_emulator/agents/{instance_id}/restart", post(restart))
        .route("/_emulator/agents/{instance_id}/slowness", post(slowness))
        .with_state(emu)
}

fn no_proxy() -> Response {
    refuse(
        StatusCode::NOT_FOUND,
        "no agent proxy: start ssm-emulator with --agent-proxy-listen 127.0.0.1:PORT",
    )
}

async fn proxy_state(State(emu): State<Emulator>) -> Response {
    match emu.faults().agent_proxy() {
        Some(proxy) => answer(
            StatusCode::OK,
            &json!({ "state": proxy.state(), "address": proxy.addr().to_string() }),
        ),
        None => no_proxy(),
    }
}

/// `POST /_emulator/proxy`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetProxy {
    state: ProxyState,
}

async fn set_proxy(State(emu): State<Emulator>, body: Bytes) -> Response {
    let SetProxy { state } = match parse(&body, r#"{"state": "down"} or {"state": "up"}"#) {
        Ok(request) => request,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, message),
    };
    let Some(proxy) = emu.faults().agent_proxy() else {
        return no_proxy();
    };
    match state {
        ProxyState::Down => proxy.down(),
        ProxyState::Up => {
            if let Err(e) = proxy.up().await {
                return refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
            }
        }
    }
    answer(
        StatusCode::OK,
        &json!({ "state": proxy.state(), "address": proxy.addr().to_string() }),
    )
}

/// The 404 for agent routes without an embedded fleet.
fn no_fleet() -> Response {
    refuse(
        StatusCode::NOT_FOUND,
        "no embedded fleet: agent faults apply to the simulated agents of \
         `ssm-emulator --fleet N` (N > 0)",
    )
}

fn status_json(status: &AgentStatus) -> serde_json::Value {
    let (state, restart_in) = match status.state {
        AgentState::Running => ("running", None),
        AgentState::Down { restart_in } => ("down", restart_in.map(|d| d.as_secs_f64())),
    };
    json!({
        "instanceId": status.instance_id,
        "agentVersion": status.agent_version,
        "state": state,
        "restartInSeconds": restart_in,
        "controlChannelOpen": status.control_channel_open,
        "jobAckDelayMs": status.slowness.job_ack_delay.as_millis() as u64,
        "commandStartDelayMs": status.slowness.command_start_delay.as_millis() as u64,
        "crashes": status.crashes,
    })
}

async fn agents(State(emu): State<Emulator>) -> Response {
    match emu.faults().fleet() {
        Some(fleet) => {
            let agents: Vec<_> = fleet.instances().iter().map(status_json).collect();
            answer(StatusCode::OK, &json!({ "agents": agents }))
        }
        None => no_fleet(),
    }
}

/// Runs `act` on the fleet and answers with the agent's status after it.
fn on_agent(
    emu: &Emulator,
    instance_id: &str,
    act: impl FnOnce(&FleetHandle) -> Result<(), ssm_agent_sim::FaultError>,
) -> Response {
    let Some(fleet) = emu.faults().fleet() else {
        return no_fleet();
    };
    match act(&fleet).and_then(|()| fleet.status(instance_id)) {
        Ok(status) => answer(StatusCode::OK, &status_json(&status)),
        Err(e) => refuse(StatusCode::NOT_FOUND, e.to_string()),
    }
}

/// `POST /_emulator/agents/{id}/crash`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Crash {
    #[serde(default)]
    restart_after_seconds: Option<f64>,
}

async fn crash(
    State(emu): State<Emulator>,
    Path(instance_id): Path<String>,
    body: Bytes,
) -> Response {
    let request: Crash = if body.is_empty() {
        Crash::default()
    } else {
        match parse(
            &body,
            r#"{"restartAfterSeconds": 5} or {"restartAfterSeconds": null}"#,
        ) {
            Ok(request) => request,
            Err(message) => return refuse(StatusCode::BAD_REQUEST, message),
        }
    };
    let restart_after = match request.restart_after_seconds {
        None => None,
        Some(s) => match Duration::try_from_secs_f64(s) {
            Ok(d) => Some(d),
            Err(_) => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    format!("restartAfterSeconds must be a number ≥ 0, got {s}"),
                );
            }
        },
    };
    tracing::info!(instance_id, ?restart_after, "fault: agent crash");
    on_agent(&emu, &instance_id, |fleet| {
        fleet.crash(&instance_id, restart_after)
    })
}

async fn restart(State(emu): State<Emulator>, Path(instance_id): Path<String>) -> Response {
    on_agent(&emu, &instance_id, |fleet| fleet.restart(&instance_id))
}

/// `POST /_emulator/agents/{id}/slowness`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SetSlowness {
    #[serde(default)]
    job_ack_delay_ms: u64,
    #[serde(default)]
    command_start_delay_ms: u64,
}

async fn slowness(
    State(emu): State<Emulator>,
    Path(instance_id): Path<String>,
    body: Bytes,
) -> Response {
    let request: SetSlowness = match parse(
        &body,
        r#"{"jobAckDelayMs": 2000, "commandStartDelayMs": 0}"#,
    ) {
        Ok(request) => request,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, message),
    };
    let slowness = Slowness {
        job_ack_delay: Duration::from_millis(request.job_ack_delay_ms),
        command_start_delay: Duration::from_millis(request.command_start_delay_ms),
    };
    on_agent(&emu, &instance_id, |fleet| {
        fleet.set_slowness(&instance_id, slowness)
    })
}
