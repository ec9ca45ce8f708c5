"""Helpers shared by `tests/` and `bench/` (never shipped): loopback processes, scratch PostgreSQL
databases, ChatKit request bodies and SSE frames, development tokens.

A benchmark and a test that start "the server", make "a database" or send "a turn" must do it
the same way; what both need lives here, once.
"""
