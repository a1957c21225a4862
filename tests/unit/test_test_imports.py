"""No test module imports another test module (read from the AST: pure). Helpers and fixtures that
several test files share live in tests/support/ (one concern per module) or in their layer's
conftest.py; a test module that imports another couples the two files (a rename or a split breaks
the other) and, on its own, re-runs nothing, so nothing warns about it but this test."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
# (file, module): why this file needs the other test module itself, not something it could share.
READS_ANOTHER_MODULES_TESTS = {
    ("tests/unit/test_events.py", "tests.unit.test_trace"): "runs the trace tests to record their events",
}


def imports_of_test_modules(source: str) -> Iterator[tuple[int, str]]:
    """(line, module) for each import of a ``tests.<…>.test_<…>`` module, at any depth of the code."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "tests" and any(p.startswith("test_") for p in parts[1:]):
                yield node.lineno, name
                break


def test_no_test_module_imports_another():
    found = [
        f"{path.relative_to(TESTS.parent)}:{line} imports {module}"
        for path in sorted(TESTS.rglob("*.py"))
        for line, module in imports_of_test_modules(path.read_text())
        if (str(path.relative_to(TESTS.parent)), module) not in READS_ANOTHER_MODULES_TESTS
    ]
    assert not found, "move what is shared to tests/support/ or a conftest.py:\n" + "\n".join(found)


def test_the_check_finds_each_form_and_leaves_support_and_conftest_alone():
    source = """
from tests.e2e.test_live_stream import submit
import tests.functional.test_webhooks
from tests.functional import test_fanout
def f():
    from tests.e2e.test_monitor import READ_PAGE
from tests.support.api import submit
from tests.functional.conftest import call
import tests.support.plugins
"""
    assert [line for line, _ in imports_of_test_modules(source)] == [2, 3, 4, 6]
