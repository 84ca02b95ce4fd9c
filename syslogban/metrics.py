"""Metrics: the status counters as a Prometheus text file for node_exporter.

Rules of this file:
* It renders the counters `status.py` gathers; prometheus_client writes the
  exposition format and the file, atomically (a temporary file renamed over
  the old one): node_exporter never reads a half-written file. It reads
  nothing from the daemon itself.
* Names are syslogban_*, counters end in _total; they are public (dashboards
  and alerts depend on them).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, write_to_textfile
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric


class _Status:
    """A collector of one status snapshot (prometheus_client's custom collector)."""

    def __init__(self, status: Mapping[str, Any]) -> None:
        self.status = status

    def collect(self) -> Iterator[Metric]:
        s = self.status
        yield CounterMetricFamily("syslogban_records_read", "Records read.",
                                  value=s["records_read"])
        yield _labelled("syslogban_records_rejected", "Records rejected.", "reason",
                        s["records_rejected"])
        yield _labelled("syslogban_attacks", "Attacks detected.", "signature", s["attacks"])
        yield CounterMetricFamily("syslogban_blocks", "Blocks decided.",
                                  value=s["blocker"]["blocks"])
        yield GaugeMetricFamily("syslogban_blocks_active", "Blocks in force.",
                                value=s["blocks_active"])
        yield GaugeMetricFamily("syslogban_addresses_tracked", "Addresses with a score.",
                                value=s["addresses_tracked"])
        yield CounterMetricFamily("syslogban_backend_errors", "Failed firewall updates.",
                                  value=s["backend_errors"])


def _labelled(name: str, help_text: str, label: str,
              counts: Mapping[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, help_text, labels=[label])
    for value, count in counts.items():
        family.add_metric([value], count)
    return family


def write(path: str, status: Mapping[str, Any]) -> None:
    """Writes the counters of one `status` to `path` (a .prom file)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Status(status))
    write_to_textfile(path, registry)
