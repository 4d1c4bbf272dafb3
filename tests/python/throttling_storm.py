"""A throttling storm as a boto3 user meets it: CALLS calls of describe_instance_information
with botocore's standard retry mode, against an emulator that throttles a share of them.

Prints JSON: how many calls succeeded, how many failed (and with which error code), and the
retries botocore made (the sum of ResponseMetadata.RetryAttempts).
"""

import json
import os
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

calls = int(sys.argv[1])
max_attempts = int(sys.argv[2])
ssm = boto3.client(
    "ssm",
    endpoint_url=os.environ["SSM_E2E_ENDPOINT"],
    config=Config(retries={"mode": "standard", "max_attempts": max_attempts}),
)

succeeded = 0
failed = []
retries = 0
for _ in range(calls):
    try:
        answer = ssm.describe_instance_information()
        succeeded += 1
        retries += answer["ResponseMetadata"].get("RetryAttempts", 0)
    except ClientError as e:
        failed.append(e.response["Error"]["Code"])
        retries += e.response["ResponseMetadata"].get("RetryAttempts", 0)

print(json.dumps({"succeeded": succeeded, "failed": failed, "retries": retries}))
