"""The MQTT feed: agent state, quota progress, call events and campaign stats out; commands in.

``topics`` names the topic tree, ``outbox`` holds what waits for the broker,
``commands`` judges what agents send, and ``feed`` is the asyncio part that
talks to the broker (aiomqtt). Only ``feed`` does I/O.
"""
