"""``dagcast api-key``: a new REST API key and the digest a stage is configured with.

Only the digest is ever stored (DAGCAST_API_KEYS); the key is printed once, for its caller.
"""

from __future__ import annotations

import argparse
import sys

from chalicelib.http.gate import new_api_key

from .command import Subcommands

API_KEY_HELP = """\
Give the key to its caller ($DAGCAST_API_KEY, or 'Authorization: Bearer <key>'); put the digest in
the stage's DAGCAST_API_KEYS (comma-separated) in .chalice/config.json, or run
`dagcast up --api-key <key>` locally. The key itself is not stored anywhere."""


def add_api_key(sub: Subcommands) -> None:
    keys = sub.add_parser(
        "api-key", help="make a REST API key and print it with its digest (DAGCAST_API_KEYS)"
    )
    keys.set_defaults(handler=api_key_command)


def api_key_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    key, digest = new_api_key()
    print(f"key:    {key}\ndigest: {digest}")
    # The how-to goes to stderr, so `dagcast api-key > file` keeps only the key and the digest.
    print(API_KEY_HELP, file=sys.stderr)
    return 0
