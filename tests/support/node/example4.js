// The reference document's Example 4, unchanged but for the two lines marked "harness":
// the `ws` package provides WebSocket, and the URL comes from the test.
const WebSocket = require('ws'); // harness
const url = process.argv[2] || 'ws://localhost:8000/ws'; // harness

// Connect to MCP server via WebSocket
const ws = new WebSocket(url);

ws.on('open', () => {
  // Request AWS credentials
  ws.send(JSON.stringify({
    message_type: 'REQUEST',
    protocol_version: '2.0',
    message_id: 'req-1',
    method: 'aws/get-credentials',
    params: {
      profile: 'default'
    }
  }));
});

ws.on('message', (data) => {
  const response = JSON.parse(data);
  console.log('AWS Credentials:', JSON.stringify(response.result));
  console.log('RAW ' + JSON.stringify(response));
  ws.close(); // harness: one answer is all the test needs
});
