"""``python -m dagcast.local.localstack destroy``: delete what ``up --backend localstack`` made."""

from __future__ import annotations

import sys

from .backend import LocalStackBackend
from .errors import LocalStackError


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["destroy"]:
        print("usage: python -m dagcast.local.localstack destroy", file=sys.stderr)
        return 2
    backend = LocalStackBackend()
    try:
        backend.destroy()
    except LocalStackError as exc:
        print(f"dagcast: {exc}", file=sys.stderr)
        return 2
    print(f"deleted dagcast's resources from LocalStack at {backend.endpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
