"""What an agent's desk hardware or desktop may ask over MQTT, carried out on the floor.

``metrics.mqtt`` authenticates and validates a command (the agent's token,
its own session only); this module finds the campaign the agent works in and
does what was asked, answering with the agent's state. Anything the floor
refuses (a pause reason that does not exist, a disposition without a call)
comes back as a ``ValueError`` whose message the agent's reply carries.
"""

from __future__ import annotations

from collections.abc import Callable

from dialer.agents.state import AgentError
from dialer.calls.manager import Dial
from dialer.config import Config
from dialer.dialing.runner import CampaignRunner
from dialer.sip.autoanswer import auto_answer_headers
from dialer.sip.registrar import Registrar
from dialer.sip.uri import SipUri
from metrics.mqtt.commands import Command, CommandName, Reply


class AgentCommands:
    def __init__(
        self,
        config: Config,
        runners: list[CampaignRunner],
        registrar: Registrar | None,
        now: Callable[[], float],
    ) -> None:
        self.runners = runners  # the floor's list: campaigns started later are found too
        self.registrar = registrar
        self.now = now
        self._extension = {a.id: a.extension for a in config.agents}
        self._vendor = {p.extension: p.vendor for p in config.phones}
        self._campaigns = {c.id: set(c.agents) for c in config.campaigns}

    async def __call__(self, command: Command) -> Reply:
        try:
            return await self._carry_out(command)
        except AgentError as exc:
            raise ValueError(str(exc)) from None

    async def _carry_out(self, command: Command) -> Reply:
        agent = command.agent
        if command.name is CommandName.SIGN_IN:
            runner = self._campaign_for(agent)
            extension = self._extension.get(agent)
            await runner.sign_in(agent, self._desk_phone(agent, extension), extension=extension)
            return self._state(runner, agent)
        runner = self._signed_in(agent)
        if command.name is CommandName.READY:
            runner.ready(agent)
        elif command.name is CommandName.PAUSE:
            assert command.reason is not None  # validated by the parser
            runner.pause(agent, command.reason)
        elif command.name is CommandName.DIAL:
            assert command.number is not None
            call_id = await runner.manual_dial(agent, command.number)
            return Reply({**self._state(runner, agent).data, "call_id": call_id})
        elif command.name is CommandName.HANG_UP:
            return Reply({**self._state(runner, agent).data, "call_id": runner.hang_up(agent)})
        elif command.name is CommandName.DISPOSITION:
            assert command.code is not None
            await runner.disposition(
                agent, command.code, callback_at=command.callback_at, note=command.note
            )
        return self._state(runner, agent)

    def _campaign_for(self, agent: str) -> CampaignRunner:
        for runner in self.runners:
            if agent in self._campaigns.get(runner.campaign_id, ()):
                return runner
        raise ValueError(f"agent {agent} works in no running campaign")

    def _signed_in(self, agent: str) -> CampaignRunner:
        for runner in self.runners:
            if agent in runner.agents:
                return runner
        raise ValueError(f"agent {agent} is not signed in; send sign_in first")

    def _desk_phone(self, agent: str, extension: str | None) -> Dial:
        if extension is None:
            raise ValueError(f"agent {agent} has no desk phone in the configuration")
        bindings = self.registrar.lookup(extension, self.now()) if self.registrar else ()
        if not bindings:
            raise ValueError(f"agent {agent}'s desk phone {extension} is not registered")
        contact = SipUri.parse(bindings[0].contact)
        return Dial(
            bindings[0].contact,
            (contact.host, contact.port or 5060),
            extra_headers=auto_answer_headers(self._vendor.get(extension, "generic")),
        )

    @staticmethod
    def _state(runner: CampaignRunner, agent: str) -> Reply:
        floor = runner.agents[agent]
        return Reply({"state": floor.agent.state.value, "campaign": runner.campaign_id})
