"""The chat widget's side of Parley: public config, visitor sessions, the WebSocket."""
