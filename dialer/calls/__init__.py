"""Calls: legs, their media and the bridges between them (the I/O side)."""
