"""Messaging backends: `memory` (embedded default, one process) and `redis` (shared, persistent)."""
