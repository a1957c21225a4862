"""The shape of the source in chalicelib/ and dagcast/, read from its AST (pure: no imports of it).

- no module over 500 lines;
- no function over 60 lines (def line through last line) unless a comment at its top, the first
  thing after the signature or the docstring, starts with ``# One piece:`` and says why;
- no bare status literal outside chalicelib/domain/model.py: a string equal to a status, policy or
  step answer there, used as one (compared, a dict value, an argument, assigned, returned, a
  default, a ``Literal``), and a reason's string where it is used as a reason. Names of attributes
  are not statuses: dict keys, subscripts (``meta["completed"]``), the first argument of
  ``.get``/``.pop``/``.setdefault`` and keyword names are left alone.

Each failure lists file:line and what to write instead. The self-tests at the end feed the checkers
snippets with a violation, so a checker that finds nothing cannot pass unnoticed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import NamedTuple

from chalicelib.domain.model import (
    DeliveryStatus,
    ExecutionStatus,
    FailurePolicy,
    Reason,
    StepAnswer,
    TaskStatus,
)

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("chalicelib", "dagcast")
ENUM_HOME = "chalicelib/domain/model.py"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60
ONE_PIECE = "# One piece:"


def _members(*enums: type[StrEnum]) -> dict[str, list[str]]:
    """Each value → the members spelling it (``"completed"`` → TaskStatus.COMPLETED, …)."""
    out: dict[str, list[str]] = {}
    for enum in enums:
        for member in enum:
            out.setdefault(member.value, []).append(f"{enum.__name__}.{member.name}")
    return out


# A string equal to one of these is a status wherever it is used as a value.
STATUSES = _members(TaskStatus, ExecutionStatus, DeliveryStatus, FailurePolicy, StepAnswer)
# These are common words too ("error" is a JSON key everywhere): a reason only where it is used as
# one, i.e. next to something named ``reason``.
REASONS = {value: members for value, members in _members(Reason).items() if value not in STATUSES}
ATTRIBUTE_NAME_METHODS = frozenset({"get", "pop", "setdefault"})


class Violation(NamedTuple):
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def source_files() -> Iterator[tuple[str, str]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield path.relative_to(ROOT).as_posix(), path.read_text()


# ------------------------------------------------------------------------------------ sizes


def long_module(path: str, source: str) -> list[Violation]:
    n = len(source.splitlines())
    if n <= MAX_MODULE_LINES:
        return []
    return [Violation(path, 1, f"{n} lines (at most {MAX_MODULE_LINES}): split it by concern")]


def _says_why_it_is_one_piece(func: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str]) -> bool:
    """The comment block just above the first statement after the docstring starts with ONE_PIECE."""
    body = func.body
    has_docstring = (
        isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    )
    if has_docstring and len(body) == 1:
        return False
    first = body[1] if has_docstring else body[0]
    top = None
    for i in range(first.lineno - 2, -1, -1):  # 0-based index of the line above the statement
        text = lines[i].strip()
        if text.startswith("#"):
            top = text
        elif text:
            break
    return top is not None and top.startswith(ONE_PIECE)


def long_functions(path: str, source: str) -> list[Violation]:
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        n = (node.end_lineno or node.lineno) - node.lineno + 1
        if n > MAX_FUNCTION_LINES and not _says_why_it_is_one_piece(node, lines):
            found.append(
                Violation(
                    path,
                    node.lineno,
                    f"{node.name}() is {n} lines (at most {MAX_FUNCTION_LINES}): split it, or say why it "
                    f"must be one piece in a comment at its top starting {ONE_PIECE!r}",
                )
            )
    return found


# --------------------------------------------------------------------------------- statuses


def _name_of(node: ast.AST | None) -> str:
    """What an expression names: ``reason``, ``self.reason``, ``task["reason"]`` → "reason"."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        return str(node.slice.value)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return ""


def _has_other_words(collection: ast.Tuple | ast.List | ast.Set) -> bool:
    """A collection holding strings that are no status or reason is not a set of statuses
    (LocalStack's service states: ``("available", "running", …)``)."""
    words = [e.value for e in collection.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return any(w not in STATUSES and w not in REASONS for w in words)


def _names_an_attribute(name: str) -> bool:
    """A constant that names an item attribute, not a status: META's number sets of task ids are
    named after the status their ids are in (``COMPLETED_IDS = "completed"``)."""
    return name.endswith("_IDS")


class _StatusLiterals(ast.NodeVisitor):
    """Finds string constants used as values, with what they are the value of (for reasons)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.found: list[Violation] = []

    def _value(self, node: ast.AST | None, of: str = "") -> None:
        """``node`` is used as a value (of something named ``of``): check it and what it is made of."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            members = STATUSES.get(node.value) or (
                REASONS.get(node.value) if "reason" in of.lower() else None
            )
            if members:
                self.found.append(
                    Violation(self.path, node.lineno, f"{node.value!r}: use {' or '.join(members)}")
                )
        elif isinstance(node, ast.Tuple | ast.List | ast.Set) and not _has_other_words(node):
            for element in node.elts:
                self._value(element, of)
        elif isinstance(node, ast.IfExp):
            self._value(node.body, of)
            self._value(node.orelse, of)
        elif isinstance(node, ast.BoolOp):
            for value in node.values:
                self._value(value, of)

    def visit_Compare(self, node: ast.Compare) -> None:
        sides = [node.left, *node.comparators]
        names = " ".join(_name_of(side) for side in sides)
        for side in sides:
            self._value(side, names)
        self.generic_visit(node)

    def visit_Dict(self, node: ast.Dict) -> None:
        for key, value in zip(node.keys, node.values, strict=True):
            self._value(value, _name_of(key))
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        args = list(node.args)
        of = ""
        if isinstance(func, ast.Attribute) and func.attr in ATTRIBUTE_NAME_METHODS and args:
            of = _name_of(args.pop(0))  # the attribute's name, then its default
        for arg in args:
            self._value(arg.value if isinstance(arg, ast.Starred) else arg, of)
        for keyword in node.keywords:
            self._value(keyword.value, keyword.arg or "")
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        names = [_name_of(t) for t in node.targets]
        if not all(_names_an_attribute(n) for n in names):
            self._value(node.value, " ".join(names))
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if not _names_an_attribute(_name_of(node.target)):
            self._value(node.value, _name_of(node.target))
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._value(node.value, _name_of(node.target))
        self.generic_visit(node)

    def visit_Return(self, node: ast.Return) -> None:
        self._value(node.value)
        self.generic_visit(node)

    def visit_arguments(self, node: ast.arguments) -> None:
        positional = [*node.posonlyargs, *node.args]
        for arg, default in zip(
            positional[len(positional) - len(node.defaults) :], node.defaults, strict=True
        ):
            self._value(default, arg.arg)
        for arg, kw_default in zip(node.kwonlyargs, node.kw_defaults, strict=True):
            self._value(kw_default, arg.arg)
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if _name_of(node.value) == "Literal":  # a type spelling statuses out
            self._value(node.slice)
        self.generic_visit(node)

    def visit_MatchValue(self, node: ast.MatchValue) -> None:
        self._value(node.value)
        self.generic_visit(node)


def status_literals(path: str, source: str) -> list[Violation]:
    if path == ENUM_HOME:
        return []
    visitor = _StatusLiterals(path)
    visitor.visit(ast.parse(source))
    return sorted(set(visitor.found), key=lambda v: (v.line, v.message))


# ------------------------------------------------------------------------------------ the checks


def _report(found: list[Violation], what: str) -> str:
    by_file: dict[str, int] = {}
    for v in found:
        by_file[v.path] = by_file.get(v.path, 0) + 1
    summary = ", ".join(f"{path} ({n})" for path, n in by_file.items())
    return f"{len(found)} {what} in {summary}:\n" + "\n".join(map(str, found))


def test_no_module_is_over_500_lines():
    found = [v for path, source in source_files() for v in long_module(path, source)]
    assert not found, _report(found, "modules too long")


def test_no_function_is_over_60_lines_unless_it_says_why_it_is_one_piece():
    found = [v for path, source in source_files() for v in long_functions(path, source)]
    assert not found, _report(found, "functions too long")


def test_no_bare_status_literal_outside_the_enums():
    found = [v for path, source in source_files() for v in status_literals(path, source)]
    assert not found, _report(found, f"bare statuses (the enums are in {ENUM_HOME})")


# ------------------------------------------------------------------------- the checks, checked

SNIPPET = """
def f(task, meta, status="waiting"):
    if task["status"] == "completed":
        return {"status": "failed", "error": "boom"}
    if meta.get("completed") and meta.get("failurePolicy", "failFast") == x:
        shown = meta["running"]
    done = task["status"] in ("skipped", "cancelled")
    reason = "timeout" if late else "error"
    event(reason="upstream", message="error")
    log("error")
    states = ("available", "running")
    kind: Literal["running", "completed"] = "retry"
    match status:
        case "pending":
            pass
COMPLETED_IDS = "completed"
"""


def test_the_status_check_finds_each_use_and_leaves_names_alone():
    found = status_literals("x.py", SNIPPET)
    assert [(v.line, v.message.split(":")[0]) for v in found] == [
        (2, "'waiting'"),
        (3, "'completed'"),
        (4, "'failed'"),
        (5, "'failFast'"),
        (7, "'cancelled'"),
        (7, "'skipped'"),
        (8, "'error'"),
        (8, "'timeout'"),
        (9, "'upstream'"),
        (12, "'completed'"),
        (12, "'retry'"),
        (12, "'running'"),
        (14, "'pending'"),
    ]
    assert "use TaskStatus.COMPLETED or ExecutionStatus.COMPLETED" in found[1].message
    assert str(found[0]) == "x.py:2: 'waiting': use TaskStatus.WAITING"
    assert status_literals(ENUM_HOME, SNIPPET) == []


def _function(lines: int, top: str = "") -> str:
    body = "".join(f"    x{i} = {i}\n" for i in range(lines - 4))
    return f'def f(\n    a,\n):\n    """Doc."""\n{top}{body}'


def test_the_length_checks_find_a_long_function_and_module_unless_one_piece_is_said():
    assert long_functions("x.py", _function(60)) == []
    (found,) = long_functions("x.py", _function(61))
    assert (found.line, found.message.split(" (")[0]) == (1, "f() is 61 lines")
    assert long_functions("x.py", _function(61, "    # One piece: the steps share one transaction.\n")) == []
    assert long_functions("x.py", _function(61, "    # one piece, later\n"))
    assert long_module("x.py", "x = 1\n" * 500) == []
    assert long_module("x.py", "x = 1\n" * 501)[0].message.startswith("501 lines")
