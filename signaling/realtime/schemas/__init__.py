"""The payloads of socket.io events, one module per area; validated before any handler
runs (no unknown fields, no type coercion: ``signaling.realtime.events.Payload``)."""
