//! Run Command scenarios: an emulator with a separate `ssm-agent-sim` fleet, bounded polls of a
//! command's state, and the AWS CLI's text formatter for asserting `--output text`.

use std::thread;
use std::time::Duration;

use serde_json::{Value, json};

use crate::agent::AgentSim;
use crate::emulator::Emulator;

/// How often, and how many times, a poll of command state asks. A bound on a poll, not an
/// assertion: the longest scenario (a 5-second executionTimeout) ends well within it.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
const POLL_ATTEMPTS: u32 = 1_200;

/// An emulator (no instances of its own) and one `ssm-agent-sim` process whose agents report
/// to it. The agents are the only managed nodes the emulator knows.
#[derive(Debug)]
pub struct Fleet {
    /// Declared first: fields drop in declaration order, so the agents stop before the
    /// emulator.
    pub agents: AgentSim,
    /// The emulator the agents report to.
    pub emu: Emulator,
    /// The agents' instance ids, in the order of the instances file.
    pub ids: Vec<String>,
}

impl Fleet {
    /// Starts the emulator with `emulator_args` and `ssm-agent-sim --instances-file <file of
    /// instances> --seed 1 <agent_args…>`, and waits until every agent is Online.
    ///
    /// `instances` is agent-sim's instances list (`[{"id": …, "tags": {…}}, …]`, see
    /// `agent-sim/instances.example.json`).
    pub fn start(instances: &Value, emulator_args: &[&str], agent_args: &[&str]) -> Fleet {
        let emu = Emulator::start_with(&json!({"instances": []}), emulator_args);
        let file = emu.dir().join("agents.json");
        std::fs::write(&file, json!({ "instances": instances }).to_string())
            .expect("can write the agents' instances file");
        let ids: Vec<String> = instances
            .as_array()
            .expect("instances is a list")
            .iter()
            .map(|i| {
                i["id"]
                    .as_str()
                    .expect("every instance has an id")
                    .to_owned()
            })
            .collect();
        let file = file.to_str().expect("a UTF-8 temporary path").to_owned();
        let mut args = vec!["--seed", "1", "--instances-file", &file];
        args.extend_from_slice(agent_args);
        let online: Vec<&str> = ids.iter().map(String::as_str).collect();
        let agents = AgentSim::start(&emu, &args, &online);
        Fleet { agents, emu, ids }
    }

    /// `n` untagged Linux agents with ids `i-0<prefix>…01` to `…0n`.
    pub fn plain(prefix: char, n: usize) -> Value {
        let instances: Vec<Value> = (1..=n).map(|i| json!({ "id": id(prefix, i) })).collect();
        Value::Array(instances)
    }

    /// GetCommandInvocation of `command_id` on `instance_id`, once `done` holds for its
    /// `Status`. Polls a bounded number of times; panics with the last answer and both
    /// processes' output if it never does.
    pub fn wait_invocation(
        &self,
        command_id: &str,
        instance_id: &str,
        done: impl Fn(&str) -> bool,
    ) -> Value {
        let mut last = Value::Null;
        for _ in 0..POLL_ATTEMPTS {
            let reply = self.emu.call(
                "GetCommandInvocation",
                &json!({"CommandId": command_id, "InstanceId": instance_id}),
            );
            assert_eq!(reply.status, 200, "GetCommandInvocation: {reply:?}");
            last = reply.json();
            if done(last["Status"].as_str().unwrap_or_default()) {
                return last;
            }
            thread::sleep(POLL_INTERVAL);
        }
        panic!(
            "invocation {command_id} on {instance_id} never reached the awaited status; last \
             answer: {last:#}\nagent-sim's output:\n{}",
            self.agents.log()
        );
    }

    /// GetCommandInvocation once its status is final (Success, Failed, Cancelled, TimedOut).
    pub fn wait_done(&self, command_id: &str, instance_id: &str) -> Value {
        self.wait_invocation(command_id, instance_id, is_final)
    }

    /// Polls (bounded) until `check` returns a value; panics with `what` if it never does.
    pub fn poll<T>(&self, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
        for _ in 0..POLL_ATTEMPTS {
            if let Some(value) = check() {
                return value;
            }
            thread::sleep(POLL_INTERVAL);
        }
        panic!(
            "{what}: not seen after {POLL_ATTEMPTS} polls\nagent-sim's output:\n{}",
            self.agents.log()
        );
    }

    /// The one command of ListCommands with `command_id`.
    pub fn command(&self, command_id: &str) -> Value {
        let reply = self
            .emu
            .call("ListCommands", &json!({ "CommandId": command_id }));
        assert_eq!(reply.status, 200, "ListCommands: {reply:?}");
        let commands = reply.json()["Commands"].clone();
        assert_eq!(
            commands.as_array().map(Vec::len),
            Some(1),
            "ListCommands --command-id {command_id}: {commands:#}"
        );
        commands[0].clone()
    }
}

/// The instance id `i-0<prefix repeated 15 times>0<n>` (17 characters after `i-`).
pub fn id(prefix: char, n: usize) -> String {
    format!("i-0{}{n:02}", prefix.to_string().repeat(14))
}

/// Whether a CommandInvocationStatus is final.
pub fn is_final(status: &str) -> bool {
    matches!(status, "Success" | "Failed" | "Cancelled" | "TimedOut")
}

/// The line the AWS CLI v1's text formatter (`awscli/text.py`, `_format_dict`) prints for the
/// scalar members of `object` under `identifier`: the identifier upper-cased, then the scalar
/// values in the order of their sorted keys, tab-separated. Lists and objects are printed as
/// records of their own after it, so they do not appear here.
pub fn text_record(identifier: &str, object: &Value) -> String {
    let map = object.as_object().expect("a JSON object");
    let mut keys: Vec<&String> = map
        .iter()
        .filter(|(_, v)| !v.is_object() && !v.is_array())
        .map(|(k, _)| k)
        .collect();
    keys.sort();
    let mut fields = vec![identifier.to_uppercase()];
    fields.extend(keys.into_iter().map(|k| python_str(&map[k])));
    fields.join("\t")
}

/// Python's `str()` of a JSON scalar as botocore parses it.
fn python_str(value: &Value) -> String {
    match value {
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::String(s) => s.clone(),
        // serde_json and Python both print the shortest round-trip form (1795437698.649);
        // an integral float is `x.0` in both.
        Value::Number(n) => n.to_string(),
        other => panic!("not a scalar: {other}"),
    }
}
