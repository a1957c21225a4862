"""Hypothesis profiles for the whole suite, picked by HYPOTHESIS_PROFILE (a test's own @settings
still win for what they set). ``dev``, the default: no per-example deadline — on a 2-core machine
shared by other work an example's time says nothing about the code, and a DeadlineExceeded there is
a flake, not a finding. ``ci`` (.ci/run): the same, plus examples derived from each test rather
than random, and no example database, so a CI run on a fresh clone is reproducible and a failure
prints the blob that replays it (``@reproduce_failure``)."""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("dev", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
