"""The Hypothesis profiles of tests/conftest.py: loaded for every test, and what each promises."""

from __future__ import annotations

import os

from hypothesis import settings


def test_the_profile_named_by_the_environment_is_loaded_and_has_no_deadline():
    assert settings._current_profile == os.environ.get("HYPOTHESIS_PROFILE", "dev")
    assert settings.default is not None and settings.default.deadline is None


def test_the_ci_profile_is_reproducible():
    ci = settings.get_profile("ci")
    assert ci.deadline is None and ci.derandomize is True and ci.database is None and ci.print_blob
