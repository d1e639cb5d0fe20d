"""The ``pyvrel`` command (also ``python -m pyvrel``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def _info(args: argparse.Namespace) -> int:
    from pyvrel import build_info

    info = build_info()
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0
    cpu, cuda = info["cpu"], info["cuda"]
    print(f"pyvrel {info['version']}  (torch {info['torch']}, CUDA device available: {info['torch_cuda_available']})")
    if cpu["available"]:
        print(f"  C++ extension : {cpu['compiler']}, OpenMP {cpu['openmp']} ({cpu['openmp_max_threads']} threads)")
    else:
        print(f"  C++ extension : not available ({cpu['error']})")
    if cuda["available"]:
        print(f"  CUDA extension: CUDA {cuda['cuda_version']}, architectures {cuda['architectures']}")
    else:
        print(f"  CUDA extension: not built (nvcc on PATH: {info['nvcc_on_path']})")
    triton = info["triton"] or "not installed"
    print(f"  Triton        : {triton}{' (interpreter mode)' if info['triton_interpret'] else ''}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from pyvrel import __version__

    parser = argparse.ArgumentParser(prog="pyvrel", description="Video visual relation detection and grounding.")
    parser.add_argument("--version", action="version", version=f"pyvrel {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = sub.add_parser("info", help="show what this installation was built with (pyvrel.build_info())")
    info.add_argument("--json", action="store_true", help="print the full build info as JSON")
    info.set_defaults(func=_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pyvrel`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
