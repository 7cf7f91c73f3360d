"""Puts test files into an S3-compatible server with a real client (boto3),
for tests/s3.rs. Usage:

  s3_fixture.py ENDPOINT upload BUCKET FOLDER   every file under FOLDER, keys relative to it
  s3_fixture.py ENDPOINT put BUCKET KEY FILE    one object
  s3_fixture.py ENDPOINT many BUCKET PREFIX N   N empty objects PREFIX/nNNNNN.txt
"""

import os
import sys
from concurrent.futures import ThreadPoolExecutor

import boto3


def client(endpoint):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def ensure_bucket(s3, bucket):
    existing = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
    if bucket not in existing:
        s3.create_bucket(Bucket=bucket)


def main(argv):
    endpoint, command, bucket = argv[1], argv[2], argv[3]
    s3 = client(endpoint)
    ensure_bucket(s3, bucket)
    if command == "upload":
        folder = argv[4]
        for root, _, names in os.walk(folder):
            for name in names:
                path = os.path.join(root, name)
                key = os.path.relpath(path, folder).replace(os.sep, "/")
                with open(path, "rb") as f:
                    s3.put_object(Bucket=bucket, Key=key, Body=f.read())
    elif command == "put":
        key, path = argv[4], argv[5]
        with open(path, "rb") as f:
            s3.put_object(Bucket=bucket, Key=key, Body=f.read())
    elif command == "many":
        prefix, count = argv[4], int(argv[5])

        def put(i):
            s3.put_object(Bucket=bucket, Key=f"{prefix}/n{i:06d}.txt", Body=b"")

        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(put, range(count)))
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv)
