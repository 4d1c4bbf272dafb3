"""Run Command with boto3, as a boto3 user writes it: send_command, the command_executed
waiter, get_command_invocation, and list_command_invocations through its paginator.

Usage: run_command_lifecycle.py PAGE_SIZE INSTANCE_ID...
Prints JSON: {"command": the Command of the send_command response,
"invocations": {instance id: the get_command_invocation response, minus ResponseMetadata},
"pages": [[[CommandId, InstanceId, Status] of each invocation of a page], ...]}.
"""

import json
import os
import sys

import boto3

ssm = boto3.client("ssm", endpoint_url=os.environ["SSM_E2E_ENDPOINT"])
page_size = int(sys.argv[1])
instance_ids = sys.argv[2:]

command = ssm.send_command(
    InstanceIds=instance_ids,
    DocumentName="AWS-RunShellScript",
    Comment="from boto3",
    Parameters={"commands": ['echo "hello from $AWS_SSM_INSTANCE_ID"']},
)["Command"]

waiter = ssm.get_waiter("command_executed")
invocations = {}
for instance_id in instance_ids:
    # The waiter's default delay is 5 s; a shorter one is an ordinary WaiterConfig.
    waiter.wait(
        CommandId=command["CommandId"],
        InstanceId=instance_id,
        WaiterConfig={"Delay": 1, "MaxAttempts": 60},
    )
    invocation = ssm.get_command_invocation(
        CommandId=command["CommandId"], InstanceId=instance_id
    )
    del invocation["ResponseMetadata"]
    invocations[instance_id] = invocation

paginator = ssm.get_paginator("list_command_invocations")
pages = [
    [[i["CommandId"], i["InstanceId"], i["Status"]] for i in page["CommandInvocations"]]
    for page in paginator.paginate(
        CommandId=command["CommandId"], PaginationConfig={"PageSize": page_size}
    )
]

print(
    json.dumps(
        {"command": command, "invocations": invocations, "pages": pages}, default=str
    )
)
