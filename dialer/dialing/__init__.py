"""Dialing modes: they choose the next lead and drive the call manager."""
