// The official MCP TypeScript SDK's Streamable HTTP client, unmodified, against URL: connect
// (initialize), tools/list, then tool calls; prints one JSON line of what it saw.
// Usage: node ts_client.mjs URL GENERATION
//   GENERATION 1: @modelcontextprotocol/sdk 1.x; 2: @modelcontextprotocol/client 2.x, as it
//   comes (2025-era `initialize`); 2-auto: the same with `versionNegotiation: { mode: "auto" }`
//   (2026-07-28 through `server/discover`, falling back to `initialize`); 1-ws: the 1.x SDK's
//   WebSocket client (2.x has none), URL being `ws://.../ws`.
const [url, generation] = process.argv.slice(2);
let Client, StreamableHTTPClientTransport, WebSocketClientTransport;
if (generation.startsWith("2")) {
  ({ Client, StreamableHTTPClientTransport } = await import("@modelcontextprotocol/client"));
} else {
  ({ Client } = await import("@modelcontextprotocol/sdk/client/index.js"));
  ({ StreamableHTTPClientTransport } = await import(
    "@modelcontextprotocol/sdk/client/streamableHttp.js"
  ));
  ({ WebSocketClientTransport } = await import("@modelcontextprotocol/sdk/client/websocket.js"));
  // The WebSocket client uses the global WebSocket, which Node has from version 22 on.
  globalThis.WebSocket ??= (await import("ws")).WebSocket;
}
const options = generation === "2-auto" ? { versionNegotiation: { mode: "auto" } } : undefined;
const client = new Client({ name: `ts-sdk-${generation}`, version: "1.0.0" }, options);
const transport =
  generation === "1-ws"
    ? new WebSocketClientTransport(new URL(url))
    : new StreamableHTTPClientTransport(new URL(url));
// The version the client settled on, as the client hands it to a transport that keeps one.
transport.setProtocolVersion ??= (version) => {
  transport.protocolVersion = version;
};
const errors = [];
client.onerror = (error) => errors.push(String(error));
await client.connect(transport);
const seen = {
  server: client.getServerVersion(),
  protocol_version: transport.protocolVersion ?? null,
  tools: (await client.listTools()).tools.map((tool) => tool.name).sort(),
  calls: {},
};
const calls = [
  ["aws_get_credentials", {}],
  ["aws_get_account_info", {}],
  ["aws_get_credentials", { profile: 7 }],
];
for (const [index, [name, args]] of calls.entries()) {
  const result = await client.callTool({ name, arguments: args });
  seen.calls[`${index + 1}:${name}`] = {
    is_error: result.isError ?? false,
    structured: result.structuredContent ?? null,
  };
}
await client.close();
seen.errors = errors;
console.log(JSON.stringify(seen));
