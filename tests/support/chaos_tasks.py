"""Faults of the task Lambda itself (issue 8): ``run_task`` crashes, times out, or runs twice.

Each wrapper takes the real handler (``stack.handler_override("run_task", w) as real`` yields it)
and returns a ``FaultyHandler`` to run in its place — the way AWS fails a Lambda:

``crashing(real, rate, rng, when=…)``
    The invoke fails with ``Runtime.ExitError`` (AWS's error for a runtime that died: killed, out
    of memory). ``before``: the handler never ran. ``during``: it dies at a random AWS call of its
    own (what it wrote before stays written). ``after``: it did all its work, then died on the
    way out — the answer is lost.
``timing_out(real, rate, rng, timeout_seconds=…, hang=…, zombie=…)``
    The invoke fails with ``Sandbox.Timedout`` / ``RequestId: … Error: Task timed out after 2.00
    seconds`` (AWS's) whenever the handler has not returned within ``timeout_seconds`` — the
    Lambda's own timeout, whatever the reason (a slow kind too). ``rate`` of the invocations
    hang on purpose: ``before`` the handler starts (a stuck cold start) or ``after`` it has done
    its work. AWS then stops the sandbox: with ``zombie=False`` the handler's thread dies at its
    next AWS call (and a hang-before handler never starts); with ``zombie=True`` it carries on
    (a hang-before one starts late) and overlaps the retry — the in-process Lambda cannot be
    killed, and an invocation that outlives its answer is also what an at-least-once duplicate
    looks like.
``twice(real, rate, rng, mode=…, answer=…)``
    The same event delivered twice: ``sequential`` (one after the other), ``concurrent`` (two
    threads at once) or ``interleaved`` (the duplicate pauses before a random AWS call of its own
    until the first invocation has returned, then goes on — e.g. it read the task, then the first
    finished the attempt). ``answer`` says whose answer Step Functions gets: ``second`` (the
    first answer was lost and the invoke retried) or ``first`` (the other run is a stray
    duplicate, which may still be running when the state machine moves on). ``die_at`` kills the
    duplicate at one of its AWS calls.

Faults are decided per invocation from (the rng's seed, task id, attempt, how many times that
attempt was invoked), not from call order, so a seed gives the same faults whatever the thread
timing. ``max_in_a_row`` (default: the ASL's Retry ``MaxAttempts`` of ``Run``): no fault is
injected into an attempt whose last that many invocations all failed (for whatever reason), so
that Step Functions' retries get through and a job's outcome does not depend on the dice; ``None`` lets every invocation fail (the task then fails through
Catch → ``record_failure``, unless its work was done). ``tasks`` limits the wrapper to those task
ids (the others run the real handler as is, with no timeout either).

A killed or hung thread is stopped through a botocore ``before-call`` hook on the Lambdas' clients
(``lambda_clients()``): threads the handler started itself (the release pool, the kind's thread)
are not stopped, only the handler's own thread — as if AWS had killed it a moment later.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from chalicelib.config import ASL_PATH
from chalicelib.kinds import TaskFailed, register_function
from chalicelib.persistence.sfn import StepFunctions
from tests.support.chaos import register_settled

Handler = Callable[[dict[str, Any], Any], Any]
When = Literal["before", "during", "after", "any"]  # crashing
Hang = Literal["before", "after", "any"]  # timing_out
Mode = Literal["sequential", "concurrent", "interleaved"]  # twice
Answer = Literal["first", "second"]  # twice


def _run_lambda_retries() -> int:
    """Run's Retry MaxAttempts in the ASL for a crashed function (``States.TaskFailed``; throttling
    has a retrier of its own): how many times Step Functions re-invokes a failed run."""
    asl = json.loads(ASL_PATH.read_text())
    run = asl["States"]["Tasks"]["ItemProcessor"]["States"]["Run"]
    [crash] = [r for r in run["Retry"] if "States.TaskFailed" in r["ErrorEquals"]]
    return int(crash["MaxAttempts"])


RUN_LAMBDA_RETRIES = _run_lambda_retries()


# AWS's error types, so the state machine sees the names it would see in AWS (InProcessInvoker
# reports a handler exception as an error named after its class).
class RuntimeExitError(Exception):
    """A Lambda runtime that died (killed, out of memory)."""


RuntimeExitError.__name__ = RuntimeExitError.__qualname__ = "Runtime.ExitError"


class SandboxTimedout(Exception):
    """A Lambda that did not return within its timeout."""


SandboxTimedout.__name__ = SandboxTimedout.__qualname__ = "Sandbox.Timedout"


class _Killed(BaseException):
    """Unwinds a handler thread that AWS would have stopped: nothing it does afterwards reaches AWS
    (a BaseException, so that no ``except Exception`` in the handler can swallow it)."""


# ---------------------------------------------------------------- stopping a thread at an AWS call


@dataclass
class _Plan:
    """What happens to one handler thread at its AWS calls."""

    kill_at: int | None = None  # die before this call (1-based)
    pause_at: int | None = None  # before this call, wait for ``resume``
    resume: threading.Event | None = None
    dead: threading.Event = field(default_factory=threading.Event)  # set: die at the next call
    calls: int = 0


_plans: dict[int, _Plan] = {}  # thread ident → plan


def _before_call(**_: Any) -> None:
    plan = _plans.get(threading.get_ident())
    if plan is None:
        return
    plan.calls += 1
    if plan.pause_at == plan.calls and plan.resume is not None:
        plan.resume.wait(120)
    if plan.dead.is_set() or (plan.kill_at is not None and plan.calls >= plan.kill_at):
        plan.dead.set()
        raise _Killed


@contextlib.contextmanager
def _planned(plan: _Plan) -> Iterator[_Plan]:
    ident = threading.get_ident()
    _plans[ident] = plan
    try:
        yield plan
    finally:
        _plans.pop(ident, None)


def lambda_clients(services: Any = None) -> list[Any]:
    """The AWS clients the in-process Lambdas use (app.services(), looked up now); with ``services``
    (a test's own), its DynamoDB client too (another object if the stack's threads built
    app.services() again while the test's fixture did)."""
    import app

    s = app.services()
    state_machine = s.orchestrator._state_machine
    assert isinstance(state_machine, StepFunctions)
    return [s.store._db, state_machine._sfn, *([services.store._db] if services is not None else [])]


def _watch(clients: Sequence[Any]) -> None:
    for client in clients:  # idempotent: one registration per client (unique_id)
        register_settled(client, "before-call", _before_call, unique_id="dagcast-chaos-tasks")


def _request_id(context: Any) -> str:
    return str(getattr(context, "aws_request_id", "") or uuid.uuid4())


def _exit_error(context: Any) -> RuntimeExitError:
    return RuntimeExitError(
        f"RequestId: {_request_id(context)} Error: Runtime exited with error: signal: killed"
    )


def _timed_out(context: Any, seconds: float) -> SandboxTimedout:
    return SandboxTimedout(
        f"RequestId: {_request_id(context)} Error: Task timed out after {seconds:.2f} seconds"
    )


# ---------------------------------------------------------------- the wrappers


@dataclass
class Invocation:
    execution_id: str
    task_id: int | None
    attempt: int | None
    n: int  # the n-th invocation of this (execution, task, attempt)
    fault: str | None = None  # what was done to it (None: it ran normally)
    seconds: float | None = None  # how long the invoke took (None: still going)


class FaultyHandler:
    """A Lambda handler that runs ``real`` and fails some invocations; see the module docstring.

    ``log`` lists every invocation; ``faults()`` counts them by fault; ``join()`` waits for threads
    still running (zombies, stray duplicates) so that a test can check the state they leave."""

    def __init__(
        self,
        real: Handler,
        rate: float,
        rng: random.Random,
        max_in_a_row: int | None,
        tasks: Collection[int] | None,
        clients: Sequence[Any] | None,
    ) -> None:
        self.real = real
        self.rate = rate
        self.seed = rng.getrandbits(64)
        self.max_in_a_row = max_in_a_row
        self.tasks = None if tasks is None else set(tasks)
        self._clients = clients
        self.log: list[Invocation] = []
        self._lock = threading.Lock()
        self._seen: Counter[tuple[str, int | None, int | None]] = Counter()
        self._in_a_row: Counter[tuple[str, int | None, int | None]] = Counter()
        self._threads: list[threading.Thread] = []

    def faults(self) -> Counter[str]:
        with self._lock:
            return Counter(i.fault for i in self.log if i.fault is not None)

    def join(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        for t in list(self._threads):
            t.join(max(0.0, deadline - time.monotonic()))

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        _watch(self._clients if self._clients is not None else lambda_clients())
        key = (str(event.get("executionId")), _int(event.get("taskId")), _int(event.get("attempt")))
        if self.tasks is not None and key[1] not in self.tasks:
            return self.real(event, context)  # not one of ours: the plain Lambda
        with self._lock:
            self._seen[key] += 1
            n = self._seen[key]
        # One rng per invocation, from its identity: the same seed gives the same faults whatever
        # order the threads come in.
        rng = random.Random(f"{self.seed}:{key[1]}:{key[2]}:{n}")
        faulty = rng.random() < self.rate
        with self._lock:
            if faulty and self.max_in_a_row is not None and self._in_a_row[key] >= self.max_in_a_row:
                faulty = False  # the last invocations of this attempt all failed: let this one be
            record = Invocation(key[0], key[1], key[2], n)
            self.log.append(record)
        started = time.monotonic()
        failed = True
        try:
            result = self._invoke(event, context, rng, faulty, record)
            failed = False
            return result
        finally:
            record.seconds = round(time.monotonic() - started, 3)
            with self._lock:  # failed invocations in a row, whatever failed them (a slow run too)
                self._in_a_row[key] = self._in_a_row[key] + 1 if failed else 0

    def _invoke(
        self, event: dict[str, Any], context: Any, rng: random.Random, faulty: bool, record: Invocation
    ) -> Any:
        raise NotImplementedError

    def _note(self, record: Invocation, fault: str) -> None:
        with self._lock:
            record.fault = fault

    def _thread(self, target: Callable[[], None], name: str) -> threading.Thread:
        t = threading.Thread(target=target, name=name, daemon=True)
        with self._lock:
            self._threads.append(t)
        t.start()
        return t


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


class _Crashing(FaultyHandler):
    def __init__(self, *args: Any, when: When) -> None:
        super().__init__(*args)
        self.when = when

    def _invoke(
        self, event: dict[str, Any], context: Any, rng: random.Random, faulty: bool, record: Invocation
    ) -> Any:
        if not faulty:
            return self.real(event, context)
        when = rng.choice(["before", "during", "after"]) if self.when == "any" else self.when
        if when == "before":
            self._note(record, "crash before")
            raise _exit_error(context)
        if when == "after":
            self.real(event, context)
            self._note(record, "crash after")
            raise _exit_error(context)
        # within the calls a run makes: ~10 on the common path since issue 20 (it was ~25, and 20 here)
        plan = _Plan(kill_at=rng.randint(1, 10))
        try:
            with _planned(plan):
                result = self.real(event, context)
        except _Killed:
            self._note(record, f"crash at call {plan.kill_at}")
            raise _exit_error(context) from None
        return result  # it made fewer AWS calls than that: it got through


class _TimingOut(FaultyHandler):
    def __init__(
        self,
        *args: Any,
        timeout_seconds: float,
        hang: Hang,
        zombie: bool,
    ) -> None:
        super().__init__(*args)
        self.timeout_seconds = timeout_seconds
        self.hang = hang
        self.zombie = zombie

    def _invoke(
        self, event: dict[str, Any], context: Any, rng: random.Random, faulty: bool, record: Invocation
    ) -> Any:
        hang = (rng.choice(["before", "after"]) if self.hang == "any" else self.hang) if faulty else None
        late = rng.uniform(0, 1.5)  # how long after the timeout a hung-before zombie starts
        plan = _Plan()
        done = threading.Event()
        outcome: dict[str, Any] = {}

        def work() -> None:
            with _planned(plan):
                try:
                    if hang == "before":
                        time.sleep(self.timeout_seconds + late)
                        if not self.zombie:
                            return  # stopped while it hung: it never ran
                    outcome["result"] = self.real(event, context)
                    if hang == "after":
                        time.sleep(self.timeout_seconds + 1)  # stuck on the way out
                except _Killed:
                    return
                except Exception as exc:
                    outcome["error"] = exc
                finally:
                    done.set()

        self._thread(work, f"lambda-{record.task_id}-{record.attempt}-{record.n}")
        if hang is not None:
            time.sleep(self.timeout_seconds)  # a hung invocation never answers
        elif done.wait(self.timeout_seconds):
            if "error" in outcome:
                raise outcome["error"]
            return outcome["result"]
        self._note(record, f"timeout ({hang or 'slow'})")
        if not self.zombie:
            plan.dead.set()  # AWS stops the sandbox: the thread dies at its next AWS call
        raise _timed_out(context, self.timeout_seconds)


class _Twice(FaultyHandler):
    def __init__(
        self,
        *args: Any,
        mode: Mode,
        answer: Answer,
        pause_at: int | None,
        die_at: int | None,
    ) -> None:
        super().__init__(*args)
        self.mode = mode
        self.answer = answer
        self.pause_at = pause_at
        self.die_at = die_at

    def _invoke(
        self, event: dict[str, Any], context: Any, rng: random.Random, faulty: bool, record: Invocation
    ) -> Any:
        if not faulty:
            return self.real(event, context)
        events = [copy.deepcopy(event), copy.deepcopy(event)]
        outcomes: list[dict[str, Any]] = [{}, {}]
        done = [threading.Event(), threading.Event()]
        plans = [_Plan(), _Plan(kill_at=self.die_at)]
        if self.mode == "interleaved":
            plans[1] = _Plan(
                pause_at=self.pause_at or rng.randint(1, 12), resume=done[0], kill_at=self.die_at
            )
        self._note(record, f"twice ({self.mode}, answer {self.answer})")

        def run(i: int) -> None:
            with _planned(plans[i]):
                try:
                    outcomes[i]["result"] = self.real(events[i], context)
                except _Killed:
                    outcomes[i]["error"] = _exit_error(context)
                except Exception as exc:
                    outcomes[i]["error"] = exc
                finally:
                    done[i].set()

        if self.mode == "sequential":
            run(0)
            run(1)
        else:
            for i in (0, 1):
                self._thread(
                    functools.partial(run, i), f"lambda-{record.task_id}-{record.attempt}-{record.n}-{i}"
                )
        chosen = 0 if self.answer == "first" else 1
        if not done[chosen].wait(120):
            raise _timed_out(context, 120)
        if "error" in outcomes[chosen]:
            raise outcomes[chosen]["error"]
        return outcomes[chosen]["result"]


def crashing(
    real: Handler,
    rate: float,
    rng: random.Random,
    *,
    when: When = "before",
    max_in_a_row: int | None = RUN_LAMBDA_RETRIES,
    tasks: Collection[int] | None = None,
    clients: Sequence[Any] | None = None,
) -> FaultyHandler:
    """``rate`` of the invocations fail with ``Runtime.ExitError``: ``before`` the handler runs,
    ``during`` it (at a random one of its first 10 AWS calls), ``after`` it returned, or ``any``."""
    return _Crashing(real, rate, rng, max_in_a_row, tasks, clients, when=when)


def timing_out(
    real: Handler,
    rate: float,
    rng: random.Random,
    *,
    timeout_seconds: float = 2.0,
    hang: Hang = "any",
    zombie: bool = False,
    max_in_a_row: int | None = RUN_LAMBDA_RETRIES,
    tasks: Collection[int] | None = None,
    clients: Sequence[Any] | None = None,
) -> FaultyHandler:
    """A Lambda with a ``timeout_seconds`` timeout (``Sandbox.Timedout``); ``rate`` of the
    invocations hang ``before`` the handler starts or ``after`` its work (or ``any``)."""
    return _TimingOut(
        real,
        rate,
        rng,
        max_in_a_row,
        tasks,
        clients,
        timeout_seconds=timeout_seconds,
        hang=hang,
        zombie=zombie,
    )


def twice(
    real: Handler,
    rate: float,
    rng: random.Random,
    *,
    mode: Mode = "sequential",
    answer: Answer = "second",
    pause_at: int | None = None,
    die_at: int | None = None,
    tasks: Collection[int] | None = None,
    clients: Sequence[Any] | None = None,
) -> FaultyHandler:
    """``rate`` of the invocations are delivered twice; Step Functions gets one ``answer``.
    ``interleaved``: the duplicate pauses before its ``pause_at``-th AWS call (default: random,
    1 – 12) until the first invocation has returned. ``die_at``: the duplicate dies before that
    AWS call of its own (``Runtime.ExitError``)."""
    return _Twice(
        real, rate, rng, None, tasks, clients, mode=mode, answer=answer, pause_at=pause_at, die_at=die_at
    )


# ---------------------------------------------------------------- python functions for chaos jobs

_calls: Counter[str] = Counter()
_calls_lock = threading.Lock()


def _call_number(key: str) -> int:
    with _calls_lock:
        _calls[key] += 1
        return _calls[key]


@register_function("chaos.fails_first")
def fails_first(inputs: dict[int, Any], key: str) -> str:
    """Fails the first time it is called for ``key``, then succeeds (a flaky upstream)."""
    n = _call_number(key)
    if n == 1:
        raise TaskFailed(f"{key}: call 1 failed")
    return f"{key} ok on call {n}"


@register_function("chaos.stamp")
def stamp(inputs: dict[int, Any], key: str, chars: int = 150_000) -> str:
    """A large result that differs on every call (like a model's answer): ``chars`` characters of
    the call number on the first call, a third as many of the next digit on the second, …"""
    n = _call_number(key)
    return str(n % 10) * max(1, chars // n)
