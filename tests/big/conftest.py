"""The functional tests' local stack, for the big DAGs."""

from tests.functional.conftest import _quiet_fanout_logs, services, stack

__all__ = ["_quiet_fanout_logs", "services", "stack"]
