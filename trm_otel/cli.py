"""The ``trm-otel`` command.

    $ trm-otel version
    trm-otel 0.1.0

Subcommands are added as their capabilities land (``serve``, ``demo``,
``check-config``, ``instrument``); each is one function here taking the
parsed arguments and returning the exit status.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from trm_otel._version import __version__

__all__ = ["main"]


def _version(_: argparse.Namespace) -> int:
    print(f"trm-otel {__version__}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trm-otel",
        description="OpenTelemetry-native latency percentiles, bottlenecks and trends.",
    )
    parser.add_argument("--version", action="version", version=f"trm-otel {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("version", help="print the installed version").set_defaults(run=_version)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help(sys.stderr)
        return 2
    return int(args.run(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
