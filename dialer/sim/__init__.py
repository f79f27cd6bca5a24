"""Simulated lines for the demo floor and tests: production SIP/RTP code on both ends."""
