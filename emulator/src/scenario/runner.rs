//! Runs one scenario: an emulator with its embedded fleet in this process on a loopback port
//! of its own, the baselines, then the timeline and the workloads at once, then the
//! expectations.
//!
//! The runner drives faults, the clock and the fleet as any user of the emulator does: fault
//! rules and the clock through the [`Emulator`] handle (what `POST /_emulator/faults` and
//! `/_emulator/clock` call), the proxy and the agents through their admin routes. The
//! workloads are real clients over real sockets (see [`super::workload`]).
//!
//! What repeats for a seed: ids and tokens, every fault decision of the engine's RNG, the
//! workloads' data and jitter. What may vary from run to run: timings, and so any count that
//! depends on how much traffic flowed before an event (frames matched by a rule added at
//! 5 s, resends caused by scheduling). Expectations should check outcomes (statuses, digests,
//! "at least one"), not exact timings.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use ssm_agent_sim::InstanceConfig;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::client::Client;
use super::file::{Action, ProxyAction, Scenario, WorkloadKind, show_duration};
use super::limits::{COUNTER_SAMPLE_PERIOD, DEFAULT_SCENARIO_TIMEOUT, FLEET_ONLINE_LIMIT};
use super::report::{self, Event, Fact, Facts, Report, RuleLine, WorkloadReport};
use super::workload::{self, Context, Outcome, plugin};
use crate::config::Config;
use crate::faults::proxy::AgentProxy;
use crate::fleet::{FleetSetup, embedded_timings};
use crate::{Emulator, SystemClock};

/// How a run is started.
#[derive(Debug, Clone)]
pub struct Options {
    /// Overrides the file's seed.
    pub seed: Option<u64>,
    /// Where the emulator listens (default `127.0.0.1:0`: a free port, never the user's 4583).
    pub listen: SocketAddr,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            seed: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

/// Why a scenario could not run at all (as opposed to running and failing an expectation).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The emulator's port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The agents' proxy could not start.
    #[error("agent proxy: {0}")]
    Proxy(String),
    /// The fleet did not come online.
    #[error("the fleet did not come online within {limit:?}: still waiting for {missing:?}")]
    Fleet {
        /// The bound.
        limit: Duration,
        /// Instances not online.
        missing: Vec<String>,
    },
    /// A shell or port workload needs the reference client.
    #[error(
        "this scenario runs `ssm-session` (the reference client) and it is neither beside \
         ssm-emulator nor on PATH: build it with `cargo build -p ssm-conformance` or install it"
    )]
    NoSessionClient,
}

/// The fault counters as last seen, by rule id, and the labels of the rules.
#[derive(Debug, Default)]
struct Counters {
    rules: BTreeMap<u64, RuleLine>,
    labels: BTreeMap<String, String>,
    totals: BTreeMap<String, u64>,
}

impl Counters {
    fn sample(&mut self, emulator: &Emulator) {
        let report = emulator.faults().report();
        for rule in report.faults {
            let Some(n) = crate::faults::engine::parse_id(&rule.id) else {
                continue;
            };
            let label = self
                .labels
                .iter()
                .find(|(_, id)| **id == rule.id)
                .map(|(label, _)| label.clone());
            self.rules.insert(
                n,
                RuleLine {
                    id: rule.id,
                    label,
                    rule: serde_json::to_value(&rule.rule).unwrap_or_default(),
                    matched: rule.matched,
                    injected: rule.injected,
                },
            );
        }
        self.totals = report.totals;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `scenario` and reports what happened.
pub async fn run(scenario: &Scenario, options: &Options) -> Result<Report, RunError> {
    let seed = options.seed.unwrap_or(scenario.seed);
    let instance_ids = scenario.instance_ids();
    let needs_client = scenario.workload.iter().any(|w| {
        matches!(
            w.kind(),
            Ok(WorkloadKind::Shell(_) | WorkloadKind::PortTransfer(_))
        )
    });
    let session_client = match plugin::find_session_client() {
        Some(path) => path,
        None if needs_client => return Err(RunError::NoSessionClient),
        None => PathBuf::from(plugin::SESSION_CLIENT),
    };

    let emulator = Emulator::new(Config::local(seed), Arc::new(SystemClock));
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|source| RunError::Listen {
            addr: options.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| RunError::Listen {
        addr: options.listen,
        source,
    })?;
    if scenario.fleet.agent_proxy {
        let proxy = AgentProxy::start(SocketAddr::from(([127, 0, 0, 1], 0)), vec![addr])
            .await
            .map_err(|e| RunError::Proxy(e.to_string()))?;
        emulator.faults().set_agent_proxy(proxy);
    }
    let work_dir = std::env::temp_dir().join(format!(
        "ssm-scenario-{}-{}",
        std::process::id(),
        addr.port()
    ));
    let fleet = FleetSetup {
        instances: fleet_instances(scenario, &instance_ids),
        timings: ssm_agent_sim::Timings {
            real_read_pacing: scenario.fleet.real_read_pacing,
            ..embedded_timings()
        },
        work_dir: work_dir.clone(),
        seed,
    };
    let stop = CancellationToken::new();
    let server = tokio::spawn(crate::serve(
        listener,
        emulator.clone(),
        fleet,
        stop.clone().cancelled_owned(),
    ));

    let result = run_online(
        scenario,
        &emulator,
        addr,
        seed,
        &instance_ids,
        session_client,
    )
    .await;

    stop.cancel();
    if let Ok(Ok(Err(e))) = tokio::time::timeout(FLEET_ONLINE_LIMIT, server).await {
        tracing::warn!("the scenario's emulator stopped with an error: {e}");
    }
    if let Some(proxy) = emulator.faults().agent_proxy() {
        proxy.down();
    }
    let _ = std::fs::remove_dir_all(&work_dir);
    result
}

/// The agents: agent-sim's defaults for the seed, with the file's ids and version.
fn fleet_instances(scenario: &Scenario, ids: &[String]) -> Vec<InstanceConfig> {
    ssm_agent_sim::default_instances(ids.len(), scenario.seed)
        .into_iter()
        .zip(ids)
        .map(|(mut instance, id)| {
            instance.instance_id.clone_from(id);
            if let Some(version) = &scenario.fleet.agent_version {
                instance.agent_version.clone_from(version);
            }
            instance
        })
        .collect()
}

/// Everything after the emulator is up.
async fn run_online(
    scenario: &Scenario,
    emulator: &Emulator,
    addr: SocketAddr,
    seed: u64,
    instance_ids: &[String],
    session_client: PathBuf,
) -> Result<Report, RunError> {
    wait_online(emulator, instance_ids).await?;
    let began = Instant::now();
    let mut ctx = Context {
        client: Client::new(addr),
        seed,
        start: Instant::now(),
        session_client,
        region: emulator.default_region().to_owned(),
    };

    // Baselines first, with no fault in force.
    let mut baselines = BTreeMap::new();
    for (index, workload) in scenario.workload.iter().enumerate() {
        if let Ok(WorkloadKind::PortTransfer(spec)) = workload.kind()
            && spec.baseline
        {
            baselines.insert(index, workload::port::transfer(&ctx, &spec).await);
        }
    }

    ctx.start = Instant::now();
    let counters = Arc::new(Mutex::new(Counters::default()));
    let sampling = CancellationToken::new();
    let sampler = tokio::spawn(sample(emulator.clone(), counters.clone(), sampling.clone()));
    // A workload starts only once every timeline step at or before its time has been done, so
    // a fault set "at 0s" is in force for a workload "at 0s" in every run (a race there made
    // the same seed give different counts).
    let (steps_done, _) = watch::channel(0usize);
    let mut handles: Vec<JoinHandle<Outcome>> = Vec::new();
    for (index, workload) in scenario.workload.iter().enumerate() {
        let kind = workload.kind().expect("checked when the file was read");
        let ctx = ctx.clone();
        let at = workload.at;
        let baseline = baselines.remove(&index);
        let steps_before = scenario.timeline.iter().filter(|s| s.at <= at).count();
        let mut steps_done = steps_done.subscribe();
        handles.push(tokio::spawn(async move {
            tokio::time::sleep_until(ctx.start + at).await;
            // An error means the timeline task ended: nothing more will happen before us.
            let _ = steps_done.wait_for(|done| *done >= steps_before).await;
            run_workload(&ctx, kind, baseline).await
        }));
    }
    let timeline = tokio::spawn(run_timeline(
        scenario.clone(),
        emulator.clone(),
        ctx.client,
        counters.clone(),
        ctx.start,
        steps_done,
    ));

    let timeout = scenario.timeout.unwrap_or(DEFAULT_SCENARIO_TIMEOUT);
    let deadline = ctx.start + timeout;
    let mut outcomes: Vec<Option<Outcome>> = handles.iter().map(|_| None).collect();
    let all_done = async {
        for (handle, outcome) in handles.iter_mut().zip(&mut outcomes) {
            *outcome = Some(handle.await.unwrap_or_else(|e| {
                let mut out = Outcome::default();
                out.error(format!("the workload failed: {e}"));
                out
            }));
        }
    };
    let completed = tokio::time::timeout_at(deadline, all_done).await.is_ok();
    let events = if timeline.is_finished() || completed {
        timeline.await.unwrap_or_default()
    } else {
        timeline.abort();
        Vec::new()
    };
    sampling.cancel();
    let _ = sampler.await;
    lock(&counters).sample(emulator);

    let mut workloads = Vec::new();
    let mut facts = Facts::new();
    for ((workload, handle), outcome) in scenario.workload.iter().zip(handles).zip(outcomes) {
        handle.abort();
        let outcome = if let Some(outcome) = outcome {
            outcome
        } else {
            let mut out = Outcome::default();
            out.error(format!(
                "did not finish within the scenario's timeout ({})",
                show_duration(timeout)
            ));
            out
        };
        for (name, fact) in outcome.facts {
            facts.insert(format!("{}.{name}", workload.name), fact);
        }
        workloads.push(WorkloadReport {
            name: workload.name.clone(),
            kind: kind_name(&workload.kind().expect("checked when the file was read")),
            lines: outcome.lines,
        });
    }
    let counters = std::mem::take(&mut *lock(&counters));
    for rule in counters.rules.values() {
        for key in std::iter::once(&rule.id).chain(&rule.label) {
            facts.insert(format!("faults.{key}.matched"), Fact::from(rule.matched));
            facts.insert(format!("faults.{key}.injected"), Fact::from(rule.injected));
        }
    }
    for (action, count) in &counters.totals {
        facts.insert(format!("faults.total.{action}"), Fact::from(*count));
    }

    let expectations: Vec<_> = scenario
        .expect
        .iter()
        .map(|e| report::check(e, &facts))
        .collect();
    let passed = completed
        && events.iter().all(|e: &Event| !e.failed)
        && expectations.iter().all(|c| c.passed);
    Ok(Report {
        name: scenario.name.clone(),
        description: scenario.description.clone(),
        seed,
        instances: instance_ids.to_vec(),
        timeline: events,
        workloads,
        faults: counters.rules.into_values().collect(),
        fault_totals: counters.totals,
        facts,
        expectations,
        completed,
        seconds: began.elapsed().as_secs_f64(),
        passed,
    })
}

fn kind_name(kind: &WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::SendCommand(_) => "send-command",
        WorkloadKind::Shell(_) => "shell",
        WorkloadKind::PortTransfer(_) => "port-transfer",
        WorkloadKind::ApiStorm(_) => "api-storm",
        WorkloadKind::ApiCall(_) => "api-call",
    }
}

async fn run_workload(
    ctx: &Context,
    kind: WorkloadKind,
    baseline: Option<Result<workload::port::Transfer, String>>,
) -> Outcome {
    match kind {
        WorkloadKind::SendCommand(spec) => workload::command::run(ctx, &spec).await,
        WorkloadKind::Shell(spec) => workload::shell::run(ctx, &spec).await,
        WorkloadKind::PortTransfer(spec) => {
            let result = workload::port::transfer(ctx, &spec).await;
            workload::port::outcome(&spec, result, baseline)
        }
        WorkloadKind::ApiStorm(spec) => workload::storm::run(ctx, &spec).await,
        WorkloadKind::ApiCall(spec) => workload::call::run(ctx, &spec).await,
    }
}

/// Waits until every agent's control channel is open.
async fn wait_online(emulator: &Emulator, ids: &[String]) -> Result<(), RunError> {
    let scope = emulator.scope(emulator.default_region());
    let deadline = Instant::now() + FLEET_ONLINE_LIMIT;
    loop {
        let connected: Vec<String> = emulator
            .instances(&scope)
            .into_iter()
            .filter(|node| node.connected)
            .map(|node| node.instance_id)
            .collect();
        let missing: Vec<String> = ids
            .iter()
            .filter(|id| !connected.contains(id))
            .cloned()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(RunError::Fleet {
                limit: FLEET_ONLINE_LIMIT,
                missing,
            });
        }
        tokio::time::sleep(super::limits::POLL_PERIOD).await;
    }
}

/// Samples the fault counters until cancelled.
async fn sample(emulator: Emulator, counters: Arc<Mutex<Counters>>, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(COUNTER_SAMPLE_PERIOD);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => lock(&counters).sample(&emulator),
        }
    }
}

/// Runs the steps at their times (in time order; steps at the same time in file order).
async fn run_timeline(
    scenario: Scenario,
    emulator: Emulator,
    client: Client,
    counters: Arc<Mutex<Counters>>,
    start: Instant,
    steps_done: watch::Sender<usize>,
) -> Vec<Event> {
    let mut steps: Vec<_> = scenario.timeline.iter().collect();
    steps.sort_by_key(|step| step.at);
    let mut events = Vec::new();
    for (done, step) in steps.into_iter().enumerate() {
        tokio::time::sleep_until(start + step.at).await;
        let action = step.action().expect("checked when the file was read");
        let what = describe(&action);
        let result = act(&emulator, client, &counters, action).await;
        let late = format!("+{:.2}s", start.elapsed().as_secs_f64());
        let failed = result.is_err();
        let outcome = match result {
            Ok(done) => format!("{done} ({late})"),
            Err(e) => format!("{e} ({late})"),
        };
        tracing::info!(at = ?step.at, what, outcome, "scenario step");
        events.push(Event {
            at: show_duration(step.at),
            action: what,
            outcome,
            failed,
        });
        steps_done.send_replace(done + 1);
    }
    events
}

fn describe(action: &Action) -> String {
    match action {
        Action::Fault(rule, label) => format!(
            "add fault{} {}",
            label
                .as_deref()
                .map(|l| format!(" {l:?}"))
                .unwrap_or_default(),
            serde_json::to_string(rule).unwrap_or_default()
        ),
        Action::RemoveFault(label) => format!("remove fault {label:?}"),
        Action::ClearFaults => "clear faults".to_owned(),
        Action::AdvanceClock(by) => format!("advance the clock {}", show_duration(*by)),
        Action::Proxy(ProxyAction::Down) => "agent proxy down".to_owned(),
        Action::Proxy(ProxyAction::Up) => "agent proxy up".to_owned(),
        Action::Crash(crash) => format!(
            "crash agent {}{}",
            crash.instance,
            crash
                .restart_after
                .map(|d| format!(", restart after {}", show_duration(d)))
                .unwrap_or_default()
        ),
        Action::Restart(instance) => format!("restart agent {instance}"),
    }
}

/// Does one step; what came of it in words.
async fn act(
    emulator: &Emulator,
    client: Client,
    counters: &Mutex<Counters>,
    action: Action,
) -> Result<String, String> {
    match action {
        Action::Fault(rule, label) => {
            let id = emulator.add_fault(*rule).map_err(|e| e.0)?;
            let mut counters = lock(counters);
            if let Some(label) = label {
                counters.labels.insert(label, id.clone());
            }
            counters.sample(emulator);
            Ok(format!("rule {id}"))
        }
        Action::RemoveFault(label) => {
            let id = lock(counters)
                .labels
                .get(&label)
                .cloned()
                .unwrap_or_default();
            // Sampled first: what the rule did up to now stays in the report.
            lock(counters).sample(emulator);
            if emulator.remove_fault(&id) {
                Ok(format!("rule {id} removed"))
            } else {
                Ok(format!("rule {id} had already ended"))
            }
        }
        Action::ClearFaults => {
            lock(counters).sample(emulator);
            emulator.clear_faults();
            Ok("every rule removed".to_owned())
        }
        Action::AdvanceClock(by) => {
            let offset = emulator.advance_clock(by);
            Ok(format!(
                "the clock is {} ahead of real time",
                show_duration(offset)
            ))
        }
        Action::Proxy(state) => {
            let state = match state {
                ProxyAction::Down => "down",
                ProxyAction::Up => "up",
            };
            admin(client, "/_emulator/proxy", &json!({ "state": state })).await?;
            Ok(format!("proxy {state}"))
        }
        Action::Crash(crash) => {
            let body = json!({
                "restartAfterSeconds": crash.restart_after.map(|d| d.as_secs_f64()),
            });
            let path = format!("/_emulator/agents/{}/crash", crash.instance);
            admin(client, &path, &body).await?;
            Ok("agent down".to_owned())
        }
        Action::Restart(instance) => {
            admin(
                client,
                &format!("/_emulator/agents/{instance}/restart"),
                &json!({}),
            )
            .await?;
            Ok("agent restarting".to_owned())
        }
    }
}

/// POSTs to an admin route of the scenario's emulator.
async fn admin(client: Client, path: &str, body: &serde_json::Value) -> Result<(), String> {
    let endpoint = client.endpoint();
    let (status, answer) =
        crate::faults::cli::request(&endpoint, "POST", path, Some(&body.to_string()))
            .await
            .map_err(|e| e.to_string())?;
    if status < 300 {
        Ok(())
    } else {
        Err(format!("{path} answered {status}: {answer}"))
    }
}
