"""Call recordings on disk: one background writer for the process, and start-up repair.

Recordings are two-channel (agent left, customer right) 16-bit PCM WAV at
8 kHz, one file per call id under a directory per UTC day. The writer keeps
file I/O off the event loop; ``repair`` makes files left by a crash valid.
"""
