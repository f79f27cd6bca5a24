"""Agents: one sans-IO state machine per agent and the timesheet folded from its events.

``state`` owns the agent states, the transition table, pause reasons and the
policy; ``timesheet`` turns a stream of ``AgentStateChanged`` into seconds per
state and per pause reason. Neither reads a clock nor touches a socket.
"""
