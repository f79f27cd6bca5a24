"""Campaign logic the dialer runs on its own: when a lead may be called (its
local calling windows), what an attempt's outcome does to the lead (retry,
callback, done, never again), and which leads an agent gets next (the hopper).

Everything here is sans-IO: plain data in, plain data out, ``now`` an argument.
"""
