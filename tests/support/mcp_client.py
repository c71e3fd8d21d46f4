"""The official MCP Python SDK's WebSocket client against the server under test.

Usage: mcp_client.py WS_URL. Initializes, lists the tools, and calls each tool; the SDK
validates every structuredContent against the tool's outputSchema. Prints one JSON object
with what it saw, for the Rust test to check.
"""

import asyncio
import json
import sys
import warnings

from mcp import ClientSession
from mcp.client.websocket import websocket_client

warnings.simplefilter("ignore", DeprecationWarning)


async def main(url: str) -> None:
    seen = {"calls": {}}
    async with websocket_client(url) as (read, write):
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
            for index, (name, arguments) in enumerate(calls):
                result = await session.call_tool(name, arguments)
                seen["calls"][f"{index}:{name}"] = {
                    "is_error": result.isError,
                    "structured": result.structuredContent,
                    "text": [c.text for c in result.content if c.type == "text"],
                }
    print(json.dumps(seen))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
