"""Create the object-store bucket(s) named on the command line if missing (docker-compose's
``object-store-init``). Endpoint, region and credentials come from the environment
(AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), like every other
client of the store; nothing is printed but the bucket names."""

from __future__ import annotations

import sys

import boto3
from botocore.exceptions import ClientError


def main(buckets: list[str]) -> int:
    client = boto3.client("s3")
    for bucket in buckets:
        try:
            client.head_bucket(Bucket=bucket)
            print(f"bucket {bucket}: exists")
        except ClientError:
            client.create_bucket(Bucket=bucket)
            print(f"bucket {bucket}: created")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["lake"]))
