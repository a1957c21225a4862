"""Pins the patch of dagcast/local/moto/patches/map_run_history.py
(``DistributedIterationComponent._map_run``): moto must still run a Distributed Map's items with a
fresh EventManager set on the environment it hands ``_map_run``, and leave them out of the parent's
history (else the model would count them twice)."""

from __future__ import annotations

import boto3
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.distributed_iteration_component import (
    DistributedIterationComponent,
)

from bench.transitions import echo_tasks, run_job, states_entered
from dagcast.local.moto.patches.map_run_history import map_run_history


def test_map_run_history_patch_is_installed(stack):
    assert hasattr(DistributedIterationComponent, "_dagcast_original_map_run"), (
        "keep_map_run_history not applied"
    )


def test_the_items_history_is_kept_and_only_there(services):
    arn = run_job(services, {"tasks": echo_tasks(2)})
    parent = boto3.client("stepfunctions").get_execution_history(executionArn=arn, maxResults=1000)["events"]
    assert "AwaitDependencies" not in states_entered(parent), (
        "moto now writes items into the parent's history"
    )
    assert sorted(states_entered(map_run_history(arn))) == sorted(
        ["AwaitDependencies", "Run", "Retry?", "TaskDone"] * 2
    )
