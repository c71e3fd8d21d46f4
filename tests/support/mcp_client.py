"""The official MCP Python SDK (1.x) as a client of the server under test.

Usage:
  mcp_client.py ws URL            the WebSocket transport (the last SDK line that has one)
  mcp_client.py http URL          the Streamable HTTP transport (protocol 2025-11-25)
  mcp_client.py stdio CMD ARG...  the stdio transport, launching CMD (a proxy) with this
                                  process's environment

Initializes, lists the tools, and calls each tool, passing the environment_id that
aws_set_environment answers to the next call; the SDK validates every structuredContent
against the tool's outputSchema. Prints one JSON object with what it saw (for stdio, with the
proxy's stderr), for the Rust test to check. A failure prints {"error": ...} and exits 3.
"""

import asyncio
import json
import os
import sys
import tempfile
import warnings

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamablehttp_client
from mcp.client.websocket import websocket_client

warnings.simplefilter("ignore", DeprecationWarning)


async def exercise(read, write, seen: dict) -> None:
    async with ClientSession(read, write) as session:
        init = await session.initialize()
        seen["protocol_version"] = init.protocolVersion
        seen["server_name"] = init.serverInfo.name
        tools = await session.list_tools()
        seen["tools"] = [t.name for t in tools.tools]
        seen["read_only"] = {
            t.name: t.annotations.readOnlyHint for t in tools.tools if t.annotations
        }
        await session.send_ping()
        calls = [
            ("aws_list_profiles", {}),
            ("aws_get_credentials", {"include_session_token": True}),
            ("aws_get_account_info", {}),
            ("aws_validate_credentials", {}),
            ("aws_set_environment", {"region": "eu-west-3"}),
            ("aws_get_credentials", {}),
            ("aws_get_account_info", {"profile": "no-such-profile"}),
        ]
        environment_id = None
        for index, (name, arguments) in enumerate(calls):
            if environment_id and name == "aws_get_credentials":
                arguments = {**arguments, "environment_id": environment_id}
            result = await session.call_tool(name, arguments)
            structured = result.structuredContent or {}
            environment_id = structured.get("environment_id", environment_id)
            seen["calls"][f"{index}:{name}"] = {
                "is_error": result.isError,
                "structured": result.structuredContent,
                "text": [c.text for c in result.content if c.type == "text"],
            }


async def main(transport: str, target: list[str]) -> int:
    seen: dict = {"calls": {}}
    errlog = tempfile.TemporaryFile(mode="w+")
    try:
        if transport == "ws":
            async with websocket_client(target[0]) as (read, write):
                await exercise(read, write, seen)
        elif transport == "http":
            async with streamablehttp_client(target[0]) as (read, write, _):
                await exercise(read, write, seen)
        elif transport == "stdio":
            server = StdioServerParameters(
                command=target[0], args=target[1:], env=dict(os.environ)
            )
            async with stdio_client(server, errlog=errlog) as (read, write):
                await exercise(read, write, seen)
        else:
            raise SystemExit(f"unknown transport {transport}")
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
