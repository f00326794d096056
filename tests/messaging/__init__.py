"""Tests of the messaging app (ids, messages, bus, backends, clients)."""
