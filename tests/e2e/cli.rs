//! The AWS CLI v1 against the emulator: the commands of the tutorials, verbatim, and exactly what
//! they print.

use serde_json::json;
use ssm_e2e::Emulator;

use crate::{FLEET_IDS, fleet};

/// The CLI v1's exit code for any failed command, a service error included (v2 uses 254 for
/// service errors; v1 documents only 0, 1, 2, 130 and 255).
const CLI_V1_FAILED: i32 = 255;

#[test]
fn tutorial_command_prints_the_online_instances_as_text() {
    let emu = Emulator::start(&fleet());

    let out = emu.aws().ssm(&[
        "describe-instance-information",
        "--query",
        "InstanceInformationList[*].[InstanceId,AgentVersion,PlatformName,PingStatus]",
        "--filters",
        "Key=PingStatus,Values=Online",
        "--output",
        "text",
    ]);

    assert_eq!(
        out.ok(),
        "i-0aaaaaaaaaaaaaaa1\t3.3.1142.0\tUbuntu\tOnline\n\
         i-0aaaaaaaaaaaaaaa2\t3.3.987.0\tMicrosoft Windows Server 2022 Datacenter\tOnline\n\
         mi-0aaaaaaaaaaaaaaa3\t3.2.582.0\tAmazon Linux\tOnline\n"
    );
}

/// LocalStack #8140: GetInventory did not list the instances DescribeInstanceInformation did.
#[test]
fn get_inventory_lists_the_instances_describe_lists() {
    let emu = Emulator::start(&fleet());
    let aws = emu.aws();

    let described = aws.ssm(&[
        "describe-instance-information",
        "--query",
        "InstanceInformationList[].InstanceId",
        "--output",
        "text",
    ]);
    let inventory = aws.ssm(&[
        "get-inventory",
        "--query",
        "Entities[].Id",
        "--output",
        "text",
    ]);

    let expected = format!("{}\n", FLEET_IDS.join("\t"));
    assert_eq!(described.ok(), expected);
    assert_eq!(inventory.ok(), expected);
}

#[test]
fn tags_added_listed_filtered_and_removed() {
    let emu = Emulator::start(&fleet());
    let aws = emu.aws();
    let list_tags = |id: &str| {
        aws.ssm(&[
            "list-tags-for-resource",
            "--resource-type",
            "ManagedInstance",
            "--resource-id",
            id,
        ])
        .json()
    };
    let tagged_dev = || {
        aws.ssm(&[
            "describe-instance-information",
            "--filters",
            "Key=tag:Env,Values=dev",
            "--query",
            "InstanceInformationList[].InstanceId",
            "--output",
            "text",
        ])
        .ok()
        .to_owned()
    };

    assert_eq!(
        list_tags("mi-0aaaaaaaaaaaaaaa3"),
        json!({"TagList": [{"Key": "Env", "Value": "prod"}]})
    );
    assert_eq!(tagged_dev(), "i-0aaaaaaaaaaaaaaa1\ti-0aaaaaaaaaaaaaaa4\n");

    let added = aws.ssm(&[
        "add-tags-to-resource",
        "--resource-type",
        "ManagedInstance",
        "--resource-id",
        "mi-0aaaaaaaaaaaaaaa3",
        "--tags",
        "Key=Env,Value=dev",
        "Key=Team,Value=core",
    ]);
    assert_eq!((added.ok(), added.stderr.as_str()), ("", ""));
    assert_eq!(
        list_tags("mi-0aaaaaaaaaaaaaaa3"),
        json!({"TagList": [{"Key": "Env", "Value": "dev"}, {"Key": "Team", "Value": "core"}]})
    );
    assert_eq!(
        tagged_dev(),
        "i-0aaaaaaaaaaaaaaa1\ti-0aaaaaaaaaaaaaaa4\tmi-0aaaaaaaaaaaaaaa3\n"
    );

    let removed = aws.ssm(&[
        "remove-tags-from-resource",
        "--resource-type",
        "ManagedInstance",
        "--resource-id",
        "i-0aaaaaaaaaaaaaaa1",
        "--tag-keys",
        "Env",
    ]);
    assert_eq!(removed.ok(), "");
    assert_eq!(list_tags("i-0aaaaaaaaaaaaaaa1"), json!({"TagList": []}));
    assert_eq!(tagged_dev(), "i-0aaaaaaaaaaaaaaa4\tmi-0aaaaaaaaaaaaaaa3\n");
}

#[test]
fn service_errors_exit_255_with_the_aws_message() {
    let emu = Emulator::start(&fleet());
    let aws = emu.aws();
    let cases: [(&[&str], &str); 3] = [
        (
            &[
                "describe-instance-information",
                "--filters",
                "Key=InstanceIds,Values=bogus",
            ],
            "An error occurred (InvalidInstanceId) when calling the DescribeInstanceInformation \
             operation: Invalid instance id(s): bogus",
        ),
        (
            &[
                "describe-instance-information",
                "--next-token",
                "not-a-token",
            ],
            "An error occurred (InvalidNextToken) when calling the DescribeInstanceInformation \
             operation: The specified token is not valid.",
        ),
        (
            &[
                "list-tags-for-resource",
                "--resource-type",
                "ManagedInstance",
                "--resource-id",
                "i-0ffffffffffffffff",
            ],
            "An error occurred (InvalidResourceId) when calling the ListTagsForResource \
             operation: No managed node with ID i-0ffffffffffffffff in us-east-1 for account \
             123456789012",
        ),
    ];
    for (args, message) in cases {
        let out = aws.ssm(args);
        assert_eq!(
            (out.code, out.stdout.as_str(), out.stderr.trim()),
            (CLI_V1_FAILED, "", message),
            "aws ssm {args:?}"
        );
    }
}

/// MaxResults below 5 never reaches the emulator: the CLI checks the model's range itself. (boto3
/// without that check and aws-sdk-ssm see the emulator's ValidationException, in `boto3` and
/// `sdk`.)
#[test]
fn max_results_below_the_range_is_refused_by_the_cli_itself() {
    let emu = Emulator::start(&fleet());

    let out = emu
        .aws()
        .ssm(&["describe-instance-information", "--max-results", "4"]);

    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.trim()),
        (
            CLI_V1_FAILED,
            "",
            "Parameter validation failed:\n\
             Invalid value for parameter MaxResults, value: 4, valid min value: 5"
        )
    );
}

#[test]
fn an_operation_the_emulator_does_not_serve_is_an_aws_error_not_a_crash() {
    let mut emu = Emulator::start(&fleet());
    let aws = emu.aws();

    let out = aws.ssm(&["describe-patch-baselines"]);

    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.trim()),
        (
            CLI_V1_FAILED,
            "",
            "An error occurred (UnknownOperationException) when calling the \
             DescribePatchBaselines operation: Operation AmazonSSM.DescribePatchBaselines is \
             not supported by ssm-emulator"
        )
    );
    assert!(emu.is_running(), "the emulator died:\n{}", emu.log());
    assert_eq!(emu.ping_statuses().len(), FLEET_IDS.len());
}
