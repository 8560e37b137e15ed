"""The ``gbhil`` command: one argparse tree, each layer registers its own verbs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    from gbhil import cli_dcc, cli_devices, cli_run, demo
    from gbhil import cli_gbcs as gbcs_cli
    from gbhil.rigs import cli as rig_cli
    from gbhil.smki import cli as smki_cli

    parser = argparse.ArgumentParser(prog="gbhil", description=__doc__)
    sub = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")
    gbcs_cli.register(sub)
    smki_cli.register(sub)
    demo.register(sub)
    cli_devices.register(sub)
    rig_cli.register(sub)
    cli_dcc.register(sub)
    cli_run.register(sub)
    __import__("gbhil.cli_firmware", fromlist=["register"]).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
