"""The CI guard of system.py, run the way CI runs it: pytest in a subprocess
with this directory's conftest.py as its plugin, over a small test file,
with CI=true and without."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

HERE = Path(__file__).resolve().parent

CASES = '''
import pytest
from system import missing, need, requires

pytestmark = pytest.mark.filterwarnings("ignore")

@requires(False, "needs the frobnicator (package frob)")
def test_marked_missing():
    pass

@requires(True, "needs the kernel")
def test_marked_present_skips_anyway():
    pytest.skip("the kernel went away")

@requires(True, "needs the kernel")
def test_marked_present():
    pass

def test_needs_inside():
    need(False, "no private daemon at /x")

def test_missing_inside():
    missing("corpus unavailable: offline")

def test_unmarked_skip():
    pytest.skip("not for this platform")
'''
NAMES = ("test_marked_missing", "test_marked_present_skips_anyway", "test_marked_present",
         "test_needs_inside", "test_missing_inside", "test_unmarked_skip")


def run(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_cases.py").write_text(CASES)
    env = {key: value for key, value in os.environ.items()
           if key not in {"CI", "PYTEST_ADDOPTS", "PYTEST_CURRENT_TEST"}}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = str(HERE)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider",
         "-rA", "-q", f"--junitxml={tmp_path / 'report.xml'}", "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)


def outcomes(tmp_path: Path) -> dict[str, str]:
    """test name -> passed / skipped / failure / error, from the JUnit XML report."""
    found = {}
    for case in ElementTree.parse(tmp_path / "report.xml").iter("testcase"):
        kinds = [child.tag for child in case if child.tag in {"skipped", "failure", "error"}]
        found[case.get("name", "")] = kinds[-1] if kinds else "passed"
    return found


def test_off_ci_a_missing_requirement_skips(tmp_path: Path) -> None:
    result = run(tmp_path, None)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "needs the frobnicator (package frob)" in result.stdout
    assert outcomes(tmp_path) == {name: "skipped" for name in NAMES} | {
        "test_marked_present": "passed"}


@pytest.mark.parametrize("ci", ["true", "1"])
def test_on_ci_a_missing_requirement_fails_naming_test_and_reason(
        tmp_path: Path, ci: str) -> None:
    result = run(tmp_path, ci)
    assert result.returncode == 1, result.stdout + result.stderr
    text = result.stdout
    for name, reason in [("test_marked_missing", "needs the frobnicator (package frob)"),
                         ("test_marked_present_skips_anyway", "the kernel went away"),
                         ("test_needs_inside", "no private daemon at /x"),
                         ("test_missing_inside", "corpus unavailable: offline")]:
        assert f"test_cases.py::{name} skipped on CI: {reason}" in text, text
    got = outcomes(tmp_path)
    assert got.pop("test_marked_present") == "passed"
    # A skip of a test that needs nothing of the machine stays a skip.
    assert got.pop("test_unmarked_skip") == "skipped"
    assert set(got.values()) <= {"failure", "error"} and len(got) == 4, got
    assert "Traceback" not in text
