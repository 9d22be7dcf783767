"""signfuse: under construction this session (registered by the lead; see /tmp/team_api.md)."""
