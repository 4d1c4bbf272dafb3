//! Per-agent resource limits, named once so the simulator and its tests agree.

/// How many Run Command jobs one agent runs at once; further jobs wait their turn.
///
/// The real agent's command worker pool defaults to 5 (`DefaultCommandWorkersLimit` in
/// `agent/appconfig/constants.go`, configured as `Mds.CommandWorkersLimit`), so a fleet test that
/// sends a sixth command sees it queue, as on a real instance.
pub const MAX_CONCURRENT_COMMANDS: usize = 5;
