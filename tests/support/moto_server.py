"""moto on 127.0.0.1 on a free port, for the test suite.

Prints one JSON line: {"port", "role_arn", "table" (a session table, TTL on `expires_at`),
"kms_key_id", and with --iam-auth "user": {access_key_id, secret_access_key}}, then serves
until its stdin closes (the test process that started it
holds the other end, so moto stops when the tests do, however they end).
"""

import argparse
import json
import sys
import urllib.request

import boto3
from moto.server import ThreadedMotoServer

def trust_policy(principals):
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": principals},
                "Action": "sts:AssumeRole",
            }
        ],
    }
ALLOW_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--iam-auth",
        action="store_true",
        help="create an IAM user, then make moto authenticate every request",
    )
    args = parser.parse_args()

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    url = f"http://127.0.0.1:{port}"
    iam = boto3.client(
        "iam",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="moto-setup-secret-key-not-used-elsewhere",
    )
    # With IAM authentication moto checks the trust policy's principals one by one, so the
    # role names the user whose keys are valid.
    principals = ["arn:aws:iam::123456789012:root"]
    if args.iam_auth:
        principals.append("arn:aws:iam::123456789012:user/alice")
        iam.create_user(UserName="alice")
    role = iam.create_role(
        RoleName="deploy", AssumeRolePolicyDocument=json.dumps(trust_policy(principals))
    )
    session = boto3.Session(
        region_name="us-east-1",
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="moto-setup-secret-key-not-used-elsewhere",
    )
    dynamodb = session.client("dynamodb", endpoint_url=url)
    dynamodb.create_table(
        TableName="mcp-aws-tools-sessions",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName="mcp-aws-tools-sessions",
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
    )
    key = session.client("kms", endpoint_url=url).create_key(
        Description="mcp-aws-tools session sealing"
    )
    info = {
        "port": port,
        "role_arn": role["Role"]["Arn"],
        "table": "mcp-aws-tools-sessions",
        "kms_key_id": key["KeyMetadata"]["KeyId"],
    }
    if args.iam_auth:
        iam.put_user_policy(
            UserName="alice", PolicyName="all", PolicyDocument=json.dumps(ALLOW_ALL)
        )
        key = iam.create_access_key(UserName="alice")["AccessKey"]
        info["user"] = {
            "access_key_id": key["AccessKeyId"],
            "secret_access_key": key["SecretAccessKey"],
        }
        request = urllib.request.Request(
            f"{url}/moto-api/reset-auth", data=b"0", method="POST"
        )
        request.add_header("Content-Type", "application/json")
        urllib.request.urlopen(request).read()
    print(json.dumps(info), flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
