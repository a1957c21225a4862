"""Pins the patch of dagcast/local/moto/patches/state_machine_copy.py
(``moto.stepfunctions.models.StateMachine.__deepcopy__``)."""

from __future__ import annotations

from moto.stepfunctions.models import StateMachine


def test_state_machine_copy_fix_is_installed(stack):
    assert "__deepcopy__" in StateMachine.__dict__, "fix_state_machine_copy was not applied"


def test_a_copy_of_the_stack_state_machine_has_its_definition_and_no_executions(stack):
    """The patch blanks the attribute named ``executions``: moto must still keep them there. (The
    interpreter's backend, the one whose StartExecution deep-copies the state machine.)"""
    import copy

    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    backend = stepfunctions_parser_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    machine = backend.describe_state_machine(stack.state_machine_arn)
    assert isinstance(machine.executions, list), "moto's StateMachine no longer keeps .executions"
    clone = copy.deepcopy(machine)
    assert clone.executions == [] and clone.definition == machine.definition
    assert clone is not machine
