"""Pages through DescribeInstanceInformation with boto3's paginator.

Usage: paginate_instances.py PAGE_SIZE
Prints {"pages": [ids of page 1, ids of page 2, ...]} as JSON.
"""

import json
import os
import sys

import boto3

ssm = boto3.client("ssm", endpoint_url=os.environ["SSM_E2E_ENDPOINT"])
paginator = ssm.get_paginator("describe_instance_information")
pages = [
    [node["InstanceId"] for node in page["InstanceInformationList"]]
    for page in paginator.paginate(PaginationConfig={"PageSize": int(sys.argv[1])})
]
print(json.dumps({"pages": pages}))
