"""The reference document's `aws/get-credentials` (../shared/spec/aws-tools-reference.md) over its
WebSocket envelope, in Python: the baseline benches/throughput.rs runs beside `serve`.

The document describes the tool (an `AWSEnvironmentTool` class over boto3, the envelope, the
masking, rate limiting, request validation, a structured log record per credential operation,
a count and duration per tool) but ships no code, so this is written from it, the
straightforward way and without handicaps: the `websockets` asyncio server (no web framework in
front of it), credentials from the process environment when they are there (the document's
first source, and the benchmark's case; boto3's default chain otherwise), masking as the
document says, `json` and `logging` from the standard library. Those are also what `serve`
does per message. It is benchmark scaffolding, not part of the product.

Usage: aws_tools_server.py -- prints {"port": N} once it listens on 127.0.0.1, runs until stdin
closes.
"""

import asyncio
import datetime
import json
import logging
import os
import sys
import time

import boto3
from websockets.asyncio.server import serve

ENV_NAMES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_PROFILE",
)


def mask_key_id(value):
    return value[:10] + "..." if value else value


def mask_token(value):
    return value[:20] + "..." if value else value


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


class AWSEnvironmentTool:
    async def get_aws_credentials(self, profile=None, include_session_token=False):
        env = os.environ
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
        if profile is None and env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
            key_id, token, source = env["AWS_ACCESS_KEY_ID"], env.get("AWS_SESSION_TOKEN"), "environment"
        else:
            session = boto3.Session(profile_name=profile)
            found = session.get_credentials()
            if found is None:
                raise LookupError("AWS credentials not found")
            frozen = found.get_frozen_credentials()
            key_id, token = frozen.access_key, frozen.token
            region = region or session.region_name
            source = f"aws_config_profile:{profile}" if profile else found.method
        credentials = {
            "access_key_id": mask_key_id(key_id),
            "secret_access_key": "***",
            "region": region,
            "profile": profile,
            "has_session_token": token is not None,
        }
        if include_session_token and token:
            credentials["session_token"] = mask_token(token)
        variables = {}
        for name in ENV_NAMES:
            value = env.get(name)
            if value is None:
                continue
            if name == "AWS_ACCESS_KEY_ID":
                value = mask_key_id(value)
            elif name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
                value = "***"
            variables[name] = value
        return {
            "timestamp": now(),
            "credentials": credentials,
            "environment_variables": variables,
            "metadata": {"boto3_available": True, "credentials_source": source},
        }


TOOL = AWSEnvironmentTool()
# Structured logging, one JSON record per credential operation, on stderr.
LOG = logging.getLogger("aws_tools")
_handler = logging.StreamHandler(sys.stderr)
_handler.setFormatter(logging.Formatter("%(message)s"))
LOG.addHandler(_handler)
LOG.setLevel(logging.INFO)
METRICS = {"calls": 0, "failures": 0, "duration_total_ms": 0.0}
RATE, BURST = 1_000_000.0, 1_000_000.0  # as generous as the benchmark sets serve's limits


class Bucket:
    def __init__(self):
        self.tokens, self.at = BURST, time.monotonic()

    def take(self):
        now = time.monotonic()
        self.tokens = min(BURST, self.tokens + (now - self.at) * RATE)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def envelope(kind, request_id, **fields):
    return json.dumps(
        {"message_type": kind, "protocol_version": "2.0", "request_id": request_id, **fields}
    )


async def handle(websocket):
    bucket = Bucket()
    async for text in websocket:
        try:
            request = json.loads(text)
        except ValueError:
            await websocket.send(envelope("ERROR", None, error_code="INVALID_JSON", error_message="not JSON"))
            continue
        if not isinstance(request, dict) or not isinstance(request.get("message_id"), str):
            await websocket.send(envelope("ERROR", None, error_code="VALIDATION_ERROR", error_message="not a request"))
            continue
        request_id = request.get("message_id")
        params = request.get("params") or {}
        if not isinstance(params, dict):
            await websocket.send(envelope("ERROR", request_id, error_code="VALIDATION_ERROR", error_message="params"))
            continue
        if not bucket.take():
            await websocket.send(envelope("ERROR", request_id, error_code="RATE_LIMITED", error_message="slow down"))
            continue
        if request.get("method") != "aws/get-credentials":
            await websocket.send(
                envelope("ERROR", request_id, error_code="METHOD_NOT_FOUND", error_message="unknown method")
            )
            continue
        started = time.perf_counter()
        try:
            result = await TOOL.get_aws_credentials(
                params.get("profile"), bool(params.get("include_session_token", False))
            )
        except Exception as err:  # the document's execution_error
            METRICS["failures"] += 1
            await websocket.send(envelope("ERROR", request_id, error_code="EXECUTION_FAILED", error_message=str(err)))
            continue
        duration_ms = (time.perf_counter() - started) * 1000
        METRICS["calls"] += 1
        METRICS["duration_total_ms"] += duration_ms
        LOG.info(json.dumps({"timestamp": result["timestamp"], "level": "INFO", "tool": "aws/get-credentials",
                             "request_id": request_id, "outcome": "ok", "duration_ms": duration_ms,
                             "credentials_source": result["metadata"]["credentials_source"]}))
        await websocket.send(envelope("RESPONSE", request_id, result=result))


async def main():
    async with serve(handle, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        print(json.dumps({"port": port}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


asyncio.run(main())
