"""The official MCP Python SDK 2.x as a client of the server under test, speaking 2026-07-28.

Usage:
  mcp2_client.py http URL            Streamable HTTP
  mcp2_client.py stdio CMD ARG...    stdio, launching CMD (a proxy) with this environment

The client runs in mode "auto": it asks server/discover first and adopts 2026-07-28 when the
server offers it (falling back to initialize otherwise, which the test would see). It lists the
tools and calls each one, passing set-environment's environment_id on; prints one JSON object
with what it saw. A failure prints {"error": ...} and exits 3.
"""

import asyncio
import json
import os
import sys
import tempfile
import warnings

from mcp import Client, StdioServerParameters

warnings.simplefilter("ignore", DeprecationWarning)


async def main(transport: str, target: list[str]) -> int:
    seen: dict = {"calls": {}}
    errlog = tempfile.TemporaryFile(mode="w+")
    if transport == "http":
        server = target[0]
    elif transport == "stdio":
        server = StdioServerParameters(command=target[0], args=target[1:], env=dict(os.environ))
    else:
        raise SystemExit(f"unknown transport {transport}")
    try:
        async with Client(server, mode="auto") as client:
            seen["protocol_version"] = client.protocol_version
            seen["server_name"] = client.server_info.name if client.server_info else None
            seen["instructions"] = client.instructions
            tools = await client.list_tools()
            seen["tools"] = [t.name for t in tools.tools]
            calls = [
                ("aws_list_profiles", {}),
                ("aws_get_credentials", {}),
                ("aws_get_account_info", {}),
                ("aws_validate_credentials", {}),
                ("aws_set_environment", {"region": "ap-northeast-1"}),
                ("aws_get_credentials", {}),
            ]
            environment_id = None
            for index, (name, arguments) in enumerate(calls):
                if environment_id and name == "aws_get_credentials":
                    arguments = {**arguments, "environment_id": environment_id}
                result = await client.call_tool(name, arguments)
                structured = result.structured_content or {}
                environment_id = structured.get("environment_id", environment_id)
                seen["calls"][f"{index}:{name}"] = {
                    "is_error": result.is_error,
                    "structured": result.structured_content,
                }
        status = 0
    except Exception as error:  # noqa: BLE001 - reported to the Rust test
        while isinstance(error, BaseExceptionGroup) and error.exceptions:
            error = error.exceptions[0]
        seen["error"] = f"{type(error).__name__}: {error}"
        status = 3
    errlog.seek(0)
    seen["stderr"] = errlog.read()
    print(json.dumps(seen))
    return status


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2:])))
