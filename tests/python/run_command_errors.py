"""Run Command calls the emulator refuses, and the ClientError boto3 raises for each.

Usage: run_command_errors.py INSTANCE_ID OTHER_INSTANCE_ID COMMAND_ID
(COMMAND_ID ran on INSTANCE_ID only.) Prints a JSON list of {"call", "code", "message",
"status"}, or {"call", "error": null} for a call that succeeded.
"""

import json
import os
import sys

import boto3
from botocore.exceptions import ClientError

ssm = boto3.client("ssm", endpoint_url=os.environ["SSM_E2E_ENDPOINT"])
instance, other, command_id = sys.argv[1:4]
unknown = "00000000-0000-4000-8000-000000000000"
shell = {"DocumentName": "AWS-RunShellScript", "Parameters": {"commands": ["true"]}}

calls = {
    "send_command unknown instance": lambda: ssm.send_command(
        InstanceIds=["i-0ffffffffffffffff"], **shell
    ),
    "send_command duplicate instance": lambda: ssm.send_command(
        InstanceIds=[instance, instance], **shell
    ),
    "send_command unknown document": lambda: ssm.send_command(
        InstanceIds=[instance], DocumentName="AWS-Nope"
    ),
    "send_command unknown parameter": lambda: ssm.send_command(
        InstanceIds=[instance],
        DocumentName="AWS-RunShellScript",
        Parameters={"bogus": ["x"]},
    ),
    "send_command bad document version": lambda: ssm.send_command(
        InstanceIds=[instance], DocumentVersion="9", **shell
    ),
    "get_command_invocation unknown command": lambda: ssm.get_command_invocation(
        CommandId=unknown, InstanceId=instance
    ),
    "get_command_invocation other instance": lambda: ssm.get_command_invocation(
        CommandId=command_id, InstanceId=other
    ),
    "get_command_invocation unknown plugin": lambda: ssm.get_command_invocation(
        CommandId=command_id, InstanceId=instance, PluginName="aws:nope"
    ),
    "list_command_invocations unknown command": lambda: ssm.list_command_invocations(
        CommandId=unknown
    ),
    "list_command_invocations bad token": lambda: ssm.list_command_invocations(
        NextToken="not-a-token"
    ),
    "cancel_command unknown command": lambda: ssm.cancel_command(CommandId=unknown),
    "cancel_command other instance": lambda: ssm.cancel_command(
        CommandId=command_id, InstanceIds=[other]
    ),
    "cancel_command duplicate instance": lambda: ssm.cancel_command(
        CommandId=command_id, InstanceIds=[instance, instance]
    ),
}

results = []
for name, call in calls.items():
    try:
        call()
        results.append({"call": name, "error": None})
    except ClientError as e:
        results.append(
            {
                "call": name,
                "code": e.response["Error"]["Code"],
                "message": e.response["Error"]["Message"],
                "status": e.response["ResponseMetadata"]["HTTPStatusCode"],
            }
        )
print(json.dumps(results))
