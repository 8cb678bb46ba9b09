"""With ``CI`` set, the Hypothesis tests run derandomized (tests/conftest.py loads the
``natlens-ci`` profile), so a rare random input cannot fail one CI run and pass the next; local
runs stay random. Checked in a fresh interpreter, as pytest would load conftest.py there."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

# The variables Hypothesis itself reads to guess it runs in CI (hypothesis._settings._CI_VARS).
_CI_VARS = ("CI", "TF_BUILD", "bamboo.buildKey", "BUILDKITE", "CIRCLECI", "CIRRUS_CI",
            "CODEBUILD_BUILD_ID", "GITHUB_ACTIONS", "GITLAB_CI", "HEROKU_TEST_RUN_ID",
            "TEAMCITY_VERSION", "__TOX_ENVIRONMENT_VARIABLE_ORIGINAL_CI")
_PROBE = ("import conftest\nfrom hypothesis import settings\n"
          "print(settings.default.derandomize, settings.default.deadline,"
          " settings.default.database)")


def _profile(ci: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k not in _CI_VARS}
    if ci is not None:
        env["CI"] = ci
    done = subprocess.run([sys.executable, "-c", _PROBE], cwd=REPO_ROOT / "tests", env=env,
                          capture_output=True, text=True, check=True, timeout=120)
    return done.stdout.strip()


@pytest.mark.parametrize("ci", ["true", "1"])
def test_ci_runs_derandomized(ci: str) -> None:
    assert _profile(ci) == "True None None"


def test_local_runs_stay_random() -> None:
    assert _profile(None).startswith("False ")
