"""The operator's dashboard: every guild and agent of an organisation at a glance (pages, not an API)."""
