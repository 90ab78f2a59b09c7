"""``routeiq-bundle``: the offline tools that train, convert, evaluate and publish routers."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog="routeiq-bundle", description=__doc__)


def main(argv: list[str] | None = None) -> int:
    _parser().parse_args(argv)
    _parser().print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
