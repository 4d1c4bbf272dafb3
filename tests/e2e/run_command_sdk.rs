//! Run Command with aws-sdk-ssm against the real emulator and a separate `ssm-agent-sim`
//! fleet: the lifecycle through the SDK's types and its CommandExecuted waiter, and the typed
//! error of each refusal.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_ssm::client::Waiters;
use aws_sdk_ssm::error::ProvideErrorMetadata;
use aws_sdk_ssm::operation::cancel_command::CancelCommandError;
use aws_sdk_ssm::operation::get_command_invocation::GetCommandInvocationError;
use aws_sdk_ssm::operation::list_command_invocations::ListCommandInvocationsError;
use aws_sdk_ssm::operation::send_command::SendCommandError;
use aws_sdk_ssm::types::{CommandInvocationStatus, CommandStatus, Target};
use serde_json::json;
use ssm_e2e::run_command::id;
use ssm_e2e::{Fleet, uuid_shaped};

/// The waiter polls every 5 s (the model's minimum delay); this only bounds a hang.
const WAIT_LIMIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn send_wait_get_and_list_through_the_sdk() {
    let fleet = Fleet::start(&Fleet::plain('9', 2), &[], &[]);
    let ssm = fleet.emu.sdk();
    let target = Target::builder()
        .key("InstanceIds")
        .values(&fleet.ids[0])
        .values(&fleet.ids[1])
        .build();

    let sent = ssm
        .send_command()
        .targets(target)
        .document_name("AWS-RunShellScript")
        .comment("from aws-sdk-ssm")
        .parameters(
            "commands",
            vec![
                "echo out-$AWS_SSM_INSTANCE_ID".to_owned(),
                "echo err >&2".to_owned(),
                "exit 3".to_owned(),
            ],
        )
        .max_errors("2")
        .send()
        .await
        .unwrap();
    let command = sent.command().unwrap();
    let command_id = command.command_id().unwrap();
    assert!(uuid_shaped(command_id), "{command:?}");
    assert_eq!(command.status(), Some(&CommandStatus::Pending));
    assert_eq!(command.target_count(), 2);
    assert_eq!(
        command
            .parameters()
            .and_then(|p| p.get("commands"))
            .cloned(),
        Some(vec![
            "echo out-$AWS_SSM_INSTANCE_ID".to_owned(),
            "echo err >&2".to_owned(),
            "exit 3".to_owned(),
        ])
    );

    // The waiter stops at the first terminal state: a failure, for this script.
    for instance in &fleet.ids {
        let e = ssm
            .wait_until_command_executed()
            .command_id(command_id)
            .instance_id(instance)
            .wait(WAIT_LIMIT)
            .await
            .unwrap_err();
        // `WaiterError` is not re-exported by aws-sdk-ssm; its variant shows in Debug.
        assert!(
            format!("{e:?}").starts_with("FailureState("),
            "the waiter ends in its failure state for a Failed invocation: {e:?}"
        );

        let invocation = ssm
            .get_command_invocation()
            .command_id(command_id)
            .instance_id(instance)
            .send()
            .await
            .unwrap();
        assert_eq!(
            (
                invocation.status(),
                invocation.status_details(),
                invocation.response_code(),
                invocation.standard_output_content(),
                invocation.standard_error_content(),
                invocation.plugin_name(),
                invocation.comment(),
            ),
            (
                Some(&CommandInvocationStatus::Failed),
                Some("Failed"),
                3,
                Some(format!("out-{instance}\n").as_str()),
                Some("err\nfailed to run commands: exit status 3"),
                Some("aws:runShellScript"),
                Some("from aws-sdk-ssm"),
            )
        );
    }

    let listed = ssm
        .list_command_invocations()
        .command_id(command_id)
        .details(true)
        .send()
        .await
        .unwrap();
    let by_node: HashMap<&str, (&CommandInvocationStatus, i32, &str)> = listed
        .command_invocations()
        .iter()
        .map(|i| {
            let plugin = &i.command_plugins()[0];
            (
                i.instance_id().unwrap(),
                (
                    i.status().unwrap(),
                    plugin.response_code(),
                    plugin.output().unwrap(),
                ),
            )
        })
        .collect();
    for instance in &fleet.ids {
        let output = format!(
            "out-{instance}\n\n----------ERROR-------\nerr\nfailed to run commands: exit status 3"
        );
        assert_eq!(
            by_node.get(instance.as_str()),
            Some(&(&CommandInvocationStatus::Failed, 3, output.as_str()))
        );
    }

    // Two failures within MaxErrors 2: the command is Failed, Incomplete.
    let commands = ssm
        .list_commands()
        .command_id(command_id)
        .send()
        .await
        .unwrap();
    let command = &commands.commands()[0];
    assert_eq!(
        (
            command.status(),
            command.status_details(),
            command.completed_count(),
            command.error_count(),
        ),
        (Some(&CommandStatus::Failed), Some("Incomplete"), 2, 2)
    );

    // And a command that succeeds satisfies the waiter.
    let ok = ssm
        .send_command()
        .instance_ids(&fleet.ids[0])
        .document_name("AWS-RunShellScript")
        .parameters("commands", vec!["echo fine".to_owned()])
        .send()
        .await
        .unwrap();
    let ok_id = ok.command().unwrap().command_id().unwrap();
    let done = ssm
        .wait_until_command_executed()
        .command_id(ok_id)
        .instance_id(&fleet.ids[0])
        .wait(WAIT_LIMIT)
        .await
        .unwrap();
    let invocation = done.into_result().unwrap();
    assert_eq!(
        (
            invocation.status(),
            invocation.response_code(),
            invocation.standard_output_content()
        ),
        (Some(&CommandInvocationStatus::Success), 0, Some("fine\n"))
    );
}

#[tokio::test]
async fn refusals_are_typed_errors() {
    let (instance, other) = (id('6', 1), id('6', 2));
    let fleet = Fleet::start(&json!([{"id": instance}, {"id": other}]), &[], &[]);
    let ssm = fleet.emu.sdk();
    let command_id = ssm
        .send_command()
        .instance_ids(&instance)
        .document_name("AWS-RunShellScript")
        .parameters("commands", vec!["true".to_owned()])
        .send()
        .await
        .unwrap()
        .command()
        .and_then(|c| c.command_id())
        .unwrap()
        .to_owned();
    fleet.wait_done(&command_id, &instance);
    let unknown = "00000000-0000-4000-8000-000000000000";
    let shell = || {
        ssm.send_command()
            .document_name("AWS-RunShellScript")
            .parameters("commands", vec!["true".to_owned()])
    };

    let e = shell()
        .instance_ids("i-0ffffffffffffffff")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(e, SendCommandError::InvalidInstanceId(_)), "{e:?}");
    let e = shell()
        .instance_ids(&instance)
        .instance_ids(&instance)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(e, SendCommandError::DuplicateInstanceId(_)),
        "{e:?}"
    );
    let e = ssm
        .send_command()
        .instance_ids(&instance)
        .document_name("AWS-Nope")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(e, SendCommandError::InvalidDocument(_)), "{e:?}");
    assert_eq!(
        e.message(),
        Some("Document with name AWS-Nope does not exist.")
    );
    let e = ssm
        .send_command()
        .instance_ids(&instance)
        .document_name("AWS-RunShellScript")
        .parameters("bogus", vec!["x".to_owned()])
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(e, SendCommandError::InvalidParameters(_)), "{e:?}");
    let e = shell()
        .instance_ids(&instance)
        .document_version("9")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(e, SendCommandError::InvalidDocumentVersion(_)),
        "{e:?}"
    );

    for (command, node) in [(unknown, instance.as_str()), (&command_id, other.as_str())] {
        let e = ssm
            .get_command_invocation()
            .command_id(command)
            .instance_id(node)
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert!(
            matches!(e, GetCommandInvocationError::InvocationDoesNotExist(_)),
            "{e:?}"
        );
    }
    let e = ssm
        .get_command_invocation()
        .command_id(&command_id)
        .instance_id(&instance)
        .plugin_name("aws:nope")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(e, GetCommandInvocationError::InvalidPluginName(_)),
        "{e:?}"
    );

    let e = ssm
        .list_command_invocations()
        .command_id(unknown)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(e, ListCommandInvocationsError::InvalidCommandId(_)),
        "{e:?}"
    );
    let e = ssm
        .list_command_invocations()
        .next_token("not-a-token")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(e, ListCommandInvocationsError::InvalidNextToken(_)),
        "{e:?}"
    );

    let e = ssm
        .cancel_command()
        .command_id(unknown)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(e, CancelCommandError::InvalidCommandId(_)),
        "{e:?}"
    );
    let e = ssm
        .cancel_command()
        .command_id(&command_id)
        .instance_ids(&other)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(e, CancelCommandError::InvalidInstanceId(_)),
        "{e:?}"
    );
    let e = ssm
        .cancel_command()
        .command_id(&command_id)
        .instance_ids(&instance)
        .instance_ids(&instance)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(e, CancelCommandError::DuplicateInstanceId(_)),
        "{e:?}"
    );
}
