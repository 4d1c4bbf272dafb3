//! Run Command with boto3 against the real emulator and a separate `ssm-agent-sim` fleet:
//! send_command, the `command_executed` waiter, get_command_invocation, the
//! list_command_invocations paginator, and the ClientError of each refusal.

use serde_json::{Value, json};
use ssm_e2e::Fleet;
use ssm_e2e::run_command::id;

#[test]
fn send_wait_get_and_paginate_invocations() {
    let fleet = Fleet::start(&Fleet::plain('7', 3), &[], &[]);
    let mut args = vec!["2"];
    args.extend(fleet.ids.iter().map(String::as_str));

    let out = fleet
        .emu
        .python()
        .script("run_command_lifecycle.py", &args)
        .json();

    let command = &out["command"];
    let command_id = command["CommandId"].as_str().unwrap();
    assert_eq!(
        (
            &command["DocumentName"],
            &command["Comment"],
            &command["InstanceIds"],
            &command["TargetCount"],
            &command["Status"],
        ),
        (
            &json!("AWS-RunShellScript"),
            &json!("from boto3"),
            &json!(fleet.ids),
            &json!(3),
            &json!("Pending"),
        )
    );
    for instance in &fleet.ids {
        let mut invocation = out["invocations"][instance].clone();
        let object = invocation.as_object_mut().unwrap();
        let (start, end, elapsed) = (
            object.remove("ExecutionStartDateTime").unwrap(),
            object.remove("ExecutionEndDateTime").unwrap(),
            object.remove("ExecutionElapsedTime").unwrap(),
        );
        // ISO 8601 strings from the agent, and the elapsed time as a duration.
        assert!(start.as_str().is_some_and(|t| t.ends_with('Z')), "{start}");
        assert!(end.as_str().is_some_and(|t| t.ends_with('Z')), "{end}");
        assert!(
            elapsed
                .as_str()
                .is_some_and(|t| t.starts_with("PT") && t.ends_with('S')),
            "{elapsed}"
        );
        assert_eq!(
            invocation,
            json!({
                "CommandId": command_id, "InstanceId": instance, "Comment": "from boto3",
                "DocumentName": "AWS-RunShellScript", "DocumentVersion": "1",
                "PluginName": "aws:runShellScript", "ResponseCode": 0, "Status": "Success",
                "StatusDetails": "Success",
                "StandardOutputContent": format!("hello from {instance}\n"),
                "StandardOutputUrl": "", "StandardErrorContent": "", "StandardErrorUrl": "",
                "CloudWatchOutputConfig": {"CloudWatchLogGroupName": "",
                                           "CloudWatchOutputEnabled": false},
            })
        );
    }
    // Three invocations, two per page, in target order.
    let pages: Vec<Vec<Value>> = serde_json::from_value(out["pages"].clone()).unwrap();
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 1]);
    let expected: Vec<Value> = fleet
        .ids
        .iter()
        .map(|i| json!([command_id, i, "Success"]))
        .collect();
    assert_eq!(pages.concat(), expected);
}

#[test]
fn refusals_are_client_errors_with_the_service_codes() {
    let (instance, other) = (id('8', 1), id('8', 2));
    let fleet = Fleet::start(&json!([{"id": instance}, {"id": other}]), &[], &[]);
    let sent = fleet.emu.call(
        "SendCommand",
        &json!({"InstanceIds": [instance], "DocumentName": "AWS-RunShellScript",
                "Parameters": {"commands": ["true"]}}),
    );
    let command_id = sent.json()["Command"]["CommandId"]
        .as_str()
        .unwrap()
        .to_owned();
    fleet.wait_done(&command_id, &instance);

    let out = fleet
        .emu
        .python()
        .script("run_command_errors.py", &[&instance, &other, &command_id])
        .json();

    let error = |call: &str, code: &str, message: &str| json!({"call": call, "code": code, "message": message, "status": 400});
    assert_eq!(
        out,
        json!([
            error(
                "send_command unknown instance",
                "InvalidInstanceId",
                "Instances [[i-0ffffffffffffffff]] not in a valid state for account \
                   123456789012"
            ),
            error(
                "send_command duplicate instance",
                "DuplicateInstanceId",
                &format!("Instance Id {instance} is specified more than once")
            ),
            error(
                "send_command unknown document",
                "InvalidDocument",
                "Document with name AWS-Nope does not exist."
            ),
            error(
                "send_command unknown parameter",
                "InvalidParameters",
                "Parameter \"bogus\" is not defined in document AWS-RunShellScript."
            ),
            error(
                "send_command bad document version",
                "InvalidDocumentVersion",
                "The document version is not valid or does not exist."
            ),
            error(
                "get_command_invocation unknown command",
                "InvocationDoesNotExist",
                ""
            ),
            error(
                "get_command_invocation other instance",
                "InvocationDoesNotExist",
                ""
            ),
            error(
                "get_command_invocation unknown plugin",
                "InvalidPluginName",
                ""
            ),
            error(
                "list_command_invocations unknown command",
                "InvalidCommandId",
                ""
            ),
            error(
                "list_command_invocations bad token",
                "InvalidNextToken",
                "The specified token is not valid."
            ),
            error("cancel_command unknown command", "InvalidCommandId", ""),
            error(
                "cancel_command other instance",
                "InvalidInstanceId",
                &format!("Instance {other} is not a target of command {command_id}")
            ),
            error(
                "cancel_command duplicate instance",
                "DuplicateInstanceId",
                &format!("Instance Id {instance} is specified more than once")
            ),
        ])
    );
}
