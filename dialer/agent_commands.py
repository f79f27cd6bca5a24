"""What an agent's desk hardware or desktop may ask over MQTT, carried out on the floor.

``metrics.mqtt`` authenticates and validates a command (the agent's token,
its own session only); this module finds the campaign the agent works in and
does what was asked, answering with the agent's state. Anything the floor
refuses (a pause reason that does not exist, a disposition without a call)
comes back as a ``ValueError`` whose message the agent's reply carries.
"""

from __future__ import annotations

from collections.abc import Callable

from dialer.agent_desk import campaign_for, desk_phone, signed_in
from dialer.agents.state import AgentError
from dialer.config import Config
from dialer.dialing.runner import CampaignRunner
from dialer.sip.registrar import Registrar
from metrics.mqtt.commands import Command, CommandName, Reply


class AgentCommands:
    def __init__(
        self,
        config: Callable[[], Config],
        runners: list[CampaignRunner],
        registrar: Registrar | None,
        now: Callable[[], float],
    ) -> None:
        self.config = config  # the floor's, now: campaigns defined later are found too
        self.runners = runners  # the floor's list: campaigns started later are found too
        self.registrar = registrar
        self.now = now

    async def __call__(self, command: Command) -> Reply:
        try:
            return await self._carry_out(command)
        except AgentError as exc:
            raise ValueError(str(exc)) from None

    async def _carry_out(self, command: Command) -> Reply:
        agent = command.agent
        if command.name is CommandName.SIGN_IN:
            config = self.config()
            runner = campaign_for(config, self.runners, agent)
            phone = desk_phone(config, self.registrar, agent, self.now())
            extension = {a.id: a.extension for a in config.agents}.get(agent)
            await runner.sign_in(agent, phone, extension=extension)
            return self._state(runner, agent)
        runner, _ = signed_in(self.runners, agent)
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

    @staticmethod
    def _state(runner: CampaignRunner, agent: str) -> Reply:
        floor = runner.agents[agent]
        return Reply({"state": floor.agent.state.value, "campaign": runner.campaign_id})
