//! The ssm-emulator control plane: the SSM JSON 1.1 API today; the session service (MGS) with
//! its data-channel relay, the agent-facing channels and fault injection as they arrive.
//!
//! # Layout
//! - `api` (private): the SSM JSON 1.1 API. `POST /` dispatches on `X-Amz-Target` to one module
//!   per operation; one error type renders `{"__type","message"}`; every response carries
//!   `x-amzn-RequestId`.
//! - [`model`]: the state, one in-memory store per process keyed by account and region, behind
//!   the cheap-to-clone [`Emulator`] handle.
//! - `documents` (private): the AWS-owned and the account's SSM documents, and the parameter
//!   resolution SendCommand and StartSession share.
//! - [`clock`]: the one source of time ([`SystemClock`] in the binary, [`ManualClock`] in tests).
//! - [`config`]: process settings and the instances file.
//! - [`tls`]: the optional TLS listener (`--tls-listen`) with a CA and certificate made at
//!   start, and the [`tls::Scheme`] request extension.
//! - `mds` (private): the classic message delivery service (`ec2messages`, spec §9.2): long-poll
//!   GetMessages and the agent's replies, for agents without a control channel.
//! - [`sessions`]: the session service: sessions, CreateDataChannel, the data-channel
//!   websockets of both ends and the relay between them, with its one hook ([`sessions::RelayHook`]).
//! - [`fleet`]: [`serve`], the server with an embedded fleet of ssm-agent-sim agents.
//! - [`faults`]: fault injection on the relay and the API, the `/_emulator/faults`, `seed`
//!   and `reset` routes, and the CLI subcommands that drive them.
//!
//! # Entry points
//! [`app`] builds the router without a server, for `tower::ServiceExt::oneshot` in tests;
//! [`run`] serves it on a listener until a shutdown future completes.
//!
//! # Architecture invariants
//! - Only `api` (and `mds`, its sibling endpoint) knows AWS JSON and HTTP; `model` knows
//!   neither. The emulator never depends on aws-sdk-ssm.
//! - All randomness (request ids, tokens) comes from one RNG seeded by [`Config::seed`], and
//!   all time from one [`Clock`]: the same seed and requests give the same responses.
//! - No lock is held across an `.await`: operations run to completion under a std mutex.

mod api;
pub mod clock;
pub mod config;
pub mod control;
/// SSM documents: the AWS-owned ones, the account's own, and parameter resolution.
mod documents;
pub mod faults;
pub mod fleet;
/// MDS (`ec2messages`): Run Command for agents that poll.
mod mds;
pub mod model;
mod run_command;
/// Scenario files, their runner and the shipped library (`ssm-emulator scenario …`).
pub mod scenario;
pub mod sessions;
pub mod tls;

use std::future::Future;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::Config;
pub use fleet::{FleetSetup, serve};
pub use model::Emulator;

/// The whole HTTP application on `state`: the SSM API and the agent's control channel.
///
/// Called inside a tokio runtime, it also starts the Run Command dispatcher of `state` (once
/// per emulator, however often `app` is called).
pub fn app(state: Emulator) -> axum::Router {
    run_command::ensure_dispatcher(&state);
    api::router(state.clone())
        .merge(control::router(state.clone()))
        .merge(faults::admin::router(state.clone()))
        .merge(sessions::router(state.clone()))
        .layer(axum::middleware::from_fn_with_state(
            state,
            faults::link::gate,
        ))
}

/// Serves [`app`] on `listener` until `shutdown` completes, then finishes the requests in
/// flight and returns.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: Emulator,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Every connection abortable, for agent-link faults (`faults::link`).
    let listener = faults::link::LinkListener::new(listener, state.faults().links().clone());
    let app = app(state).into_make_service_with_connect_info::<faults::link::LinkConn>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
