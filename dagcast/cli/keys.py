"""``dagcast api-key``: a new REST API key, the digest a stage knows it by, and its tenant.

Only the digest is ever stored; the key is printed once, for its caller. Without ``--stage`` the
command touches nothing: it prints the key, its digest and how to use them (``DAGCAST_API_KEYS`` of
a stage, ``dagcast up --api-key TENANT=KEY`` locally). With ``--stage S`` it registers the digest
for the tenant in the stage's table (persistence/apikeys.py), with the caller's AWS credentials:
the stage's API finds it within ``DAGCAST_API_KEY_CACHE_SECONDS`` (the stage must have
``DAGCAST_API_KEY_STORE`` on). ``--revoke DIGEST --stage S`` removes one; the API stops taking it
within the same time.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from chalicelib.domain.model import now_ms
from chalicelib.http.gate import new_api_key
from chalicelib.persistence.apikeys import apikey_item, apikey_key
from chalicelib.tenants import DEFAULT_TENANT, tenant_problem

from ..client import CliError
from ..deploy.stage import table_name
from .command import Subcommands, guarded

API_KEY_HELP = """\
Give the key to its caller ($DAGCAST_API_KEY, or 'Authorization: Bearer <key>'). Register it with
`dagcast api-key --tenant {tenant} --stage STAGE` (kept in the stage's table), or put the digest in
the stage's DAGCAST_API_KEYS (comma-separated; a plain digest is tenant 'default', '<tenant>:<digest>'
names one), or run `dagcast up --api-key {tenant}=<key>` locally. The key itself is not stored anywhere."""


def add_api_key(sub: Subcommands) -> None:
    keys = sub.add_parser(
        "api-key",
        help="make a REST API key for a tenant; print it with its digest, or register it for a stage",
    )
    keys.add_argument("--tenant", default=DEFAULT_TENANT, help="whose key it is (default: 'default')")
    keys.add_argument("--stage", help="register the key's digest in this deployed stage's table")
    keys.add_argument("--region", help="the stage's AWS region (default: the AWS configuration's)")
    keys.add_argument("--revoke", metavar="DIGEST", help="remove this key (its digest) from --stage instead")
    keys.set_defaults(handler=lambda parser, args: guarded(api_key_command)(args))


def api_key_command(args: argparse.Namespace, dynamodb: Any = None) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return _api_key(args, dynamodb)
    except (BotoCoreError, ClientError) as exc:  # no credentials, no table: one line, no trace
        raise CliError(f"stage {args.stage}: {exc}") from None


def _api_key(args: argparse.Namespace, dynamodb: Any) -> int:
    problem = tenant_problem(args.tenant)
    if problem:
        raise CliError(problem)
    if args.revoke:
        if not args.stage:
            raise CliError("--revoke needs --stage: the stage whose table holds the key")
        out = _table(args, dynamodb).delete_item(
            TableName=table_name(args.stage), Key=apikey_key(args.revoke), ReturnValues="ALL_OLD"
        )
        if "Attributes" not in out:
            raise CliError(f"stage {args.stage} has no key with digest {args.revoke}")
        print(f"revoked: {args.revoke} (the stage's API refuses it within its key cache time)")
        return 0
    key, digest = new_api_key()
    print(f"key:    {key}\ndigest: {digest}\ntenant: {args.tenant}")
    if args.stage:
        _table(args, dynamodb).put_item(
            TableName=table_name(args.stage), Item=apikey_item(digest, args.tenant, now_ms())
        )
        print(f"registered for stage {args.stage} (table {table_name(args.stage)})", file=sys.stderr)
    else:
        # The how-to goes to stderr, so `dagcast api-key > file` keeps only the key and the digest.
        print(API_KEY_HELP.format(tenant=args.tenant), file=sys.stderr)
    return 0


def _table(args: argparse.Namespace, dynamodb: Any) -> Any:
    if dynamodb is not None:
        return dynamodb
    import boto3

    return boto3.client("dynamodb", region_name=args.region) if args.region else boto3.client("dynamodb")
