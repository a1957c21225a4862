"""The LocalStack backend's error: LocalStack is not there, not usable, or refused what dagcast asked.

It is about the machine ``dagcast up`` runs on, not about an execution, so it is not one of the
domain errors of chalicelib/domain/errors.py; ``cmd_up`` turns it into a message and exit code 2.
"""

from __future__ import annotations


class LocalStackError(RuntimeError):
    """LocalStack is not there, not usable, or refused what dagcast asked of it."""
