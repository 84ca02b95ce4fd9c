"""Metrics: the status counters as a Prometheus text file for node_exporter.

Rules of this file:
* It renders the counters `status.py` gathers and writes them atomically
  (a temporary file renamed over the old one): node_exporter never reads a
  half-written file. It reads nothing from the daemon itself.
* Names are syslogban_*, counters end in _total; they are public (dashboards
  and alerts depend on them).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from typing import Any


def write(path: str, status: Mapping[str, Any]) -> None:
    """node_exporter textfile format, written atomically (rename)."""
    lines: list[str] = []

    def metric(name: str, value: float, help_text: str, labels: str = "") -> None:
        if not any(line.startswith(f"# HELP syslogban_{name} ") for line in lines):
            lines.append(f"# HELP syslogban_{name} {help_text}")
            lines.append(f"# TYPE syslogban_{name} "
                         f"{'gauge' if name.endswith(('active', 'tracked')) else 'counter'}")
        lines.append(f"syslogban_{name}{labels} {value}")

    metric("records_read_total", status["records_read"], "Records read.")
    for reason, count in status["records_rejected"].items():
        metric("records_rejected_total", count, "Records rejected.", f'{{reason="{reason}"}}')
    for sig, count in status["attacks"].items():
        metric("attacks_total", count, "Attacks detected.", f'{{signature="{sig}"}}')
    metric("blocks_total", status["blocker"]["blocks"], "Blocks decided.")
    metric("blocks_active", status["blocks_active"], "Blocks in force.")
    metric("addresses_tracked", status["addresses_tracked"], "Addresses with a score.")
    metric("backend_errors_total", status["backend_errors"], "Failed firewall updates.")
    directory = os.path.dirname(path) or "."
    with tempfile.NamedTemporaryFile("w", dir=directory, delete=False, suffix=".tmp") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(f.name, path)
