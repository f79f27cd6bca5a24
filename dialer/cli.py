"""The ``dialer`` console script."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from dialer.api.server import ListenError
from dialer.config import Config, ConfigError, load_config
from dialer.loop import run


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dialer",
        description="Telephony for a telesales floor: SIP/RTP, auto-dialer, CDRs, quotas, metrics.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser(
        "check-config", help="validate a configuration file and report every problem"
    )
    check.add_argument(
        "config", type=Path, nargs="?", help="TOML file (defaults apply without one)"
    )

    leads = commands.add_parser(
        "import-leads", help="import a CSV lead list into a configured campaign, all or nothing"
    )
    leads.add_argument("file", type=Path, help="CSV (UTF-8 with or without BOM, or GB18030)")
    leads.add_argument("--campaign", required=True, help="campaign id from the configuration")
    leads.add_argument("--config", type=Path, help="TOML configuration file")
    leads.add_argument(
        "--accept-valid",
        action="store_true",
        help="import the valid rows even when some rows are invalid (the report lists them)",
    )

    serve = commands.add_parser("serve", help="run the service")
    serve.add_argument("--config", type=Path, help="TOML configuration file")
    serve.add_argument(
        "--duration",
        type=float,
        default=None,
        help="stop after this many seconds (default: run until interrupted)",
    )

    demo = commands.add_parser(
        "demo", help="run the service on embedded defaults with a simulated floor on loopback"
    )
    demo.add_argument("--phones", type=int, default=4, help="simulated desk phones (default 4)")
    demo.add_argument("--duration", type=float, default=10.0, help="seconds to run (default 10)")
    demo.add_argument(
        "--data-dir", type=Path, default=Path("var/demo"), help="where the demo writes"
    )
    demo.add_argument(
        "--mix",
        default="answer=60,busy=20,invalid=10,unavailable=10",
        help="customers' behaviour weights: answer, busy, invalid, unavailable, no_answer",
    )
    demo.add_argument("--talk", default="2-6", help="talk time of answered calls, LOW-HIGH s")
    demo.add_argument(
        "--http-port",
        type=int,
        default=8080,
        help="serve the API and pages on 127.0.0.1 at this port (0: any free port; default 8080)",
    )
    demo.add_argument("--password", default="demo", help="the demo users' password (default: demo)")
    demo.add_argument(
        "--desk-agents",
        default="",
        metavar="AGENT,...",
        help="agents a person works from the desk page (not signed in by the simulation)",
    )
    demo.add_argument(
        "--desk-mode",
        choices=("progressive", "preview"),
        default="progressive",
        help="how the desk agents' campaign dials: progressive (the floor's campaign dials for "
        "them) or preview (a campaign of their own: next lead, accept or skip; needs "
        "--desk-agents); default progressive",
    )
    _add_user_commands(commands)
    _add_cdr_commands(commands)
    quota = commands.add_parser("quota", help="the live quota counters against the CDRs")
    quota_actions = quota.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, text in (
        ("reconcile", "recompute a period's counters from the CDRs and list differences"),
        ("report", "write a day's end-of-day quota report (CSV and JSON)"),
    ):
        action = _with_config(quota_actions.add_parser(name, help=text))
        action.add_argument(
            "--data-dir", type=Path, help="a demo floor's data directory instead of a config"
        )
        action.add_argument("--day", metavar="YYYY-MM-DD", help="default: today on the floor")
        if name == "reconcile":
            action.add_argument("--period", choices=("day", "week", "month"), default="day")
    return parser


CDR_COMMANDS = ("cdr", "recordings", "qa")


def _add_user_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    user = commands.add_parser("user", help="users of the HTTP API and the pages")
    actions = user.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = _with_config(
        actions.add_parser("add", help="add a user; the password is read from stdin")
    )
    add.add_argument("--username", required=True)
    add.add_argument("--role", required=True, choices=("agent", "qa", "supervisor", "admin"))
    add.add_argument("--agent", help="the configured agent id (role agent)")
    add.add_argument("--name", default="", help="shown name (default: the username)")
    add.add_argument("--locale", default="zh-CN", choices=("zh-CN", "en"))
    add.add_argument("--team", help="default: the agent's team")
    add.add_argument(
        "--password-env", metavar="VAR", help="read the password from this variable instead"
    )
    token = _with_config(
        actions.add_parser("token", help="issue an API token for a user (printed once)")
    )
    token.add_argument("--username", required=True)
    token.add_argument("--label", default="", help="what the token is for")


def _with_config(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--config", type=Path, help="TOML configuration file")
    return parser


def _with_user(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", help="who acts, for the audit log (default: the OS user)")


def _add_cdr_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``cdr``, ``recordings`` and ``qa``: run by dialer.cdr_cli."""
    day = "YYYY-MM-DD"
    cdr = commands.add_parser("cdr", help="export CDRs and report on them")
    cdr_actions = cdr.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = _with_config(
        cdr_actions.add_parser("export", help="stream the CDRs of a range of local days")
    )
    export.add_argument("--from", dest="first", required=True, metavar=day, help="first day")
    export.add_argument("--to", dest="last", required=True, metavar=day, help="last day, included")
    export.add_argument("--agent", help="only this agent's CDRs")
    export.add_argument("--campaign", help="only this campaign's CDRs")
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv", help="default csv")
    export.add_argument("--out", type=Path, help="file to write (default: stdout)")
    export.add_argument(
        "--mask-numbers", action="store_true", help="hide the middle digits of customers' numbers"
    )
    _with_user(export)
    report = _with_config(
        cdr_actions.add_parser("report", help="activity per agent, team or campaign")
    )
    report.add_argument("--day", required=True, metavar=day, help="a day of the period")
    report.add_argument("--period", choices=("day", "week", "month"), default="day")
    report.add_argument("--by", choices=("agent", "team", "campaign"), default="agent")
    report.add_argument("--format", choices=("table", "csv", "json"), default="table")

    recordings = commands.add_parser("recordings", help="the recordings index and its files")
    actions = recordings.add_subparsers(dest="action", required=True, metavar="ACTION")
    _with_config(
        actions.add_parser("check", help="files without rows and rows without files (exit 1)")
    )
    purge = _with_config(
        actions.add_parser("purge", help="delete the recordings past their retention")
    )
    purge.add_argument("--dry-run", action="store_true", help="list what would be deleted")
    hold = _with_config(actions.add_parser("hold", help="put a legal hold on a recording"))
    hold.add_argument("call_id", metavar="CALL_ID")
    hold.add_argument("--reason", required=True, help="why it must be kept")
    _with_user(hold)
    release = _with_config(actions.add_parser("release", help="lift a legal hold"))
    release.add_argument("call_id", metavar="CALL_ID")
    _with_user(release)
    verify = _with_config(
        actions.add_parser("verify", help="check a recording against its checksum (audited)")
    )
    verify.add_argument("call_id", metavar="CALL_ID")
    _with_user(verify)
    _with_config(
        actions.add_parser("index", help="index the recordings of closed CDRs not indexed yet")
    )

    qa = commands.add_parser("qa", help="quality assurance")
    qa_actions = qa.add_subparsers(dest="action", required=True, metavar="ACTION")
    qa_sample = _with_config(qa_actions.add_parser("sample", help="a day's calls to review"))
    qa_sample.add_argument("--day", required=True, metavar=day)
    qa_sample.add_argument("--seed", type=int, help="default: the day, so a rerun picks the same")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        try:
            checked = load_config(args.config)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 2
        from dialer.config_notes import notes

        for note in notes(checked):
            print(f"note: {note}", file=sys.stderr)
        print(f"{args.config or 'defaults'}: ok")
        return 0
    if args.command == "import-leads":
        try:
            config = load_config(args.config)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 2
        from dialer.import_cli import import_file, render

        try:
            code, report, message = run(
                import_file(config, args.campaign, args.file, accept_valid=args.accept_valid)
            )
        except OSError as exc:
            print(f"{args.file}: cannot read: {exc.strerror}", file=sys.stderr)
            return 2
        print(render(report, message), file=sys.stdout if code == 0 else sys.stderr)
        return code
    if args.command == "serve":
        try:
            config = load_config(args.config)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 2
        from dialer.floor import serve

        try:
            run(serve(config, duration=args.duration))
        except ListenError as exc:
            print(exc.strerror, file=sys.stderr)
            return 2
        return 0
    if args.command == "demo":
        from dialer.demo import CustomerMix, run_demo

        try:
            mix = CustomerMix.parse(args.mix, args.talk)
        except ValueError as exc:
            print(exc, file=sys.stderr)
            return 2
        desk_agents = [a.strip() for a in args.desk_agents.split(",") if a.strip()]
        if not 0 <= args.http_port <= 65535:
            print(f"--http-port: {args.http_port} is not a port (0 to 65535)", file=sys.stderr)
            return 2
        try:
            summary = run(
                run_demo(
                    phones=args.phones,
                    duration=args.duration,
                    data_dir=args.data_dir,
                    mix=mix,
                    http_port=args.http_port,
                    password=args.password,
                    desk_agents=desk_agents,
                    desk_mode=args.desk_mode,
                    announce=lambda line: print(line, file=sys.stderr, flush=True),
                )
            )
        except ListenError as exc:
            print(exc.strerror, file=sys.stderr)
            return 2
        except ValueError as exc:
            print(exc, file=sys.stderr)
            return 2
        print(summary.render())
        return 0 if summary.ok else 1
    if args.command == "user":
        try:
            config = load_config(args.config)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 2
        return _user_command(config, args)
    if args.command in CDR_COMMANDS:
        try:
            config = load_config(args.config)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 2
        from dialer.cdr_cli import run_command

        return run_command(config, args, sys.stdout, sys.stderr)
    if args.command == "quota":
        try:
            config = load_config(args.config)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 2
        from cdr.reports import Period
        from dialer.cdr_cli import UsageError
        from dialer.quota_cli import for_data_dir, run_quota

        if args.data_dir is not None:
            config = for_data_dir(config, args.data_dir)
        try:
            period: Period = args.period if args.action == "reconcile" else "day"
            return run(run_quota(config, args.action, args.day, period, sys.stdout))
        except UsageError as exc:
            print(exc, file=sys.stderr)
            return 2
    raise AssertionError(args.command)


def _user_command(config: Config, args: argparse.Namespace) -> int:
    from dialer.api.users import UserError, UserStore
    from dialer.store.database import Database

    password = ""
    if args.action == "add":
        if args.password_env:
            password = os.environ.get(args.password_env, "")
            if not password:
                print(f"--password-env: {args.password_env} is not set", file=sys.stderr)
                return 2
        else:
            password = sys.stdin.readline().rstrip("\r\n")

    async def act() -> str:
        async with Database(config.database.url) as database:
            await database.upgrade()
            users = UserStore(database.sessionmaker, config)
            if args.action == "add":
                user = await users.create_user(
                    username=args.username,
                    password=password,
                    role=args.role,
                    name=args.name,
                    locale=args.locale,
                    agent_id=args.agent,
                    team=args.team,
                )
                return f"user {user.username} ({user.role.value}) added, id {user.id}"
            found = await users.by_username(args.username)
            if found is None:
                raise UserError([f"no user {args.username!r}"])
            return await users.issue_token(found.id, args.label)

    try:
        print(run(act()))
    except UserError as exc:
        for problem in exc.problems:
            print(f"{args.username}: {problem}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
