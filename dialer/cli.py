"""The ``dialer`` console script."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from dialer.config import ConfigError, load_config
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        try:
            load_config(args.config)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 2
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

        run(serve(config, duration=args.duration))
        return 0
    if args.command == "demo":
        from dialer.demo import CustomerMix, run_demo

        try:
            mix = CustomerMix.parse(args.mix, args.talk)
        except ValueError as exc:
            print(exc, file=sys.stderr)
            return 2
        summary = run(
            run_demo(phones=args.phones, duration=args.duration, data_dir=args.data_dir, mix=mix)
        )
        print(summary.render())
        return 0 if summary.ok else 1
    raise AssertionError(args.command)


if __name__ == "__main__":
    raise SystemExit(main())
