//! The fault rules in force, their counters, and every decision they make, under one lock and
//! with one seeded RNG: the same seed, rules and frames (in the same order) give the same
//! decisions. Nothing here does I/O or reads a clock: time comes in as an argument.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use ssm_protocol::{Message, MessageType};
use tokio::time::Instant;
use uuid::Uuid;

use super::link::AgentService;
use super::rules::{
    ApiFaultError, ApiRule, Corruption, FaultRule, LinkRule, RelayAction, RelayRule,
};
use crate::sessions::{Direction, End, RelayEffect, RelayedFrame};

/// Offset of CreatedDate in a frame (§1.1).
const CREATED_DATE: std::ops::Range<usize> = 40..48;
/// Offset of PayloadDigest in a frame (§1.1).
const PAYLOAD_DIGEST: usize = 80;

/// A rule and what it did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleReport {
    /// The rule's id (`f-1`, `f-2`, …), for `DELETE /_emulator/faults/{id}`.
    pub id: String,
    /// The rule as given.
    pub rule: FaultRule,
    /// Frames (relay rules) or requests (api rules) it looked at.
    pub matched: u64,
    /// How often it acted: frames dropped, duplicated, kept back, delayed, corrupted;
    /// sockets closed; frames sent to agents; errors returned or latencies added.
    pub injected: u64,
}

/// The answer of `GET /_emulator/faults`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultsReport {
    /// The seed of the fault RNG.
    pub seed: u64,
    /// The rules in force, oldest first.
    pub faults: Vec<RuleReport>,
    /// Everything injected since the start (or the last reset), by action (`drop`,
    /// `ThrottlingException`, `latency`, …), including by rules since removed.
    pub totals: BTreeMap<String, u64>,
}

/// A rule in force.
#[derive(Debug)]
struct Entry {
    id: u64,
    rule: FaultRule,
    matched: u64,
    injected: u64,
}

/// The state of one rule on one direction of one session.
#[derive(Debug, Default)]
struct StreamState {
    /// Reorder: frames kept back, each with how many more frames it waits for.
    held: Vec<(u32, RelayedFrame)>,
    /// Bandwidth: when the last paced frame is through.
    busy_until: Option<Instant>,
}

/// The state of a one-shot rule in one session.
#[derive(Debug, Default)]
struct TriggerState {
    frames: u64,
    bytes: u64,
    fired: bool,
}

/// What API rules decided for one request.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ApiDecision {
    /// Wait this long before answering.
    pub latency: Duration,
    /// Answer with this error instead.
    pub error: Option<ApiFaultError>,
}

/// Frames a removed rule had kept back: `(session, to, frame)`, to be sent now.
pub type Released = Vec<(String, End, Vec<u8>)>;

/// Where a frame is: what relay rules are matched against.
#[derive(Debug, Clone, Copy)]
pub struct FramePlace<'a> {
    /// The session.
    pub session_id: &'a str,
    /// The session's target, if known.
    pub instance_id: Option<&'a str>,
    /// Which way the frame goes.
    pub direction: Direction,
}

/// The rules, their state and the RNG.
#[derive(Debug)]
pub struct Engine {
    seed: u64,
    rng: StdRng,
    next_id: u64,
    rules: Vec<Entry>,
    streams: HashMap<(u64, String, Direction), StreamState>,
    triggers: HashMap<(u64, String), TriggerState>,
    /// InvocationDoesNotExist: reads of each CommandId so far, per rule.
    reads: HashMap<(u64, String), u32>,
    totals: BTreeMap<String, u64>,
}

impl Engine {
    /// No rules; the RNG seeded with `seed`.
    pub fn new(seed: u64) -> Engine {
        Engine {
            seed,
            rng: StdRng::seed_from_u64(seed),
            next_id: 0,
            rules: Vec::new(),
            streams: HashMap::new(),
            triggers: HashMap::new(),
            reads: HashMap::new(),
            totals: BTreeMap::new(),
        }
    }

    /// Restarts the RNG from `seed`.
    pub fn reseed(&mut self, seed: u64) {
        self.seed = seed;
        self.rng = StdRng::seed_from_u64(seed);
    }

    /// Adds a rule (already checked); returns its id.
    pub fn add(&mut self, rule: FaultRule) -> String {
        self.next_id += 1;
        self.rules.push(Entry {
            id: self.next_id,
            rule,
            matched: 0,
            injected: 0,
        });
        rule_name(self.next_id)
    }

    /// The rule `id` (as `f-N`), if in force.
    pub fn rule(&self, id: &str) -> Option<&FaultRule> {
        let id = parse_id(id)?;
        self.rules.iter().find(|e| e.id == id).map(|e| &e.rule)
    }

    /// Removes rule `id` (as `f-N`). `None` if there is no such rule; else the frames it kept
    /// back, to be sent.
    pub fn remove(&mut self, id: &str) -> Option<Released> {
        let id = parse_id(id)?;
        let at = self.rules.iter().position(|e| e.id == id)?;
        self.rules.remove(at);
        self.triggers.retain(|(rule, _), _| *rule != id);
        self.reads.retain(|(rule, _), _| *rule != id);
        let mut released = Vec::new();
        self.streams.retain(|(rule, session, direction), state| {
            if *rule == id {
                for (_, frame) in state.held.drain(..) {
                    released.push((session.clone(), End::receiving(*direction), frame.bytes));
                }
            }
            *rule != id
        });
        Some(released)
    }

    /// Removes every rule; returns the frames they kept back.
    pub fn clear(&mut self) -> Released {
        let ids: Vec<u64> = self.rules.iter().map(|e| e.id).collect();
        ids.into_iter()
            .filter_map(|id| self.remove(&rule_name(id)))
            .flatten()
            .collect()
    }

    /// Removes every rule and forgets the totals (keeps the seed and the RNG where it is).
    pub fn reset(&mut self) {
        self.clear();
        self.totals.clear();
    }

    /// Whether any relay rule is in force.
    pub fn has_relay_rules(&self) -> bool {
        self.rules
            .iter()
            .any(|e| matches!(e.rule, FaultRule::Relay(_)))
    }

    /// Whether any api rule is in force.
    pub fn has_api_rules(&self) -> bool {
        self.rules
            .iter()
            .any(|e| matches!(e.rule, FaultRule::Api(_)))
    }

    /// Whether any `agentLink` or `sessionService` rule is in force.
    pub fn has_link_rules(&self) -> bool {
        self.rules.iter().any(|e| {
            matches!(
                e.rule,
                FaultRule::AgentLink(_) | FaultRule::SessionService(_)
            )
        })
    }

    /// Whether the link rules refuse a request of `instance_id`'s agent to `service`; counts
    /// it on every rule that watches it.
    pub fn refuses_agent(&mut self, service: AgentService, instance_id: &str) -> bool {
        let mut refused = false;
        for entry in &mut self.rules {
            let Some(rule) = link_rule(&entry.rule) else {
                continue;
            };
            if !link_watches(&entry.rule, rule, service, instance_id) {
                continue;
            }
            entry.matched += 1;
            entry.injected += 1;
            refused = true;
            let name = relay_action_name(&entry.rule);
            *self.totals.entry(name.to_owned()).or_default() += 1;
        }
        refused
    }

    /// Whether a link rule (`id` as `f-N`) cuts `instance_id`'s agent off `service`.
    pub fn link_rule_cuts(&self, id: &str, service: AgentService, instance_id: &str) -> bool {
        let Some(id) = parse_id(id) else {
            return false;
        };
        self.rules.iter().any(|e| {
            e.id == id
                && link_rule(&e.rule)
                    .is_some_and(|r| link_watches(&e.rule, r, service, instance_id))
        })
    }

    /// Whether a relay rule names an instance (so frames need their session's target).
    pub fn needs_targets(&self) -> bool {
        self.rules
            .iter()
            .any(|e| matches!(&e.rule, FaultRule::Relay(r) if r.instance_id.is_some()))
    }

    /// The rules and counters.
    pub fn report(&self) -> FaultsReport {
        FaultsReport {
            seed: self.seed,
            faults: self
                .rules
                .iter()
                .map(|e| RuleReport {
                    id: rule_name(e.id),
                    rule: e.rule.clone(),
                    matched: e.matched,
                    injected: e.injected,
                })
                .collect(),
            totals: self.totals.clone(),
        }
    }

    /// A `pause_publication` or `start_publication` frame of the service (§5): unsequenced,
    /// nothing in the payload (the agent reads only the type), CreatedDate `wall_ms`.
    pub fn publication_frame(&mut self, message_type: MessageType, wall_ms: u64) -> Vec<u8> {
        let id = Uuid::from_u128(self.rng.random());
        Message::new(message_type, wall_ms.max(1), id).encode()
    }

    /// Records that one-shot rule `id` fired in `sessions` sessions (a timer or at once).
    pub fn count_fired(&mut self, id: u64, sessions: u64) {
        if let Some(entry) = self.rules.iter_mut().find(|e| e.id == id) {
            entry.injected += sessions;
            let name = relay_action_name(&entry.rule);
            *self.totals.entry(name.to_owned()).or_default() += sessions;
        }
    }

    /// The relay rules decide about `frame` at `place`: the frames to send go to `out`, what
    /// else the service does to `effects`. `now` paces bandwidth; `wall_ms` dates frames the
    /// service writes.
    pub fn on_frame(
        &mut self,
        place: FramePlace<'_>,
        frame: RelayedFrame,
        now: Instant,
        wall_ms: u64,
        out: &mut Vec<RelayedFrame>,
        effects: &mut Vec<RelayEffect>,
    ) {
        let mut frames = vec![frame];
        for index in 0..self.rules.len() {
            let Entry { id, rule, .. } = &self.rules[index];
            let (id, FaultRule::Relay(rule)) = (*id, rule) else {
                continue;
            };
            if !relay_matches(rule, place) {
                continue;
            }
            let rule = rule.clone();
            let seen = frames.len() as u64;
            let before = frames.len();
            let (next, acted) = if rule.action.is_one_shot() {
                let acted = self.trigger(id, &rule, place, &frames, wall_ms, effects);
                (frames, acted)
            } else {
                self.apply(id, &rule.action, place, frames, now)
            };
            frames = next;
            let entry = &mut self.rules[index];
            entry.matched += seen;
            entry.injected += acted;
            if acted > 0 {
                *self
                    .totals
                    .entry(rule.action.name().to_owned())
                    .or_default() += acted;
            }
            tracing::trace!(
                rule = rule_name(id),
                action = rule.action.name(),
                before,
                after = frames.len(),
                "relay fault"
            );
        }
        out.extend(frames);
    }

    /// A per-frame action on `frames`: what goes on, and how many times it acted.
    fn apply(
        &mut self,
        id: u64,
        action: &RelayAction,
        place: FramePlace<'_>,
        frames: Vec<RelayedFrame>,
        now: Instant,
    ) -> (Vec<RelayedFrame>, u64) {
        let mut out = Vec::with_capacity(frames.len());
        let mut acted = 0;
        for mut frame in frames {
            match action {
                RelayAction::Drop { probability } => {
                    if self.chance(*probability) {
                        acted += 1;
                    } else {
                        out.push(frame);
                    }
                }
                RelayAction::Blackhole {} => acted += 1,
                RelayAction::Duplicate { probability } => {
                    if self.chance(*probability) {
                        acted += 1;
                        out.push(frame.clone());
                    }
                    out.push(frame);
                }
                RelayAction::Delay { ms, jitter_ms } => {
                    let jitter = if *jitter_ms > 0 {
                        self.rng.random_range(0..=*jitter_ms)
                    } else {
                        0
                    };
                    frame.hold += Duration::from_millis(ms + jitter);
                    acted += 1;
                    out.push(frame);
                }
                RelayAction::Corrupt { what, probability } => {
                    if self.chance(*probability) && corrupt(&mut frame.bytes, *what) {
                        acted += 1;
                    }
                    out.push(frame);
                }
                RelayAction::Bandwidth { bytes_per_second } => {
                    let state = self.stream(id, place);
                    let start = state.busy_until.map_or(now, |busy| busy.max(now));
                    let took = Duration::from_secs_f64(
                        frame.bytes.len() as f64 / *bytes_per_second as f64,
                    );
                    let done = start + took;
                    state.busy_until = Some(done);
                    let wait = done.saturating_duration_since(now);
                    if wait > frame.hold {
                        frame.hold = wait;
                        acted += 1;
                    }
                    out.push(frame);
                }
                RelayAction::Reorder {
                    probability,
                    window,
                } => {
                    let keep = self.chance(*probability);
                    let wait = if keep {
                        self.rng.random_range(1..=*window)
                    } else {
                        0
                    };
                    let state = self.stream(id, place);
                    for (left, _) in &mut state.held {
                        *left -= 1;
                    }
                    if keep {
                        acted += 1;
                        state.held.push((wait, frame));
                    } else {
                        out.push(frame);
                    }
                    while let Some(at) = state.held.iter().position(|(left, _)| *left == 0) {
                        out.push(state.held.remove(at).1);
                    }
                }
                RelayAction::Close { .. }
                | RelayAction::PausePublication {}
                | RelayAction::StartPublication {} => out.push(frame),
            }
        }
        (out, acted)
    }

    /// A one-shot rule with a frame or byte trigger counts `frames`; fires once the count is
    /// reached. Returns 1 if it fired.
    fn trigger(
        &mut self,
        id: u64,
        rule: &RelayRule,
        place: FramePlace<'_>,
        frames: &[RelayedFrame],
        wall_ms: u64,
        effects: &mut Vec<RelayEffect>,
    ) -> u64 {
        if rule.after_frames.is_none() && rule.after_bytes.is_none() {
            // Timed (or immediate): fired by `super::fire`, not by frames.
            return 0;
        }
        let state = self
            .triggers
            .entry((id, place.session_id.to_owned()))
            .or_default();
        if state.fired {
            return 0;
        }
        state.frames += frames.len() as u64;
        state.bytes += frames.iter().map(|f| f.bytes.len() as u64).sum::<u64>();
        let due = rule.after_frames.is_some_and(|n| state.frames >= n)
            || rule.after_bytes.is_some_and(|n| state.bytes >= n);
        if !due {
            return 0;
        }
        state.fired = true;
        effects.push(self.one_shot_effect(&rule.action, wall_ms));
        1
    }

    /// The effect of a one-shot action.
    pub fn one_shot_effect(&mut self, action: &RelayAction, wall_ms: u64) -> RelayEffect {
        match action {
            RelayAction::Close { end, code, reason } => RelayEffect::Disconnect {
                end: (*end).into(),
                code: *code,
                reason: reason.clone(),
            },
            RelayAction::StartPublication {} => RelayEffect::Inject {
                end: End::Agent,
                bytes: self.publication_frame(MessageType::StartPublication, wall_ms),
            },
            // Only one-shot actions get here; pause is the remaining one.
            _ => RelayEffect::Inject {
                end: End::Agent,
                bytes: self.publication_frame(MessageType::PausePublication, wall_ms),
            },
        }
    }

    /// The API rules decide about one request of `operation`; `command_id` is the request's
    /// CommandId (read only for InvocationDoesNotExist rules).
    pub fn on_api_call(
        &mut self,
        operation: &str,
        command_id: impl Fn() -> Option<String>,
    ) -> ApiDecision {
        let mut decision = ApiDecision::default();
        for index in 0..self.rules.len() {
            let Entry { id, rule, .. } = &self.rules[index];
            let (id, FaultRule::Api(rule)) = (*id, rule) else {
                continue;
            };
            if rule.operation.as_deref().is_some_and(|op| op != operation) {
                continue;
            }
            let rule: ApiRule = rule.clone();
            let mut acted = Vec::new();
            if let Some(ms) = rule.latency_ms {
                decision.latency += Duration::from_millis(ms);
                acted.push("latency".to_owned());
            }
            if let Some(error) = rule.error
                && decision.error.is_none()
                && self.api_error_fires(id, &rule, &command_id)
            {
                decision.error = Some(error);
                acted.push(format!("{error:?}"));
            }
            let entry = &mut self.rules[index];
            entry.matched += 1;
            entry.injected += u64::from(!acted.is_empty());
            for name in acted {
                *self.totals.entry(name).or_default() += 1;
            }
        }
        decision
    }

    fn api_error_fires(
        &mut self,
        id: u64,
        rule: &ApiRule,
        command_id: &impl Fn() -> Option<String>,
    ) -> bool {
        match rule.first_reads {
            Some(first) => {
                let Some(command_id) = command_id() else {
                    return false;
                };
                let reads = self.reads.entry((id, command_id)).or_default();
                *reads += 1;
                *reads <= first
            }
            None => self.chance(rule.rate),
        }
    }

    /// One draw of the RNG: true with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        self.rng.random::<f64>() < p
    }

    fn stream(&mut self, id: u64, place: FramePlace<'_>) -> &mut StreamState {
        self.streams
            .entry((id, place.session_id.to_owned(), place.direction))
            .or_default()
    }
}

/// Whether relay rule `rule` watches a frame at `place`.
fn relay_matches(rule: &RelayRule, place: FramePlace<'_>) -> bool {
    rule.session_id
        .as_deref()
        .is_none_or(|s| s == place.session_id)
        && rule
            .instance_id
            .as_deref()
            .is_none_or(|i| Some(i) == place.instance_id)
        && rule.direction.is_none_or(|d| d.matches(place.direction))
}

/// Whether a relay rule watches the session `session_id` of `instance_id` (either direction).
pub fn watches_session(rule: &RelayRule, session_id: &str, instance_id: &str) -> bool {
    rule.session_id.as_deref().is_none_or(|s| s == session_id)
        && rule.instance_id.as_deref().is_none_or(|i| i == instance_id)
}

/// The [`LinkRule`] of an `agentLink` or `sessionService` rule.
fn link_rule(rule: &FaultRule) -> Option<&LinkRule> {
    match rule {
        FaultRule::AgentLink(r) | FaultRule::SessionService(r) => Some(r),
        FaultRule::Relay(_) | FaultRule::Api(_) => None,
    }
}

/// Whether link rule `rule` (of kind `kind`) cuts `instance_id`'s agent off `service`:
/// `agentLink` cuts every agent-facing service, `sessionService` ssmmessages only.
fn link_watches(
    kind: &FaultRule,
    rule: &LinkRule,
    service: AgentService,
    instance_id: &str,
) -> bool {
    let service_cut = match kind {
        FaultRule::SessionService(_) => service == AgentService::SsmMessages,
        _ => true,
    };
    service_cut && rule.instance_id.as_deref().is_none_or(|i| i == instance_id)
}

fn relay_action_name(rule: &FaultRule) -> &'static str {
    match rule {
        FaultRule::Relay(r) => r.action.name(),
        FaultRule::Api(_) => "api",
        FaultRule::AgentLink(_) => "agentLink",
        FaultRule::SessionService(_) => "sessionService",
    }
}

/// Damages `bytes` as `what` says (§1.4); false if the frame is too short to have the field.
fn corrupt(bytes: &mut [u8], what: Corruption) -> bool {
    match what {
        Corruption::Digest => match bytes.get_mut(PAYLOAD_DIGEST) {
            Some(b) => {
                *b ^= 0xff;
                true
            }
            None => false,
        },
        Corruption::Header => match bytes.get_mut(CREATED_DATE) {
            Some(date) => {
                date.fill(0);
                true
            }
            None => false,
        },
    }
}

/// `f-N`.
pub fn rule_name(id: u64) -> String {
    format!("f-{id}")
}

/// The N of `f-N`.
pub fn parse_id(id: &str) -> Option<u64> {
    id.strip_prefix("f-")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::rules::{DirectionSpec, EndSpec};
    use crate::sessions::Opcode;
    use ssm_protocol::PayloadType;
    use ssm_protocol::message::{Header, Validation};

    fn frame(seq: i64) -> RelayedFrame {
        let mut m = Message::new(
            MessageType::OutputStreamData,
            1_700_000_000_000,
            Uuid::from_u128(seq as u128 + 1),
        );
        m.sequence_number = seq;
        m.payload_type = PayloadType::Output;
        m.payload = format!("frame {seq}").into_bytes();
        RelayedFrame {
            bytes: m.encode(),
            opcode: Opcode::Binary,
            hold: Duration::ZERO,
        }
    }

    fn seq(frame: &RelayedFrame) -> i64 {
        Header::parse(&frame.bytes).unwrap().sequence_number
    }

    fn relay(action: RelayAction) -> FaultRule {
        FaultRule::Relay(RelayRule {
            action,
            session_id: None,
            instance_id: None,
            direction: None,
            after_frames: None,
            after_bytes: None,
            after_ms: None,
        })
    }

    const OUT: FramePlace<'static> = FramePlace {
        session_id: "s-1",
        instance_id: Some("i-1"),
        direction: Direction::AgentToClient,
    };

    /// Feeds frames 0..n through `engine` at `now`; returns what came out per frame.
    fn run(
        engine: &mut Engine,
        n: i64,
        now: Instant,
    ) -> Vec<(Vec<RelayedFrame>, Vec<RelayEffect>)> {
        (0..n)
            .map(|i| {
                let (mut out, mut effects) = (Vec::new(), Vec::new());
                engine.on_frame(OUT, frame(i), now, 1, &mut out, &mut effects);
                (out, effects)
            })
            .collect()
    }

    fn seqs(results: &[(Vec<RelayedFrame>, Vec<RelayEffect>)]) -> Vec<i64> {
        results
            .iter()
            .flat_map(|(f, _)| f.iter().map(seq))
            .collect()
    }

    #[test]
    fn no_rules_pass_every_frame_unchanged() {
        let mut engine = Engine::new(1);
        let results = run(&mut engine, 3, Instant::now());
        assert_eq!(seqs(&results), [0, 1, 2]);
        assert_eq!(results[0].0[0], frame(0));
    }

    #[test]
    fn same_seed_same_frames_same_decisions() {
        let decide = |seed| {
            let mut engine = Engine::new(seed);
            engine.add(relay(RelayAction::Drop { probability: 0.3 }));
            engine.add(relay(RelayAction::Duplicate { probability: 0.2 }));
            engine.add(relay(RelayAction::Reorder {
                probability: 0.2,
                window: 3,
            }));
            seqs(&run(&mut engine, 200, Instant::now()))
        };
        assert_eq!(decide(7), decide(7));
        assert_ne!(decide(7), decide(8));
        // Reseeding restarts the sequence.
        let mut engine = Engine::new(99);
        engine.add(relay(RelayAction::Drop { probability: 0.5 }));
        let first = seqs(&run(&mut engine, 50, Instant::now()));
        engine.reseed(99);
        assert_eq!(seqs(&run(&mut engine, 50, Instant::now())), first);
    }

    #[test]
    fn drop_removes_about_p_of_the_frames_and_counts_them() {
        let mut engine = Engine::new(3);
        engine.add(relay(RelayAction::Drop { probability: 0.25 }));
        let passed = seqs(&run(&mut engine, 1000, Instant::now())).len() as u64;
        let report = engine.report();
        assert_eq!(report.faults[0].matched, 1000);
        assert_eq!(report.faults[0].injected, 1000 - passed);
        assert_eq!(report.totals["drop"], 1000 - passed);
        assert!(
            (150..350).contains(&(1000 - passed)),
            "dropped {}",
            1000 - passed
        );
    }

    #[test]
    fn direction_and_session_scope_what_a_rule_sees() {
        let mut engine = Engine::new(3);
        engine.add(FaultRule::Relay(RelayRule {
            direction: Some(DirectionSpec::ClientToAgent),
            ..match relay(RelayAction::Blackhole {}) {
                FaultRule::Relay(r) => r,
                _ => unreachable!(),
            }
        }));
        engine.add(FaultRule::Relay(RelayRule {
            session_id: Some("other".into()),
            ..match relay(RelayAction::Blackhole {}) {
                FaultRule::Relay(r) => r,
                _ => unreachable!(),
            }
        }));
        assert_eq!(seqs(&run(&mut engine, 3, Instant::now())), [0, 1, 2]);
        let (mut out, mut effects) = (Vec::new(), Vec::new());
        let to_agent = FramePlace {
            direction: Direction::ClientToAgent,
            ..OUT
        };
        engine.on_frame(
            to_agent,
            frame(0),
            Instant::now(),
            1,
            &mut out,
            &mut effects,
        );
        assert!(out.is_empty());
        assert_eq!(engine.report().totals["blackhole"], 1);
    }

    #[test]
    fn duplicate_sends_twice() {
        let mut engine = Engine::new(3);
        engine.add(relay(RelayAction::Duplicate { probability: 1.0 }));
        assert_eq!(seqs(&run(&mut engine, 2, Instant::now())), [0, 0, 1, 1]);
    }

    #[test]
    fn reorder_keeps_frames_back_within_the_window_and_loses_none() {
        let mut engine = Engine::new(11);
        engine.add(relay(RelayAction::Reorder {
            probability: 0.5,
            window: 3,
        }));
        let results = run(&mut engine, 100, Instant::now());
        let mut got = seqs(&results);
        // Frames still kept back come out when the rule goes.
        let released = engine.remove("f-1").unwrap();
        got.extend(released.iter().map(|(s, end, b)| {
            assert_eq!((s.as_str(), *end), ("s-1", End::Client));
            Header::parse(b).unwrap().sequence_number
        }));
        assert_ne!(got, (0..100).collect::<Vec<_>>(), "nothing was reordered");
        for (position, &s) in got.iter().enumerate() {
            assert!(
                s as usize <= position + 3,
                "frame {s} came out at {position}"
            );
        }
        got.sort_unstable();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn delay_holds_with_jitter_in_range() {
        let mut engine = Engine::new(5);
        engine.add(relay(RelayAction::Delay {
            ms: 100,
            jitter_ms: 50,
        }));
        let holds: Vec<Duration> = run(&mut engine, 50, Instant::now())
            .iter()
            .map(|(f, _)| f[0].hold)
            .collect();
        assert!(holds.iter().all(|h| (100..=150).contains(&h.as_millis())));
        assert!(holds.iter().any(|h| *h != holds[0]), "no jitter");
    }

    #[test]
    fn bandwidth_paces_frames() {
        let mut engine = Engine::new(5);
        let len = frame(0).bytes.len() as u64;
        // One frame a second.
        engine.add(relay(RelayAction::Bandwidth {
            bytes_per_second: len,
        }));
        let now = Instant::now();
        let holds: Vec<u128> = run(&mut engine, 3, now)
            .iter()
            .map(|(f, _)| f[0].hold.as_millis())
            .collect();
        assert_eq!(holds, [1000, 2000, 3000]);
        // Later, the link is idle again.
        let later = run(&mut engine, 1, now + Duration::from_secs(10));
        assert_eq!(later[0].0[0].hold, Duration::from_secs(1));
    }

    #[test]
    fn corrupt_digest_fails_the_plugin_check_and_header_fails_both() {
        let mut engine = Engine::new(5);
        engine.add(relay(RelayAction::Corrupt {
            what: Corruption::Digest,
            probability: 1.0,
        }));
        let bad = &run(&mut engine, 1, Instant::now())[0].0[0].bytes;
        assert!(Message::decode(bad, Validation::Client).is_err());
        assert!(Message::decode(bad, Validation::Agent).is_ok());

        let mut engine = Engine::new(5);
        engine.add(relay(RelayAction::Corrupt {
            what: Corruption::Header,
            probability: 1.0,
        }));
        let bad = &run(&mut engine, 1, Instant::now())[0].0[0].bytes;
        assert!(Message::decode(bad, Validation::Client).is_err());
        assert!(Message::decode(bad, Validation::Agent).is_err());
    }

    #[test]
    fn close_after_n_frames_fires_once_after_the_nth() {
        let mut engine = Engine::new(5);
        let FaultRule::Relay(mut rule) = relay(RelayAction::Close {
            end: EndSpec::Client,
            code: 1000,
            reason: "Bye".into(),
        }) else {
            unreachable!()
        };
        rule.after_frames = Some(3);
        engine.add(FaultRule::Relay(rule));
        let results = run(&mut engine, 6, Instant::now());
        assert_eq!(seqs(&results), [0, 1, 2, 3, 4, 5]);
        let fired: Vec<usize> = (0..6).filter(|i| !results[*i].1.is_empty()).collect();
        assert_eq!(fired, [2]);
        assert_eq!(
            results[2].1,
            [RelayEffect::Disconnect {
                end: End::Client,
                code: 1000,
                reason: "Bye".into()
            }]
        );
        assert_eq!(engine.report().faults[0].injected, 1);
    }

    #[test]
    fn pause_after_bytes_sends_pause_publication_to_the_agent() {
        let mut engine = Engine::new(5);
        let FaultRule::Relay(mut rule) = relay(RelayAction::PausePublication {}) else {
            unreachable!()
        };
        rule.after_bytes = Some(1);
        engine.add(FaultRule::Relay(rule));
        let results = run(&mut engine, 2, Instant::now());
        let [RelayEffect::Inject { end, bytes }] = results[0].1.as_slice() else {
            panic!("{:?}", results[0].1)
        };
        assert_eq!(*end, End::Agent);
        let m = Message::decode(bytes, Validation::Agent).unwrap();
        assert_eq!(m.message_type, MessageType::PausePublication);
        assert!(results[1].1.is_empty());
    }

    #[test]
    fn api_rules_throttle_at_a_rate_and_fail_first_reads() {
        let mut engine = Engine::new(5);
        engine.add(FaultRule::Api(ApiRule {
            operation: Some("SendCommand".into()),
            error: Some(ApiFaultError::ThrottlingException),
            rate: 1.0,
            first_reads: None,
            latency_ms: Some(5),
        }));
        engine.add(FaultRule::Api(ApiRule {
            operation: Some("GetCommandInvocation".into()),
            error: Some(ApiFaultError::InvocationDoesNotExist),
            rate: 1.0,
            first_reads: Some(2),
            latency_ms: None,
        }));
        let throttled = engine.on_api_call("SendCommand", || None);
        assert_eq!(
            throttled,
            ApiDecision {
                latency: Duration::from_millis(5),
                error: Some(ApiFaultError::ThrottlingException)
            }
        );
        assert_eq!(
            engine.on_api_call("ListCommands", || None),
            ApiDecision::default()
        );
        let read = |engine: &mut Engine, id: &str| {
            engine
                .on_api_call("GetCommandInvocation", || Some(id.to_owned()))
                .error
        };
        let missing = Some(ApiFaultError::InvocationDoesNotExist);
        assert_eq!(read(&mut engine, "c1"), missing);
        assert_eq!(read(&mut engine, "c2"), missing);
        assert_eq!(read(&mut engine, "c1"), missing);
        assert_eq!(read(&mut engine, "c1"), None);
        assert_eq!(read(&mut engine, "c2"), missing);
        assert_eq!(read(&mut engine, "c2"), None);
        let totals = engine.report().totals;
        assert_eq!(totals["InvocationDoesNotExist"], 4);
        assert_eq!(totals["ThrottlingException"], 1);
    }
}
