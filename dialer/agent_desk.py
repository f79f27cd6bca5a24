"""The steps of an agent's desk that the HTTP desk and the MQTT commands share.

Which running campaign an agent signs in to, how its desk phone is rung (its
registered contact, with the vendor's auto-answer headers), which runner it
is signed in on, and signing out between calls. A refusal is a
``DeskRefusedError``: a ``ValueError`` whose message says what is wrong, and
whose ``key`` names the text the desk page shows in the reader's language.
"""

from __future__ import annotations

from collections.abc import Sequence

from dialer.agents.state import AgentState
from dialer.calls.manager import Dial
from dialer.config import Config
from dialer.dialing.runner import CampaignRunner, FloorAgent
from dialer.sip.autoanswer import auto_answer_headers
from dialer.sip.registrar import Registrar


class DeskRefusedError(ValueError):
    """A desk action the floor cannot take: ``key`` is the message people read."""

    def __init__(self, key: str, detail: str, **params: object) -> None:
        super().__init__(detail)
        self.key = key
        self.params = params


def campaign_for(
    config: Config, runners: Sequence[CampaignRunner], agent: str, wanted: str | None = None
) -> CampaignRunner:
    """The running campaign the agent is configured for (``wanted``, if given)."""
    configured = {c.id: set(c.agents) for c in config.campaigns}
    for runner in runners:
        if agent in configured.get(runner.campaign_id, ()) and wanted in (None, runner.campaign_id):
            return runner
    where = f"campaign {wanted}" if wanted else "any running campaign"
    raise DeskRefusedError("desk.no_campaign", f"agent {agent} is not configured for {where}")


def desk_phone(config: Config, registrar: Registrar | None, agent: str, now: float) -> Dial:
    """How to ring the agent's desk phone: its registered contact, auto-answer headers."""
    extension = {a.id: a.extension for a in config.agents}.get(agent)
    if extension is None:
        raise DeskRefusedError("desk.no_phone", f"agent {agent} has no desk phone", extension="-")
    binding = registrar.newest(extension, now) if registrar is not None else None
    if binding is None:
        raise DeskRefusedError(
            "desk.no_phone",
            f"agent {agent}'s desk phone {extension} is not registered",
            extension=extension,
        )
    vendor = {p.extension: p.vendor for p in config.phones}.get(extension, "generic")
    return Dial(
        binding.contact,
        binding.destination,
        extra_headers=auto_answer_headers(vendor),
    )


def signed_in(runners: Sequence[CampaignRunner], agent: str) -> tuple[CampaignRunner, FloorAgent]:
    for runner in runners:
        desk = runner.agents.get(agent)
        if desk is not None and desk.agent.state is not AgentState.SIGNED_OUT:
            return runner, desk
    raise DeskRefusedError("desk.not_signed_in", f"agent {agent} is not signed in")


def sign_out(runner: CampaignRunner, desk: FloorAgent) -> None:
    """Sign the agent out and hang up its persistent leg (refused during a call)."""
    state = desk.agent.state
    if state in (AgentState.RESERVED, AgentState.TALKING):
        raise DeskRefusedError("desk.in_call", f"agent {desk.agent.agent_id} is {state.value}")
    runner.sign_out(desk.agent.agent_id)
