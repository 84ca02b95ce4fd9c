"""Installs a fake firewall tool (pfctl, ipfw) for one test and reads what it saw.

The fakes next to this file start with `#!/usr/bin/env python3` so that they
can be run by hand; `install` copies one into the test's own bin folder with
this interpreter (-S: no site, a fast start) in the #! line, puts that folder
first on PATH and points the fake at a transcript and a state file of the test.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

FAKES = Path(__file__).parent


@dataclass
class FakeTool:
    program: Path
    log: Path
    state_file: Path
    monkeypatch: pytest.MonkeyPatch

    def take(self) -> list[dict[str, Any]]:
        """The calls since the last take: argv (without the program's path), data, ..."""
        calls = [json.loads(line) for line in self.log.read_text().splitlines()]
        self.log.write_text("")
        return calls

    def state(self) -> Any:
        return json.loads(self.state_file.read_text())

    def set_state(self, state: Any) -> None:
        self.state_file.write_text(json.dumps(state))

    def fail(self, text: str | None) -> None:
        """Makes every command containing `text` fail (None: none fails)."""
        if text is None:
            self.monkeypatch.delenv("SYSLOGBAN_FAKE_FAIL", raising=False)
        else:
            self.monkeypatch.setenv("SYSLOGBAN_FAKE_FAIL", text)


def install(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeTool:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    program = bin_dir / name
    source = (FAKES / name).read_text().split("\n", 1)[1]
    program.write_text(f"#!{sys.executable} -S\n{source}")
    program.chmod(0o755)
    log, state_file = tmp_path / f"{name}.log", tmp_path / f"{name}.json"
    log.write_text("")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ.get('PATH', '')}")
    monkeypatch.setenv("SYSLOGBAN_FAKE_LOG", str(log))
    monkeypatch.setenv("SYSLOGBAN_FAKE_STATE", str(state_file))
    monkeypatch.delenv("SYSLOGBAN_FAKE_FAIL", raising=False)
    return FakeTool(program, log, state_file, monkeypatch)
