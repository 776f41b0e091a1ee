#!/usr/bin/env python3
"""Creates a secret in AWS Secrets Manager (or moto), or stores a new version if it exists.

    put_secret.py --endpoint http://127.0.0.1:5000 NAME VALUE
    put_secret.py --endpoint http://127.0.0.1:5000 NAME --value-file FILE
    put_secret.py --endpoint http://127.0.0.1:5000 --merge NAME '{"field": "new value"}'

VALUE is the SecretString (a JSON object for key lookups). With --merge, VALUE is a JSON object
whose fields replace (or are added to) those of the secret's current JSON object: a rotation of one
key that keeps the others. Credentials and region come from the
usual AWS environment variables (region defaults to us-east-1). The value is never printed.
"""
import argparse
import json
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
    parser.add_argument("--merge", action="store_true",
                        help="merge VALUE's fields into the secret's current JSON object")
    args = parser.parse_args()
    if (args.value is None) == (args.value_file is None):
        parser.error("give exactly one of VALUE and --value-file")
    value = args.value
    if args.value_file:
        with open(args.value_file, encoding="utf-8") as f:
            value = f.read()

    client = boto3.client("secretsmanager", region_name=args.region, endpoint_url=args.endpoint)
    if args.merge:
        current = json.loads(client.get_secret_value(SecretId=args.name)["SecretString"])
        update = json.loads(value)
        if not isinstance(current, dict) or not isinstance(update, dict):
            parser.error("--merge needs JSON objects (the secret's value and VALUE)")
        current.update(update)
        client.put_secret_value(SecretId=args.name, SecretString=json.dumps(current))
        print(f"stored a new version of secret {args.name!r} ({', '.join(sorted(update))} changed)")
        return 0
    try:
        client.create_secret(Name=args.name, SecretString=value)
        print(f"created secret {args.name!r}")
    except client.exceptions.ResourceExistsException:
        client.put_secret_value(SecretId=args.name, SecretString=value)
        print(f"stored a new version of secret {args.name!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
