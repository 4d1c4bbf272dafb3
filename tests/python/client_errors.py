"""Calls that the emulator refuses, and what boto3 makes of each refusal.

Prints a JSON list with, for each call, the ClientError's code, message, HTTP status and
request id, exactly as a boto3 user reads them from `e.response`.
"""

import json
import os

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint = os.environ["SSM_E2E_ENDPOINT"]
ssm = boto3.client("ssm", endpoint_url=endpoint)
# boto3 checks MaxResults >= 5 itself; without that check the emulator's answer shows.
unchecked = boto3.client(
    "ssm", endpoint_url=endpoint, config=Config(parameter_validation=False)
)

calls = [
    lambda: ssm.describe_instance_information(
        Filters=[{"Key": "InstanceIds", "Values": ["bogus"]}]
    ),
    lambda: unchecked.describe_instance_information(MaxResults=4),
    lambda: ssm.describe_instance_information(NextToken="not-a-token"),
    lambda: ssm.list_tags_for_resource(
        ResourceType="ManagedInstance", ResourceId="i-0ffffffffffffffff"
    ),
    lambda: ssm.describe_patch_baselines(),
]

results = []
for call in calls:
    try:
        call()
        results.append({"error": None})
    except ClientError as e:
        results.append(
            {
                "code": e.response["Error"]["Code"],
                "message": e.response["Error"]["Message"],
                "status": e.response["ResponseMetadata"]["HTTPStatusCode"],
                "request_id": e.response["ResponseMetadata"]["RequestId"],
                "str": str(e),
            }
        )
print(json.dumps(results))
