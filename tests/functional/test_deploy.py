"""`dagcast deploy`'s command runner on real subprocesses (the Deployer's offline tests, with the
commands faked, are tests/unit/test_deploy.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from dagcast.deploy.commands import CommandFailed, run_command


def test_quiet_commands_keep_their_stderr_for_the_caller(capsys):
    assert run_command([sys.executable, "-c", "print('out')"]) == "out\n"
    with pytest.raises(CommandFailed) as raised:
        run_command(
            [sys.executable, "-c", "import sys; sys.stderr.write('no such table'); sys.exit(3)"], quiet=True
        )
    assert raised.value.stderr == "no such table"
    assert str(raised.value) == f"{Path(sys.executable).name} -c failed with exit code 3"
    assert capsys.readouterr().out == "out\n"


def test_chalice_names_the_python_it_runs_under_as_the_runtime_check_reads_it():
    """The runtime check asks `chalice --version` (whatever wrapper or shim starts chalice), not its
    #! line: the project's chalice runs on the Python running these tests."""
    from dagcast.deploy.commands import which
    from dagcast.deploy.preflight import python_of

    chalice = which("chalice")
    assert chalice is not None
    assert python_of(run_command([chalice, "--version"], quiet=True)) == "{}.{}".format(*sys.version_info[:2])
