#!/usr/bin/env python3
"""Creates a secret in AWS Secrets Manager (or moto), or stores a new version if it exists.

    put_secret.py --endpoint http://127.0.0.1:5000 NAME VALUE
    put_secret.py --endpoint http://127.0.0.1:5000 NAME --value-file FILE

VALUE is the SecretString (a JSON object for key lookups). Credentials and region come from the
usual AWS environment variables (region defaults to us-east-1). The value is never printed.
"""
import argparse
import os
import sys

import boto3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", help="endpoint URL (moto); default: AWS")
    parser.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    parser.add_argument("name")
    parser.add_argument("value", nargs="?")
    parser.add_argument("--value-file")
    args = parser.parse_args()
    if (args.value is None) == (args.value_file is None):
        parser.error("give exactly one of VALUE and --value-file")
    value = args.value
    if args.value_file:
        with open(args.value_file, encoding="utf-8") as f:
            value = f.read()

    client = boto3.client("secretsmanager", region_name=args.region, endpoint_url=args.endpoint)
    try:
        client.create_secret(Name=args.name, SecretString=value)
        print(f"created secret {args.name!r}")
    except client.exceptions.ResourceExistsException:
        client.put_secret_value(SecretId=args.name, SecretString=value)
        print(f"stored a new version of secret {args.name!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
