"""Task builders shared by the functional and e2e tests (one place for the job format)."""

from __future__ import annotations

from typing import Any


def task(tid: int, action: str, params: dict[str, Any], deps: list[int] | None = None) -> dict[str, Any]:
    return {
        "id": tid,
        "description": f"{action} {tid}",
        "action": action,
        "params": params,
        "dependencies": deps or [],
    }


def sleep(tid: int, seconds: float = 0, deps: list[int] | None = None) -> dict[str, Any]:
    return task(tid, "sleep", {"seconds": seconds}, deps)


def echo(tid: int, text: str, deps: list[int] | None = None) -> dict[str, Any]:
    return task(tid, "echo", {"text": text}, deps)


def fail(tid: int, message: str, deps: list[int] | None = None) -> dict[str, Any]:
    return task(tid, "fail", {"message": message}, deps)


def approval(
    tid: int, prompt: str, deps: list[int] | None = None, timeout_seconds: int = 600
) -> dict[str, Any]:
    return task(tid, "approval", {"prompt": prompt, "timeoutSeconds": timeout_seconds}, deps)
