"""The ``trm-otel`` command.

    $ trm-otel serve [--config FILE] [--data-dir DIR] [--demo]
    $ trm-otel demo [--otlp-endpoint HOST:PORT]
    $ trm-otel check-config FILE
    $ trm-otel instrument [--service-name NAME] [--otlp-endpoint URL] -- CMD ARGS...
    $ trm-otel alerts|silences|rules ...     (see trm_otel.cli_api)
    $ trm-otel version

Each subcommand is one function here taking the parsed arguments and
returning the exit status; the work lives in the modules they call.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from trm_otel._version import __version__

__all__ = ["main"]


def _setup_logging(level: str = "info") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "httpcore", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _version(_: argparse.Namespace) -> int:
    print(f"trm-otel {__version__}")
    return 0


def _check_config(args: argparse.Namespace) -> int:
    from trm_otel.config import check_config

    problems = check_config(args.file)
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        return 1
    print(f"config OK: {args.file}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from trm_otel.config import load_config
    from trm_otel.daemon import Daemon
    from trm_otel.errors import ConfigError

    try:
        config = load_config(args.config, data_dir=args.data_dir)
    except ConfigError as error:
        print(f"trm-otel: invalid configuration{f' in {args.config}' if args.config else ''}:", file=sys.stderr)
        print(error, file=sys.stderr)
        return 2
    _setup_logging()
    daemon = Daemon(config, demo=args.demo, demo_rps=args.demo_rps)
    try:
        asyncio.run(daemon.run())
    except OSError as error:
        logging.getLogger("trm_otel.daemon").error("cannot start: %s", error)
        return 1
    return 0


def _demo(args: argparse.Namespace) -> int:
    from trm_otel.demo import serve_shop

    _setup_logging()

    async def run() -> None:
        import signal

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve_shop(args.otlp_endpoint, stop, port=args.port, rps=args.rps)

    asyncio.run(run())
    return 0


def _instrument(args: argparse.Namespace) -> int:
    import os

    from trm_otel.distro import run_instrumented

    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    env = dict(os.environ)
    for option, variable in (
        ("service_name", "OTEL_SERVICE_NAME"),
        ("otlp_endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT"),
        ("otlp_protocol", "OTEL_EXPORTER_OTLP_PROTOCOL"),
    ):
        value = getattr(args, option)
        if value is not None:
            env[variable] = value
    return run_instrumented(command, env)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trm-otel",
        description="OpenTelemetry-native latency percentiles, bottlenecks and trends.",
    )
    parser.add_argument("--version", action="version", version=f"trm-otel {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    commands.add_parser("version", help="print the installed version").set_defaults(run=_version)

    serve = commands.add_parser("serve", help="run the OTLP receiver daemon and its API")
    serve.add_argument("--config", metavar="FILE", help="collector-style YAML (default: built-in defaults)")
    serve.add_argument("--data-dir", metavar="DIR", help="overrides storage.path (default ./trm-otel-data)")
    serve.add_argument("--demo", action="store_true", help="also run a demo shop and traffic into this daemon")
    serve.add_argument("--demo-rps", type=float, default=25.0, metavar="N", help="demo requests per second")
    serve.set_defaults(run=_serve)

    demo = commands.add_parser("demo", help="run the demo shop and its traffic against a running daemon")
    demo.add_argument("--otlp-endpoint", default="127.0.0.1:4317", metavar="HOST:PORT", help="OTLP/gRPC receiver")
    demo.add_argument("--port", type=int, default=8081, help="port of the demo shop (0: any free port)")
    demo.add_argument("--rps", type=float, default=25.0, metavar="N", help="requests per second")
    demo.set_defaults(run=_demo)

    check = commands.add_parser("check-config", help="validate a config file and report every problem")
    check.add_argument("file", metavar="FILE")
    check.set_defaults(run=_check_config)

    instrument = commands.add_parser(
        "instrument",
        help="run a Python program with OpenTelemetry auto-instrumentation and trm-otel",
        description="Run CMD with opentelemetry-instrument's hooks and trm-otel as distro and configurator: "
        "the standard OTEL_* variables apply; Starlette/FastAPI spans are named by route template.",
    )
    instrument.add_argument("--service-name", metavar="NAME", help="sets OTEL_SERVICE_NAME")
    instrument.add_argument("--otlp-endpoint", metavar="URL", help="sets OTEL_EXPORTER_OTLP_ENDPOINT")
    instrument.add_argument(
        "--otlp-protocol", choices=["grpc", "http/protobuf"], help="sets OTEL_EXPORTER_OTLP_PROTOCOL (default grpc)"
    )
    instrument.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD ARGS", help="the program to run")
    instrument.set_defaults(run=_instrument)

    from trm_otel.cli_api import add_api_commands
    from trm_otel.cli_dashboards import add_dashboard_commands

    add_api_commands(commands)
    add_dashboard_commands(commands)
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
