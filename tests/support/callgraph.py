"""The AWS calls reachable from a Lambda handler, read from the source (no import, no client).

A small call graph over the project's own code, resolved by the types the code declares (mypy is
strict, so every parameter and ``self`` attribute has one): ``self.x.m()`` goes to the method ``m``
of the class ``self.x`` is annotated with, a Protocol to every class that has all its methods (the
adapters satisfy the ports structurally), a ``Callable`` field of a dataclass to every function
stored in it where the class is built (the task kinds' registry). A method or function that is
only *referenced* (passed as a callback, handed to a thread pool) counts as called.

The AWS calls are the leaves: a call on anything typed as a boto3 client (``mypy_boto3_<service>``
annotations, or ``boto3.client("<service>")``), whose botocore operation names the IAM action,
the items a DynamoDB transaction is built of (``TRANSACTION_ITEMS``), and powertools' parameter
reads. Over-approximates (every branch is taken) and never guesses: an
attribute of a client that is no operation fails, so does a leaf nothing reaches (see
``unreached_leaves``) — a resolution gap shows up as a failing test, not as a missing grant.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from botocore import xform_name
from botocore.session import get_session

ROOT = Path(__file__).resolve().parents[2]

# boto3 service name → IAM prefix (where they differ), and botocore operation → IAM action name
IAM_PREFIX = {"stepfunctions": "states"}
IAM_ACTION = {("lambda", "Invoke"): "InvokeFunction"}
# a client's attributes that are not AWS operations
CLIENT_HELPERS = {"meta", "exceptions", "close", "can_paginate"}
# powertools' parameter utilities → the action each read needs
POWERTOOLS = "aws_lambda_powertools.utilities.parameters"
POWERTOOLS_READS = {"get_secret": "secretsmanager:GetSecretValue", "get_parameter": "ssm:GetParameter"}


# The item actions of a DynamoDB transaction: IAM checks each of them as its own action
# (PutItem, …, ConditionCheckItem) besides TransactWriteItems ("Using IAM with DynamoDB
# transactions"). A dict literal keyed so is a transaction's item: its action is a leaf too.
TRANSACTION_ITEMS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}

# marks an action called on a table's index (a query with IndexName=): its resource is the index
INDEX = " on an index"


def _names_index(call: ast.Call) -> bool:
    return any(k.arg == "IndexName" for k in call.keywords)


@dataclass(frozen=True)
class Client:
    service: str  # boto3's name: dynamodb, stepfunctions, kms, events, lambda, …


@dataclass(frozen=True)
class Module:
    name: str  # dotted; an external module (boto3, powertools) is never indexed


@dataclass(frozen=True)
class Instance:
    cls: str  # qualified "module:Class"


@dataclass(frozen=True)
class ClassRef:
    cls: str


@dataclass(frozen=True)
class Func:
    qual: str  # "module:function" or "module:Class.method"


@dataclass(frozen=True)
class Returns:
    """A value that, called, gives what ``target`` returns (``BuiltOnce(build_services)``)."""

    target: str


Type = Client | Module | Instance | ClassRef | Func | Returns


@dataclass
class ClassInfo:
    qual: str
    node: ast.ClassDef
    module: str
    bases: list[str] = field(default_factory=list)
    protocol: bool = False
    attrs: dict[str, ast.expr] = field(default_factory=dict)  # attribute → its annotation
    fields: list[str] = field(default_factory=list)  # dataclass fields, in order
    methods: dict[str, str] = field(default_factory=dict)


@dataclass
class ModInfo:
    name: str
    tree: ast.Module
    names: dict[str, str] = field(default_factory=dict)  # local name → "mod" or "mod:Name"
    defs: dict[str, str] = field(default_factory=dict)  # module-level def/class → qual
    assigned: dict[str, ast.expr] = field(default_factory=dict)  # module-level name = value
    annotated: dict[str, ast.expr] = field(default_factory=dict)  # module-level name: annotation


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    base = parts[: len(parts) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


class CallGraph:
    """The project's functions, and what each reaches; ``actions(entry)`` the IAM actions."""

    def __init__(self, files: list[Path]) -> None:
        self.mods: dict[str, ModInfo] = {}
        self.classes: dict[str, ClassInfo] = {}
        self.funcs: dict[str, tuple[ast.AST, str, str | None]] = {}  # qual → (node, module, class)
        self._operations: dict[str, dict[str, str]] = {}
        for path in files:
            self._index(_module_name(path), path.name == "__init__.py", ast.parse(path.read_text()))
        for cls in self.classes.values():
            self._class_attrs(cls)
        self._stored: dict[tuple[str, str], list[tuple[str, ast.expr]]] = {}
        self._stored = self._callable_fields()
        self._edges: dict[str, tuple[set[str], set[str]]] = {}

    # ---------------------------------------------------------------------------------- index

    def _index(self, name: str, package: bool, tree: ast.Module) -> None:
        mod = self.mods[name] = ModInfo(name, tree)
        for node in ast.walk(tree):  # imports anywhere: in functions and under TYPE_CHECKING too
            if isinstance(node, ast.Import):
                for a in node.names:
                    mod.names[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom):
                source = _imported(name, package, node)
                for a in node.names:
                    mod.names[a.asname or a.name] = f"{source}:{a.name}"
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                mod.defs[node.name] = f"{name}:{node.name}"
                self.funcs[f"{name}:{node.name}"] = (node, name, None)
            elif isinstance(node, ast.ClassDef):
                qual = f"{name}:{node.name}"
                mod.defs[node.name] = qual
                self.classes[qual] = ClassInfo(qual, node, name)
                for item in node.body:
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                        self.classes[qual].methods[item.name] = f"{qual}.{item.name}"
                        self.funcs[f"{qual}.{item.name}"] = (item, name, qual)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        mod.assigned[target.id] = node.value
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                mod.annotated[node.target.id] = node.annotation
                if node.value is not None:
                    mod.assigned[node.target.id] = node.value

    def _class_attrs(self, cls: ClassInfo) -> None:
        for base in cls.node.bases:
            name = ast.unparse(base)
            if name.split("[")[0] in ("Protocol", "typing.Protocol"):
                cls.protocol = True
            for t in self._resolve_name(cls.module, name.split("[")[0]):
                if isinstance(t, ClassRef):
                    cls.bases.append(t.cls)
        for item in cls.node.body:
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                cls.attrs[item.target.id] = item.annotation
                cls.fields.append(item.target.id)
        init = cls.methods.get("__init__")
        if init:
            fn = self.funcs[init][0]
            assert isinstance(fn, ast.FunctionDef)
            params = {a.arg: a.annotation for a in fn.args.args + fn.args.kwonlyargs if a.annotation}
            for node in ast.walk(fn):
                targets = node.targets if isinstance(node, ast.Assign) else []
                if isinstance(node, ast.AnnAssign):
                    targets = [node.target]
                for target in targets:
                    if isinstance(target, ast.Attribute) and ast.unparse(target.value) == "self":
                        if isinstance(node, ast.AnnAssign):
                            cls.attrs[target.attr] = node.annotation
                        else:
                            assert isinstance(node, ast.Assign)
                            self._attr_from_value(cls, target.attr, node.value, params)

    def _attr_from_value(
        self, cls: ClassInfo, attr: str, value: ast.expr, params: dict[str, ast.expr]
    ) -> None:
        """``self.attr = value`` in __init__: a parameter's annotation, or the value itself."""
        if isinstance(value, ast.IfExp):  # `eventbridge if bus else None`
            value = value.body
        if isinstance(value, ast.BoolOp):  # `redactor or Redactor()`
            value = value.values[0]
        if isinstance(value, ast.Name) and value.id in params:
            cls.attrs.setdefault(attr, params[value.id])
        else:
            cls.attrs.setdefault(attr, value)

    def _callable_fields(self) -> dict[tuple[str, str], list[tuple[str, ast.expr]]]:
        """(class, field) → the expressions stored in each field where the class is built, with
        the module they are in."""
        stored: dict[tuple[str, str], list[tuple[str, ast.expr]]] = {}
        for mod in self.mods.values():
            for node in ast.walk(mod.tree):
                if not isinstance(node, ast.Call):
                    continue
                for t in self.type_of(node.func, mod.name, None, {}):
                    if isinstance(t, ClassRef) and self.classes[t.cls].fields:
                        order = self.classes[t.cls].fields
                        pairs = list(zip(order, node.args, strict=False))
                        pairs += [(k.arg, k.value) for k in node.keywords if k.arg]
                        for name, value in pairs:
                            stored.setdefault((t.cls, name), []).append((mod.name, value))
        return stored

    # ---------------------------------------------------------------------------------- types

    def _resolve_name(self, module: str, name: str) -> set[Type]:
        mod = self.mods.get(module)
        if mod is None:
            return set()
        if name in mod.defs:
            qual = mod.defs[name]
            return {ClassRef(qual)} if qual in self.classes else {Func(qual)}
        if name in mod.names:
            return self._resolve_target(mod.names[name])
        if name in mod.assigned:
            value = mod.assigned[name]
            if isinstance(value, ast.Call) and ast.unparse(value.func) == "BuiltOnce" and value.args:
                return {
                    Returns(t.qual)
                    for t in self.type_of(value.args[0], module, None, {})
                    if isinstance(t, Func)
                }
        return set()

    def _resolve_target(self, target: str) -> set[Type]:
        """``mod`` or ``mod:Name`` → what it is: a module, one of its defs, or a submodule."""
        source, _, name = target.partition(":")
        if not name:
            return {Module(source)}
        if source.startswith("mypy_boto3_"):
            return {ClassRef(f"client:{source.removeprefix('mypy_boto3_').split('.')[0]}")}
        if f"{source}.{name}" in self.mods or f"{source}.{name}" == POWERTOOLS:
            return {Module(f"{source}.{name}")}
        if source in self.mods:
            return self._resolve_name(source, name)
        return set()

    def annotation(self, ann: ast.expr | None, module: str) -> set[Type]:
        """The instances an annotation admits (unions and Optional split, containers dropped)."""
        if ann is None:
            return set()
        if isinstance(ann, ast.Constant) and isinstance(ann.value, str):
            if not ann.value.strip():  # an attribute set to "" in __init__, not a quoted annotation
                return set()
            return self.annotation(ast.parse(ann.value, mode="eval").body, module)
        if isinstance(ann, ast.BinOp) and isinstance(ann.op, ast.BitOr):
            return self.annotation(ann.left, module) | self.annotation(ann.right, module)
        if isinstance(ann, ast.Subscript):
            outer = ast.unparse(ann.value)
            if outer in ("Optional", "typing.Optional"):
                return self.annotation(ann.slice, module)
            return set()
        out: set[Type] = set()
        for t in self.type_of(ann, module, None, {}):
            if isinstance(t, ClassRef):
                out.add(
                    Client(t.cls.removeprefix("client:")) if t.cls.startswith("client:") else Instance(t.cls)
                )
        return out

    def _mro(self, qual: str) -> Iterator[ClassInfo]:
        todo, seen = [qual], set()
        while todo:
            q = todo.pop(0)
            if q in self.classes and q not in seen:
                seen.add(q)
                yield self.classes[q]
                todo += self.classes[q].bases

    def implementations(self, qual: str) -> list[str]:
        """A class itself; for a Protocol, every class that has each of its methods."""
        cls = self.classes[qual]
        if not cls.protocol:
            return [qual]
        wanted = {m for c in self._mro(qual) for m in c.methods}
        return [
            q
            for q, c in self.classes.items()
            if not c.protocol and wanted <= {m for k in self._mro(q) for m in (*k.methods, *k.attrs)}
        ]

    def _member(self, t: Type, attr: str) -> set[Type]:
        if isinstance(t, Module):
            if t.name == POWERTOOLS:
                assert attr in POWERTOOLS_READS, (
                    f"powertools parameters.{attr}: add its action to POWERTOOLS_READS"
                )
                return {Func(f"{POWERTOOLS}:{attr}")}
            return self._resolve_target(f"{t.name}:{attr}")
        if isinstance(t, Instance | ClassRef):
            out: set[Type] = set()
            for impl in self.implementations(t.cls):
                for cls in self._mro(impl):
                    if attr in cls.methods:
                        out.add(Func(cls.methods[attr]))
                        out |= self._property_type(cls.methods[attr])
                        break
                    if attr in cls.attrs:
                        out |= self._attr_type(cls, attr)
                        break
            return out
        return set()

    def _property_type(self, qual: str) -> set[Type]:
        """What a ``@property`` gives (its return annotation); nothing for a plain method, which is
        only called, never read as a value."""
        fn, module, _ = self.funcs[qual]
        assert isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
        if not any(ast.unparse(d) == "property" for d in fn.decorator_list):
            return set()
        return self.annotation(fn.returns, module)

    def _attr_type(self, cls: ClassInfo, attr: str) -> set[Type]:
        value = cls.attrs[attr]
        if attr in cls.fields or cls.methods.get("__init__") is None or self._is_annotation(value):
            found = self.annotation(value, cls.module)
            if (cls.qual, attr) in self._stored:
                found.add(Returns(f"field:{cls.qual}.{attr}"))
            return found
        init = cls.methods["__init__"]
        return {r for r in self.type_of(value, cls.module, init, {}) if not isinstance(r, Func)}

    @staticmethod
    def _is_annotation(node: ast.expr) -> bool:
        return isinstance(node, ast.Name | ast.Attribute | ast.Subscript | ast.BinOp | ast.Constant)

    def type_of(
        self, node: ast.expr, module: str, func: str | None, local: dict[str, set[Type]]
    ) -> set[Type]:
        if isinstance(node, ast.Name):
            if node.id in local:
                return local[node.id]
            return self._resolve_name(module, node.id)
        if isinstance(node, ast.Attribute):
            return set().union(
                *(self._member(t, node.attr) for t in self.type_of(node.value, module, func, local))
            )
        if isinstance(node, ast.Call):
            return self._call_result(node, module, func, local)
        if isinstance(node, ast.Subscript):  # KINDS[name]
            return self._item_of(node.value, module)
        return set()

    def _call_result(
        self, node: ast.Call, module: str, func: str | None, local: dict[str, set[Type]]
    ) -> set[Type]:
        if ast.unparse(node.func) == "boto3.client" or (
            isinstance(node.func, ast.Attribute) and node.func.attr == "client" and node.args
        ):
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                return {Client(arg.value)}
        if isinstance(node.func, ast.Attribute) and node.func.attr == "get":  # KINDS.get(name)
            return self._item_of(node.func.value, module)
        out: set[Type] = set()
        for t in self.type_of(node.func, module, func, local):
            if isinstance(t, ClassRef):
                out.add(Instance(t.cls))
            elif isinstance(t, Func) and t.qual in self.funcs:
                fn = self.funcs[t.qual][0]
                assert isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
                out |= self.annotation(fn.returns, self.funcs[t.qual][1])
            elif isinstance(t, Returns) and t.target in self.funcs:
                fn = self.funcs[t.target][0]
                assert isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
                out |= self.annotation(fn.returns, self.funcs[t.target][1])
        return out

    def _item_of(self, node: ast.expr, module: str) -> set[Type]:
        """The values of a module-level ``dict[K, V]``: instances of V."""
        if isinstance(node, ast.Name) and node.id in self.mods[module].annotated:
            ann = self.mods[module].annotated[node.id]
            if isinstance(ann, ast.Subscript) and isinstance(ann.slice, ast.Tuple):
                return self.annotation(ann.slice.elts[-1], module)
        if isinstance(node, ast.Name) and node.id in self.mods[module].names:  # imported registry
            source, _, name = self.mods[module].names[node.id].partition(":")
            if source in self.mods:
                return self._item_of(ast.Name(name), source)
        return set()

    # ---------------------------------------------------------------------------------- edges

    def _locals(self, qual: str) -> dict[str, set[Type]]:
        node, module, cls = self.funcs[qual]
        assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        local: dict[str, set[Type]] = {}
        args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
        for i, a in enumerate(args):
            if i == 0 and cls is not None and a.arg in ("self", "cls"):
                local[a.arg] = {Instance(cls)}
            elif a.annotation is not None:
                local[a.arg] = self.annotation(a.annotation, module)
        for _ in range(2):  # an assignment may use a name assigned further down the walk
            for n in ast.walk(node):
                pairs: list[tuple[ast.expr, ast.expr]] = []
                if isinstance(n, ast.Assign):
                    pairs = [(t, n.value) for t in n.targets]
                elif isinstance(n, ast.AnnAssign) and n.value is not None:
                    pairs = [(n.target, n.value)]
                elif isinstance(n, ast.withitem) and n.optional_vars is not None:
                    pairs = [(n.optional_vars, n.context_expr)]
                elif isinstance(n, ast.NamedExpr):
                    pairs = [(n.target, n.value)]
                for target, value in pairs:
                    if isinstance(target, ast.Name):
                        found = self.type_of(value, module, qual, local)
                        if found:
                            local[target.id] = local.get(target.id, set()) | found
        return local

    def _references(
        self, node: ast.AST, module: str, qual: str | None, local: dict[str, set[Type]]
    ) -> tuple[set[str], set[str]]:
        """The project functions ``node`` calls or references, and the AWS actions it calls."""
        calls: set[str] = set()
        actions: set[str] = set()
        calls_in = [c for c in ast.walk(node) if isinstance(c, ast.Call)]
        for n in ast.walk(node):
            if isinstance(n, ast.Dict):
                keys = {k.value for k in n.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
                actions |= {TRANSACTION_ITEMS[k] for k in keys & TRANSACTION_ITEMS.keys()}
            if not isinstance(n, ast.Name | ast.Attribute) or not isinstance(n.ctx, ast.Load):
                continue
            if isinstance(n, ast.Attribute):
                for owner in self.type_of(n.value, module, qual, local):
                    if isinstance(owner, Client):
                        action = self._action(owner.service, n.attr)
                        if action:
                            actions.add(action)
                            if any(id(n) == id(c.func) and _names_index(c) for c in calls_in):
                                actions.add(action + INDEX)
            for t in self.type_of(n, module, qual, local):
                if isinstance(t, Func):
                    if t.qual.startswith(POWERTOOLS + ":"):
                        actions.add(POWERTOOLS_READS[t.qual.partition(":")[2]])
                    elif t.qual in self.funcs:
                        calls.add(t.qual)
                elif isinstance(t, ClassRef) and t.cls in self.classes:
                    calls |= {
                        m for k in ("__init__", "__post_init__") if (m := self.classes[t.cls].methods.get(k))
                    }
                elif isinstance(t, Returns) and t.target in self.funcs:  # services(): builds them
                    calls.add(t.target)
                elif isinstance(t, Returns) and t.target.startswith("field:"):
                    cls, _, name = t.target.removeprefix("field:").rpartition(".")
                    for where, value in self._stored.get((cls, name), []):
                        more_calls, more_actions = self._references(value, where, None, {})
                        calls |= more_calls
                        actions |= more_actions
        return calls, actions

    def _action(self, service: str, attr: str) -> str | None:
        if attr in CLIENT_HELPERS:
            return None
        if service not in self._operations:  # botocore's model, read from disk: no client
            model = get_session().get_service_model(service)
            self._operations[service] = {xform_name(op): op for op in model.operation_names}
        op = self._operations[service].get(attr)
        assert op is not None, (
            f"{attr} is no {service} operation: a helper of the client? add it to CLIENT_HELPERS"
        )
        return f"{IAM_PREFIX.get(service, service)}:{IAM_ACTION.get((service, op), op)}"

    def edges(self, qual: str) -> tuple[set[str], set[str]]:
        """What ``qual`` calls (or hands on) of the project's functions, and its own AWS actions."""
        if qual not in self._edges:
            node, module, _ = self.funcs[qual]
            self._edges[qual] = self._references(node, module, qual, self._locals(qual))
        return self._edges[qual]

    def reach(self, entries: list[str], prune: set[str] = frozenset()) -> set[str]:  # type: ignore[assignment]
        """Every function reachable from ``entries``, not entering those in ``prune``."""
        seen: set[str] = set()
        todo = [e for e in entries if e not in prune]
        while todo:
            qual = todo.pop()
            if qual not in seen:
                seen.add(qual)
                todo += sorted(self.edges(qual)[0] - prune - seen)
        return seen

    def actions(self, entries: list[str], prune: set[str] = frozenset()) -> dict[str, set[str]]:  # type: ignore[assignment]
        """IAM action → the functions (reachable from ``entries``) that call it."""
        out: dict[str, set[str]] = {}
        for qual in self.reach(entries, prune):
            for action in self.edges(qual)[1]:
                out.setdefault(action, set()).add(qual)
        return out

    def leaves(self) -> dict[str, set[str]]:
        """Every function of the project that calls AWS itself → its actions."""
        return {q: a for q in self.funcs if (a := self.edges(q)[1])}
