"""Everything ChatKit-protocol: the ChatKit server and its gate before a stream, the shims over the
openai-chatkit library and its stream, notices, entities, widgets and their actions, the composer's
choices, the client tool `get_time_zone` and the turn lease.

The rest of `app.agents` (the assistant, tools, providers, the offline model) may use this room's
vocabulary (entities, notices, widgets, composer, time_zone) but never its server side; nothing
here imports HTTP (tests/unit/test_architecture.py).
"""
