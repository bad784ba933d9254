"""gateway: the web UI, the REST API and the WebSocket push."""
