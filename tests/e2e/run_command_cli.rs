//! Run Command with the AWS CLI v1: the real `ssm-emulator` and a separate `ssm-agent-sim`
//! whose agents run the scripts as real processes. Every test asserts what a user reads: the
//! CLI's exact output, statuses, response codes and script output.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::{Value, json};
use ssm_e2e::run_command::{id, text_record};
use ssm_e2e::{Aws, Fleet, uuid_shaped};

/// The CLI v1's exit code for a failed command (service errors and waiter failures alike).
const CLI_V1_FAILED: i32 = 255;

/// `aws ssm send-command --instance-ids <instance> --document-name AWS-RunShellScript
/// --parameters <parameters as JSON> <extra…>`; returns the CommandId.
fn send(aws: &Aws, instance: &str, parameters: &Value, extra: &[&str]) -> String {
    let parameters = parameters.to_string();
    let mut args = vec![
        "send-command",
        "--instance-ids",
        instance,
        "--document-name",
        "AWS-RunShellScript",
        "--parameters",
        &parameters,
        "--query",
        "Command.CommandId",
        "--output",
        "text",
    ];
    args.extend_from_slice(extra);
    let id = aws.ssm(&args).ok().trim().to_owned();
    assert!(uuid_shaped(&id), "CommandId {id:?}");
    id
}

/// `aws ssm get-command-invocation` as JSON.
fn get_invocation(aws: &Aws, command_id: &str, instance: &str) -> Value {
    aws.ssm(&[
        "get-command-invocation",
        "--command-id",
        command_id,
        "--instance-id",
        instance,
    ])
    .json()
}

/// The (Status, StatusDetails, ResponseCode, StandardOutputContent, StandardErrorContent) of a
/// GetCommandInvocation answer.
fn outcome(invocation: &Value) -> (&str, &str, i64, &str, &str) {
    (
        invocation["Status"].as_str().unwrap_or_default(),
        invocation["StatusDetails"].as_str().unwrap_or_default(),
        invocation["ResponseCode"].as_i64().unwrap_or(i64::MIN),
        invocation["StandardOutputContent"]
            .as_str()
            .unwrap_or_default(),
        invocation["StandardErrorContent"]
            .as_str()
            .unwrap_or_default(),
    )
}

/// The interface names of `ifconfig` output: the unindented lines up to their `:`.
fn interfaces(ifconfig: &str) -> BTreeSet<String> {
    ifconfig
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with(char::is_whitespace))
        .filter_map(|l| l.split_once(':').map(|(name, _)| name.to_owned()))
        .collect()
}

/// The tutorial, verbatim but for `--endpoint-url` and the instance id: `send-command …
/// --parameters commands=ifconfig --output text`, then the invocations with details, the
/// Success filter, the documents, the parameters of AWS-RunShellScript and the inventory.
#[test]
fn tutorial_ifconfig_then_invocations_documents_and_inventory() {
    let instance = id('a', 1);
    let fleet = Fleet::start(
        &json!([{"id": instance, "computer_name": "ip-10-0-0-4", "ip_address": "10.0.0.4"}]),
        &[],
        &[],
    );
    let aws = fleet.emu.aws();

    let out = aws.ssm(&[
        "send-command",
        "--instance-ids",
        &instance,
        "--document-name",
        "AWS-RunShellScript",
        "--comment",
        "IP config",
        "--parameters",
        "commands=ifconfig",
        "--output",
        "text",
    ]);

    // The command as ListCommands has it gives the id and the two times; every other column
    // is what the response of a fresh command must say.
    let text = out.ok();
    let command_id = text
        .split('\t')
        .nth(1)
        .unwrap_or_else(|| panic!("no CommandId column in {text:?}"));
    let listed = fleet.command(command_id);
    let (requested, expires) = (&listed["RequestedDateTime"], &listed["ExpiresAfter"]);
    let lifetime = expires.as_f64().unwrap() - requested.as_f64().unwrap();
    assert!((lifetime - 3600.0).abs() < 1e-3, "{listed:#}");
    let sent = json!({
        "CommandId": command_id, "Comment": "IP config", "CompletedCount": 0,
        "DeliveryTimedOutCount": 0, "DocumentName": "AWS-RunShellScript",
        "DocumentVersion": "1", "ErrorCount": 0, "ExpiresAfter": expires,
        "MaxConcurrency": "50", "MaxErrors": "0", "OutputS3BucketName": "",
        "OutputS3KeyPrefix": "", "OutputS3Region": "us-east-1", "RequestedDateTime": requested,
        "ServiceRole": "", "Status": "Pending", "StatusDetails": "Pending", "TargetCount": 1,
        "TimeoutSeconds": 3600,
    });
    assert_eq!(
        text,
        format!(
            "{}\n\
             CLOUDWATCHOUTPUTCONFIG\t\tFalse\n\
             INSTANCEIDS\t{instance}\n\
             NOTIFICATIONCONFIG\t\t\n\
             COMMANDS\tifconfig\n\
             EXECUTIONTIMEOUT\t3600\n\
             WORKINGDIRECTORY\t\n",
            text_record("COMMAND", &sent)
        )
    );
    assert!(uuid_shaped(command_id), "{command_id}");

    // A failed command beside it, so that the Status filter has something to leave out.
    let failed = send(&aws, &instance, &json!({"commands": ["exit 3"]}), &[]);
    fleet.wait_done(&failed, &instance);
    fleet.wait_done(command_id, &instance);

    let details = aws
        .ssm(&[
            "list-command-invocations",
            "--command-id",
            command_id,
            "--details",
        ])
        .json();
    let mut invocations = details["CommandInvocations"].as_array().unwrap().clone();
    assert_eq!(invocations.len(), 1, "{details:#}");
    let plugin = invocations[0]["CommandPlugins"][0].take();
    assert_eq!(
        invocations[0],
        json!({
            "CommandId": command_id, "InstanceId": instance, "InstanceName": "ip-10-0-0-4",
            "Comment": "IP config", "DocumentName": "AWS-RunShellScript",
            "DocumentVersion": "1", "RequestedDateTime": requested, "Status": "Success",
            "StatusDetails": "Success", "TraceOutput": "", "StandardOutputUrl": "",
            "StandardErrorUrl": "", "CommandPlugins": [null], "ServiceRole": "",
            "NotificationConfig": {"NotificationArn": "", "NotificationEvents": [],
                                   "NotificationType": ""},
            "CloudWatchOutputConfig": {"CloudWatchLogGroupName": "",
                                       "CloudWatchOutputEnabled": false},
        })
    );
    let (start, finish) = (
        plugin["ResponseStartDateTime"].as_f64().unwrap(),
        plugin["ResponseFinishDateTime"].as_f64().unwrap(),
    );
    assert!(start <= finish, "{plugin:#}");
    let mut fixed = plugin.clone();
    for volatile in ["ResponseStartDateTime", "ResponseFinishDateTime", "Output"] {
        fixed.as_object_mut().unwrap().remove(volatile);
    }
    assert_eq!(
        fixed,
        json!({
            "Name": "aws:runShellScript", "Status": "Success", "StatusDetails": "Success",
            "ResponseCode": 0, "StandardOutputUrl": "", "StandardErrorUrl": "",
            "OutputS3Region": "us-east-1", "OutputS3BucketName": "", "OutputS3KeyPrefix": "",
        })
    );

    // The real ifconfig ran: its full output is StandardOutputContent, the plugin Output is
    // the same text (cut to 2,500 characters as the agent cuts it), and it shows the
    // interfaces this machine has.
    let invocation = get_invocation(&aws, command_id, &instance);
    let (status, details_, code, stdout, stderr) = outcome(&invocation);
    assert_eq!(
        (status, details_, code, stderr),
        ("Success", "Success", 0, "")
    );
    let output = plugin["Output"].as_str().unwrap();
    if stdout.len() < 2_500 {
        assert_eq!(output, stdout);
    } else {
        assert_eq!(
            output,
            format!("{}\n---Output truncated---", &stdout[..2_477])
        );
    }
    assert!(
        stdout.contains("lo: flags=") && stdout.contains("inet 127.0.0.1"),
        "{stdout}"
    );
    let local = Command::new("ifconfig")
        .output()
        .expect("ifconfig is installed (scripts/test-all installs net-tools)");
    assert_eq!(
        interfaces(stdout),
        interfaces(&String::from_utf8_lossy(&local.stdout))
    );

    let success = aws
        .ssm(&[
            "list-command-invocations",
            "--filters",
            "key=Status,value=Success",
        ])
        .json();
    let listed: Vec<(&str, &str, &str)> = success["CommandInvocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["CommandId"].as_str().unwrap(),
                i["InstanceId"].as_str().unwrap(),
                i["Status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(listed, [(command_id, instance.as_str(), "Success")]);

    let documents = aws.ssm(&["list-documents"]).json();
    let shell = documents["DocumentIdentifiers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["Name"] == "AWS-RunShellScript")
        .unwrap_or_else(|| panic!("no AWS-RunShellScript in {documents:#}"));
    assert_eq!(
        shell,
        &json!({
            "Name": "AWS-RunShellScript", "CreatedDate": 1504128824.0, "Owner": "Amazon",
            "PlatformTypes": ["Linux", "MacOS"], "DocumentVersion": "1",
            "DocumentType": "Command", "SchemaVersion": "1.2", "DocumentFormat": "JSON",
            "Tags": [],
        })
    );

    let parameters = aws
        .ssm(&[
            "describe-document",
            "--name",
            "AWS-RunShellScript",
            "--query",
            "Document.Parameters[*]",
        ])
        .json();
    assert_eq!(
        parameters,
        json!([
            {"Name": "commands", "Type": "StringList",
             "Description": "(Required) Specify a shell script or a command to run."},
            {"Name": "workingDirectory", "Type": "String",
             "Description": "(Optional) The path to the working directory on your instance.",
             "DefaultValue": ""},
            {"Name": "executionTimeout", "Type": "String",
             "Description": "(Optional) The time in seconds for a command to complete before \
                             it is considered to have failed. Default is 3600 (1 hour). \
                             Maximum is 172800 (48 hours).",
             "DefaultValue": "3600"},
        ])
    );

    let mut inventory = aws.ssm(&["get-inventory"]).json();
    let entities = inventory["Entities"].as_array_mut().unwrap();
    assert_eq!(entities.len(), 1, "{entities:#?}");
    let info = &mut entities[0]["Data"]["AWS:InstanceInformation"];
    let capture = info.as_object_mut().unwrap().remove("CaptureTime");
    assert!(capture.is_some_and(|t| t.as_str().is_some_and(|t| t.ends_with('Z'))));
    assert_eq!(
        entities[0],
        json!({"Id": instance, "Data": {"AWS:InstanceInformation": {
            "TypeName": "AWS:InstanceInformation", "SchemaVersion": "1.0",
            "Content": [{
                "AgentType": "amazon-ssm-agent", "AgentVersion": "3.3.1142.0",
                "ComputerName": "ip-10-0-0-4", "InstanceId": instance,
                "InstanceStatus": "Active", "IpAddress": "10.0.0.4",
                "PlatformName": "Amazon Linux", "PlatformType": "Linux",
                "PlatformVersion": "2023", "ResourceType": "EC2Instance",
            }],
        }}})
    );
}

/// Shell semantics and what the agent reports: `&&`, `||`, redirection to a file, a non-zero
/// exit, stderr alone, and output past the 24,000-character limit.
#[test]
fn shell_semantics_exit_codes_stderr_and_truncation() {
    let instance = id('b', 1);
    let fleet = Fleet::start(&json!([{ "id": instance }]), &[], &[]);
    let aws = fleet.emu.aws();
    let work = fleet.emu.dir().join("work");
    std::fs::create_dir(&work).unwrap();
    let work_dir = work.to_str().unwrap();
    let run = |commands: &[&str]| {
        send(
            &aws,
            &instance,
            &json!({"commands": commands, "workingDirectory": [work_dir]}),
            &[],
        )
    };

    let and_or = run(&[
        "true && echo and-ran",
        "false && echo never-printed",
        "false || echo or-ran",
    ]);
    let redirect = run(&["echo written > out.txt", "cat out.txt", "wc -c < out.txt"]);
    let failing = run(&["echo hi && false || echo fallback; echo err >&2; exit 2"]);
    let stderr_only = run(&["echo only-err >&2"]);
    let long = run(&["seq 1 10000"]);
    for command in [&and_or, &redirect, &failing, &stderr_only, &long] {
        fleet.wait_done(command, &instance);
    }

    let get = |command: &str| get_invocation(&aws, command, &instance);
    assert_eq!(
        outcome(&get(&and_or)),
        ("Success", "Success", 0, "and-ran\nor-ran\n", "")
    );
    assert_eq!(
        outcome(&get(&redirect)),
        ("Success", "Success", 0, "written\n8\n", "")
    );
    assert_eq!(
        std::fs::read_to_string(work.join("out.txt")).unwrap(),
        "written\n"
    );
    assert_eq!(
        outcome(&get(&failing)),
        (
            "Failed",
            "Failed",
            2,
            "hi\nfallback\n",
            "err\nfailed to run commands: exit status 2"
        )
    );
    assert_eq!(
        outcome(&get(&stderr_only)),
        ("Success", "Success", 0, "", "only-err\n")
    );
    let seq: String = (1..=10_000).map(|n| format!("{n}\n")).collect();
    let long_invocation = get(&long);
    let (status, _, code, stdout, stderr) = outcome(&long_invocation);
    assert_eq!((status, code, stderr), ("Success", 0, ""));
    assert_eq!(stdout.chars().count(), 24_000);
    assert_eq!(stdout, format!("{}--output truncated--", &seq[..23_980]));

    // The plugin Output of each, from one listing of the node's invocations.
    let listing = aws
        .ssm(&[
            "list-command-invocations",
            "--instance-id",
            &instance,
            "--details",
        ])
        .json();
    let output_of = |command: &str| -> String {
        listing["CommandInvocations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["CommandId"] == command)
            .map(|i| {
                i["CommandPlugins"][0]["Output"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .unwrap_or_else(|| panic!("{command} not listed: {listing:#}"))
    };
    assert_eq!(
        output_of(&failing),
        "hi\nfallback\n\n----------ERROR-------\nerr\nfailed to run commands: exit status 2"
    );
    assert_eq!(
        output_of(&stderr_only),
        "\n----------ERROR-------\nonly-err\n"
    );
    let long_output = output_of(&long);
    assert_eq!(long_output.chars().count(), 2_500);
    assert_eq!(
        long_output,
        format!("{}\n---Output truncated---", &seq[..2_477])
    );
    assert_eq!(output_of(&and_or), "and-ran\nor-ran\n");
}

/// executionTimeout, CancelCommand and the CLI's `wait command-executed`, on three agents of
/// one fleet at once.
#[test]
fn timeout_cancel_and_the_cli_waiter() {
    let (timeout_node, cancel_node, wait_node) = (id('c', 1), id('c', 2), id('c', 3));
    let fleet = Fleet::start(
        &json!([{"id": timeout_node}, {"id": cancel_node}, {"id": wait_node}]),
        &[],
        &[],
    );
    let aws = fleet.emu.aws();
    let work = fleet.emu.dir();
    let work_dir = work.to_str().unwrap();

    // The agent clamps an executionTimeout below 5 seconds to 3600: 5 is the shortest.
    let timed = send(
        &aws,
        &timeout_node,
        &json!({"commands": ["echo started", "sleep 60"], "executionTimeout": ["5"]}),
        &[],
    );
    let cancelled = send(
        &aws,
        &cancel_node,
        &json!({"commands": ["echo running > cancel.started", "sleep 60"],
                "workingDirectory": [work_dir]}),
        &[],
    );

    // Cancel once the script is running (its first line has run).
    fleet.wait_invocation(&cancelled, &cancel_node, |s| s == "InProgress");
    fleet.poll("the script of the command to cancel starts", || {
        work.join("cancel.started").is_file().then_some(())
    });
    let out = aws.ssm(&["cancel-command", "--command-id", &cancelled]);
    assert_eq!((out.ok(), out.stderr.as_str()), ("", ""));
    fleet.wait_done(&cancelled, &cancel_node);
    let invocation = get_invocation(&aws, &cancelled, &cancel_node);
    assert_eq!(
        outcome(&invocation),
        ("Cancelled", "Cancelled", 137, "", "")
    );
    let command = fleet.command(&cancelled);
    assert_eq!(
        (&command["Status"], &command["StatusDetails"]),
        (&json!("Cancelled"), &json!("Cancelled"))
    );

    // The waiter: exit 0 and nothing printed for a command that succeeds, exit 255 and the
    // waiter's message for one that fails.
    let ok = send(&aws, &wait_node, &json!({"commands": ["echo waited"]}), &[]);
    let out = aws.ssm(&[
        "wait",
        "command-executed",
        "--command-id",
        &ok,
        "--instance-id",
        &wait_node,
    ]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, "", "")
    );
    assert_eq!(
        outcome(&get_invocation(&aws, &ok, &wait_node)),
        ("Success", "Success", 0, "waited\n", "")
    );
    let bad = send(&aws, &wait_node, &json!({"commands": ["exit 4"]}), &[]);
    fleet.wait_done(&bad, &wait_node);
    let out = aws.ssm(&[
        "wait",
        "command-executed",
        "--command-id",
        &bad,
        "--instance-id",
        &wait_node,
    ]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.trim()),
        (
            CLI_V1_FAILED,
            "",
            "Waiter CommandExecuted failed: Waiter encountered a terminal failure state: For \
             expression \"Status\" we matched expected path: \"Failed\""
        )
    );

    fleet.wait_done(&timed, &timeout_node);
    let invocation = get_invocation(&aws, &timed, &timeout_node);
    assert_eq!(
        outcome(&invocation),
        ("TimedOut", "ExecutionTimedOut", 137, "started\n", "")
    );
    let command = fleet.command(&timed);
    assert_eq!(
        (
            &command["Status"],
            &command["StatusDetails"],
            &command["ErrorCount"]
        ),
        (&json!("TimedOut"), &json!("ExecutionTimedOut"), &json!(1))
    );
}

/// `--targets Key=tag:Env,Values=dev` runs on exactly the agents tagged Env=dev, and each ran it
/// itself (the script prints the agent's own AWS_SSM_INSTANCE_ID).
#[test]
fn targets_by_tag_reach_exactly_the_tagged_instances() {
    let (dev1, dev2, prod) = (id('d', 1), id('d', 2), id('d', 3));
    let fleet = Fleet::start(
        &json!([
            {"id": dev1, "tags": {"Env": "dev"}},
            {"id": prod, "tags": {"Env": "prod"}},
            {"id": dev2, "tags": {"Env": "dev", "Role": "db"}},
        ]),
        &[],
        &[],
    );
    let aws = fleet.emu.aws();
    // agent-sim tags its instances with AddTagsToResource after they report.
    fleet.poll("every agent is tagged", || {
        let tagged = fleet.emu.call(
            "DescribeInstanceInformation",
            &json!({"Filters": [{"Key": "tag-key", "Values": ["Env"]}]}),
        );
        (tagged.json()["InstanceInformationList"]
            .as_array()
            .map(Vec::len)
            == Some(3))
        .then_some(())
    });

    let out = aws.ssm(&[
        "send-command",
        "--targets",
        "Key=tag:Env,Values=dev",
        "--document-name",
        "AWS-RunShellScript",
        "--parameters",
        "commands=echo $AWS_SSM_INSTANCE_ID",
        "--query",
        "Command.[CommandId,TargetCount]",
        "--output",
        "text",
    ]);
    let text = out.ok().trim().to_owned();
    let (command_id, target_count) = text.split_once('\t').unwrap();
    assert_eq!(target_count, "2");
    for node in [&dev1, &dev2] {
        fleet.wait_done(command_id, node);
    }

    let out = aws.ssm(&[
        "list-command-invocations",
        "--command-id",
        command_id,
        "--details",
        "--query",
        "CommandInvocations[].[InstanceId,Status,CommandPlugins[0].Output]",
    ]);
    let mut rows: Vec<Value> = out.json().as_array().unwrap().clone();
    rows.sort_by_key(|r| r[0].to_string());
    assert_eq!(
        rows,
        [
            json!([dev1, "Success", format!("{dev1}\n")]),
            json!([dev2, "Success", format!("{dev2}\n")]),
        ]
    );
    let command = fleet.command(command_id);
    assert_eq!(
        (
            &command["Status"],
            &command["Targets"],
            &command["InstanceIds"]
        ),
        (
            &json!("Success"),
            &json!([{"Key": "tag:Env", "Values": ["dev"]}]),
            &json!([])
        )
    );
}

/// `--max-concurrency 1` over three agents: all succeed, and they ran one at a time. Each
/// script takes a `mkdir` lock in a shared directory and fails if another holds it, and the
/// agents' own start and finish times follow one another.
#[test]
fn max_concurrency_one_runs_the_instances_one_at_a_time() {
    let fleet = Fleet::start(&Fleet::plain('e', 3), &[], &[]);
    let aws = fleet.emu.aws();
    let shared = fleet.emu.dir();
    let parameters = json!({
        "commands": [
            "mkdir lock || { echo another invocation holds the lock >&2; exit 1; }",
            "echo \"$AWS_SSM_INSTANCE_ID\" >> ran.txt",
            // Long enough that an overlapping run would find the lock taken.
            "sleep 0.3",
            "rmdir lock",
        ],
        "workingDirectory": [shared.to_str().unwrap()],
    })
    .to_string();
    let mut args = vec![
        "send-command",
        "--document-name",
        "AWS-RunShellScript",
        "--max-concurrency",
        "1",
        "--parameters",
        &parameters,
        "--query",
        "Command.CommandId",
        "--output",
        "text",
        "--instance-ids",
    ];
    args.extend(fleet.ids.iter().map(String::as_str));
    let command_id = aws.ssm(&args).ok().trim().to_owned();
    for node in &fleet.ids {
        fleet.wait_done(&command_id, node);
    }

    let listing = aws
        .ssm(&[
            "list-command-invocations",
            "--command-id",
            &command_id,
            "--details",
        ])
        .json();
    let mut runs: Vec<(f64, f64, String, String)> = listing["CommandInvocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let plugin = &i["CommandPlugins"][0];
            (
                plugin["ResponseStartDateTime"].as_f64().unwrap(),
                plugin["ResponseFinishDateTime"].as_f64().unwrap(),
                i["InstanceId"].as_str().unwrap().to_owned(),
                i["Status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        runs.iter().map(|r| r.3.as_str()).collect::<Vec<_>>(),
        ["Success"; 3],
        "{listing:#}"
    );
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    for pair in runs.windows(2) {
        assert!(
            pair[1].0 >= pair[0].1,
            "{} started before {} finished: {runs:?}",
            pair[1].2,
            pair[0].2
        );
    }
    let ran = std::fs::read_to_string(shared.join("ran.txt")).unwrap();
    let order: Vec<&str> = runs.iter().map(|r| r.2.as_str()).collect();
    assert_eq!(ran.lines().collect::<Vec<_>>(), order);
    let command = fleet.command(&command_id);
    assert_eq!(
        (
            &command["Status"],
            &command["MaxConcurrency"],
            &command["CompletedCount"]
        ),
        (&json!("Success"), &json!("1"), &json!(3))
    );
}

/// The agent process dies while its command runs. The emulator keeps the acknowledged
/// invocation InProgress (the rule of `emulator/src/run_command`: a real agent would resend its
/// replies after reconnecting), the node turns ConnectionLost after `--ping-grace`, and a new
/// command to the lost node waits Delayed.
#[test]
fn an_agent_that_dies_mid_command_leaves_it_in_progress_and_goes_connection_lost() {
    let instance = id('f', 1);
    let mut fleet = Fleet::start(
        &json!([{ "id": instance }]),
        &["--ping-grace", "2"],
        &["--heartbeat", "1"],
    );
    let aws = fleet.emu.aws();
    let work = fleet.emu.dir();
    let pid_file = work.join("sleep.pid");
    let running = send(
        &aws,
        &instance,
        &json!({"commands": ["echo $$ > sleep.pid.tmp && mv sleep.pid.tmp sleep.pid",
                             "exec sleep 60"],
                "workingDirectory": [work.to_str().unwrap()]}),
        &[],
    );
    fleet.wait_invocation(&running, &instance, |s| s == "InProgress");
    let pid = fleet.poll("the script writes its pid", || {
        std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
    });

    fleet.agents.kill();
    fleet.poll("the node turns ConnectionLost", || {
        (fleet.emu.ping_statuses().get(&instance).map(String::as_str) == Some("ConnectionLost"))
            .then_some(())
    });
    // The script is in its own process group and outlived the agent; it is ours to end.
    let _ = Command::new("kill").arg(pid.to_string()).status();

    let invocation = get_invocation(&aws, &running, &instance);
    assert_eq!(
        outcome(&invocation),
        ("InProgress", "InProgress", -1, "", "")
    );
    let command = fleet.command(&running);
    assert_eq!(
        (&command["Status"], &command["CompletedCount"]),
        (&json!("InProgress"), &json!(0))
    );
    let out = aws.ssm(&[
        "describe-instance-information",
        "--query",
        "InstanceInformationList[].[InstanceId,PingStatus]",
        "--output",
        "text",
    ]);
    assert_eq!(out.ok(), format!("{instance}\tConnectionLost\n"));

    let later = send(&aws, &instance, &json!({"commands": ["echo later"]}), &[]);
    let invocation = fleet.wait_invocation(&later, &instance, |s| s != "Pending");
    assert_eq!(
        (&invocation["Status"], &invocation["StatusDetails"]),
        (&json!("Delayed"), &json!("Delayed"))
    );
    assert!(
        fleet.emu.is_running(),
        "the emulator died:\n{}",
        fleet.emu.log()
    );
}

/// Every validation error of SendCommand, GetCommandInvocation, ListCommandInvocations and
/// CancelCommand: exit 255 and the one line the CLI prints.
#[test]
fn run_command_errors_exit_255_with_the_aws_message() {
    let instance = id('0', 1);
    let other = id('0', 2);
    let fleet = Fleet::start(&json!([{"id": instance}, {"id": other}]), &[], &[]);
    let aws = fleet.emu.aws();
    let command_id = send(&aws, &instance, &json!({"commands": ["true"]}), &[]);
    let unknown = "00000000-0000-4000-8000-000000000000";
    let missing = "i-0ffffffffffffffff";
    let error = |code: &str, op: &str, message: &str| {
        format!("An error occurred ({code}) when calling the {op} operation: {message}")
    };
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec![
                "send-command",
                "--instance-ids",
                missing,
                "--document-name",
                "AWS-RunShellScript",
                "--parameters",
                "commands=true",
            ],
            error(
                "InvalidInstanceId",
                "SendCommand",
                &format!("Instances [[{missing}]] not in a valid state for account 123456789012"),
            ),
        ),
        (
            vec![
                "send-command",
                "--instance-ids",
                &instance,
                &instance,
                "--document-name",
                "AWS-RunShellScript",
                "--parameters",
                "commands=true",
            ],
            error(
                "DuplicateInstanceId",
                "SendCommand",
                &format!("Instance Id {instance} is specified more than once"),
            ),
        ),
        (
            vec![
                "send-command",
                "--instance-ids",
                &instance,
                "--document-name",
                "AWS-Nope",
                "--parameters",
                "commands=true",
            ],
            error(
                "InvalidDocument",
                "SendCommand",
                "Document with name AWS-Nope does not exist.",
            ),
        ),
        (
            vec![
                "send-command",
                "--instance-ids",
                &instance,
                "--document-name",
                "AWS-StartPortForwardingSession",
            ],
            error(
                "InvalidDocument",
                "SendCommand",
                "Document AWS-StartPortForwardingSession is of type Session and cannot be run \
                   with SendCommand",
            ),
        ),
        (
            vec![
                "send-command",
                "--instance-ids",
                &instance,
                "--document-name",
                "AWS-RunShellScript",
                "--document-version",
                "9",
                "--parameters",
                "commands=true",
            ],
            error(
                "InvalidDocumentVersion",
                "SendCommand",
                "The document version is not valid or does not exist.",
            ),
        ),
        (
            vec![
                "send-command",
                "--instance-ids",
                &instance,
                "--document-name",
                "AWS-RunShellScript",
                "--parameters",
                "bogus=true",
            ],
            error(
                "InvalidParameters",
                "SendCommand",
                "Parameter \"bogus\" is not defined in document AWS-RunShellScript.",
            ),
        ),
        (
            vec![
                "send-command",
                "--instance-ids",
                &instance,
                "--document-name",
                "AWS-RunShellScript",
            ],
            error(
                "InvalidParameters",
                "SendCommand",
                "Parameter \"commands\" is required by document AWS-RunShellScript but was \
                   not provided.",
            ),
        ),
        (
            vec![
                "send-command",
                "--instance-ids",
                "bogus",
                "--document-name",
                "AWS-RunShellScript",
                "--parameters",
                "commands=true",
            ],
            error(
                "ValidationException",
                "SendCommand",
                "1 validation error detected: Value 'bogus' at 'instanceIds.1.member' failed \
                   to satisfy constraint: Member must satisfy regular expression pattern: \
                   (^i-(\\w{8}|\\w{17})$)|(^mi-\\w{17}$)",
            ),
        ),
        (
            vec![
                "get-command-invocation",
                "--command-id",
                unknown,
                "--instance-id",
                &instance,
            ],
            error("InvocationDoesNotExist", "GetCommandInvocation", ""),
        ),
        (
            vec![
                "get-command-invocation",
                "--command-id",
                &command_id,
                "--instance-id",
                &other,
            ],
            error("InvocationDoesNotExist", "GetCommandInvocation", ""),
        ),
        (
            vec![
                "get-command-invocation",
                "--command-id",
                &command_id,
                "--instance-id",
                &instance,
                "--plugin-name",
                "aws:runPowerShellScript",
            ],
            error("InvalidPluginName", "GetCommandInvocation", ""),
        ),
        (
            vec!["list-command-invocations", "--command-id", unknown],
            error("InvalidCommandId", "ListCommandInvocations", ""),
        ),
        (
            vec!["list-command-invocations", "--next-token", "not-a-token"],
            error(
                "InvalidNextToken",
                "ListCommandInvocations",
                "The specified token is not valid.",
            ),
        ),
        (
            vec![
                "list-command-invocations",
                "--filters",
                "key=Status,value=Bogus",
            ],
            error(
                "ValidationException",
                "ListCommandInvocations",
                "1 validation error detected: Value 'Bogus' is not valid for filter key Status",
            ),
        ),
        (
            vec!["cancel-command", "--command-id", unknown],
            error("InvalidCommandId", "CancelCommand", ""),
        ),
        (
            vec![
                "cancel-command",
                "--command-id",
                &command_id,
                "--instance-ids",
                &other,
            ],
            error(
                "InvalidInstanceId",
                "CancelCommand",
                &format!("Instance {other} is not a target of command {command_id}"),
            ),
        ),
        (
            vec![
                "cancel-command",
                "--command-id",
                &command_id,
                "--instance-ids",
                &instance,
                &instance,
            ],
            error(
                "DuplicateInstanceId",
                "CancelCommand",
                &format!("Instance Id {instance} is specified more than once"),
            ),
        ),
    ];
    // The calls are independent: run them side by side, then check each in order.
    let outs: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = cases
            .iter()
            .map(|(args, _)| scope.spawn(|| aws.ssm(args)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for ((args, message), out) in cases.iter().zip(outs) {
        assert_eq!(
            (out.code, out.stdout.as_str(), out.stderr.trim()),
            (CLI_V1_FAILED, "", message.trim()),
            "aws ssm {args:?}"
        );
    }
    // A CommandId of the wrong length never leaves the CLI.
    let out = aws.ssm(&[
        "get-command-invocation",
        "--command-id",
        "short",
        "--instance-id",
        &instance,
    ]);
    assert_eq!(
        (out.code, out.stderr.trim()),
        (
            CLI_V1_FAILED,
            "Parameter validation failed:\nInvalid length for parameter CommandId, value: 5, \
             valid min length: 36"
        )
    );
    // None of it disturbed the command that was sent.
    assert_eq!(
        outcome(&fleet.wait_done(&command_id, &instance)),
        ("Success", "Success", 0, "", "")
    );
}
