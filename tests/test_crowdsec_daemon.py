"""The CrowdSec bridge end to end: a real LAPI (Debian's 1.4.6) and the daemon
with nftables, both inside a network namespace the test made; cscli on one
side, the kernel's set on the other."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crowdsec_lapi import Lapi, requires_lapi
from netns import netns, requires_netns, run_in  # noqa: F401 (fixture)
from test_daemon import Daemon, attack_lines, daemons, start  # noqa: F401 (fixture)

pytestmark = [requires_netns, requires_lapi]
PASSWORD = "mx1-password-0123456789"
ADMIN = "crowdsec:cscli/manual 'ban' from 'cscli-admin'"


def kernel(ns: str) -> set[str]:
    """The addresses and prefixes in syslogban's IPv4 sets, as the kernel holds them."""
    return run_in(ns, _elements)


def _elements() -> set[str]:
    """Read with libnftables (python3-nftables) inside the namespace: no nft command."""
    import nftables
    nft = nftables.Nftables()
    nft.set_json_output(True)
    found = set()
    for name in ("hosts4", "prefixes4"):
        rc, output, _ = nft.cmd(f"list set inet syslogban {name}")
        if rc != 0:  # the table is not there (yet)
            continue
        for item in json.loads(output)["nftables"]:
            for elem in item.get("set", {}).get("elem", []):
                value = elem["elem"]["val"] if isinstance(elem, dict) else elem
                if isinstance(value, dict):  # a prefix
                    value = f"{value['prefix']['addr']}/{value['prefix']['len']}"
                found.add(value)
    return found


@pytest.fixture()
def lapi(netns: str) -> Iterator[Lapi]:  # noqa: F811 - the namespace's own LAPI
    instance = Lapi(netns=netns)
    try:
        yield instance.start()
    finally:
        instance.close()


def config(tmp: Path, lapi: Lapi) -> Path:
    """The daemon's configuration; the bouncer and machine are made the first time."""
    path = tmp / "syslogban.toml"
    if path.exists():
        return path
    key = lapi.add_bouncer("syslogban-mx1")
    lapi.add_machine("mx1", PASSWORD)
    path.write_text(f'allow = ["198.51.100.0/24"]\n'
                    f'[crowdsec]\nurl = "{lapi.url}"\nbouncer_key = "{key}"\n'
                    f'machine_id = "mx1"\nmachine_password = "{PASSWORD}"\npoll = "1s"\n')
    path.chmod(0o600)
    return path


def run(ns: str, tmp: Path, daemons: list[Daemon], lapi: Lapi) -> Daemon:
    return start(daemons, tmp, "--config", str(config(tmp, lapi)), "--block-time", "1h",
                 backend="nftables", wrap=("ip", "netns", "exec", ns))


def wait(condition: Any, what: str, daemon: Daemon, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{daemon.log.read_text()}")
        time.sleep(0.1)


def delete_in_crowdsec(lapi: Lapi, address: str, ns: str, daemon: Daemon) -> None:
    """cscli decisions delete: the block leaves the kernel set and the daemon's list."""
    lapi.cscli("decisions", "delete", "-i", address)
    wait(lambda: address not in kernel(ns), "the deletion in the kernel set", daemon)
    assert address not in daemon.blocks()


def crowdsec_status(daemon: Daemon) -> dict[str, Any]:
    return json.loads(daemon.ctl_json("status"))["remote"]["crowdsec"]  # type: ignore[no-any-return]


def test_a_cscli_decision_lands_in_the_kernel_and_why_names_crowdsec(
        netns: str, tmp_path: Path, daemons: list[Daemon], lapi: Lapi) -> None:
    d = run(netns, tmp_path, daemons, lapi)
    lapi.cscli("decisions", "add", "-i", "192.0.2.9", "-d", "4h")
    wait(lambda: "192.0.2.9" in kernel(netns), "the decision in the kernel set", d)
    why = d.ctl("why", "192.0.2.9")
    assert why.returncode == 0, why.stderr
    assert ADMIN in why.stdout and "CrowdSec decision #" in why.stdout
    block = d.blocks()["192.0.2.9"]
    assert block["origin"] == ADMIN
    assert 4 * 3600 - 60 < block["until"] - time.time() <= 4 * 3600
    delete_in_crowdsec(lapi, "192.0.2.9", netns, d)


def test_syslogbans_own_block_is_a_crowdsec_decision_and_deleting_it_unblocks(
        netns: str, tmp_path: Path, daemons: list[Daemon], lapi: Lapi) -> None:
    d = run(netns, tmp_path, daemons, lapi)
    d.send(attack_lines("192.0.2.1"))
    d.wait_for(lambda: d.reported() == ["192.0.2.1"], "the local block")
    wait(lambda: lapi.decisions("--origin", "syslogban"), "the alert in the LAPI", d)
    [decision] = lapi.decisions("--origin", "syslogban")
    assert (decision["value"], decision["scenario"], decision["type"]) == (
        "192.0.2.1", "syslogban/postfix.sasl-auth-failed", "ban")
    assert 3500 < _seconds(decision["duration"]) <= 3600
    delete_in_crowdsec(lapi, "192.0.2.1", netns, d)


def test_a_manual_unblock_deletes_the_decision(
        netns: str, tmp_path: Path, daemons: list[Daemon], lapi: Lapi) -> None:
    d = run(netns, tmp_path, daemons, lapi)
    assert d.ctl("block", "203.0.113.5", "--for", "1d").returncode == 0
    wait(lambda: lapi.decisions("--origin", "syslogban"), "the alert in the LAPI", d)
    assert d.ctl("unblock", "203.0.113.5").returncode == 0
    wait(lambda: not lapi.decisions("--origin", "syslogban"), "the deletion in the LAPI", d)
    assert "203.0.113.5" not in kernel(netns)


def test_a_decision_for_an_allow_listed_address_is_refused_and_bounds_hold(
        netns: str, tmp_path: Path, daemons: list[Daemon], lapi: Lapi) -> None:
    d = run(netns, tmp_path, daemons, lapi)
    lapi.cscli("decisions", "add", "-i", "198.51.100.5", "-d", "4h")
    lapi.cscli("decisions", "add", "-r", "203.0.113.0/24", "-d", "4h")  # wider than /32
    lapi.cscli("decisions", "add", "-i", "192.0.2.10", "-d", "48h")     # longer than 1d
    wait(lambda: "192.0.2.10" in kernel(netns), "the other decision", d)
    assert kernel(netns) == {"192.0.2.10"} and set(d.blocks()) == {"192.0.2.10"}
    log = d.log.read_text()
    assert "198.51.100.5 is allow-listed here: the local allow-list wins" in log
    assert "203.0.113.0/24 is wider than /32" in log
    assert 86400 - 60 < d.blocks()["192.0.2.10"]["until"] - time.time() <= 86400
    gate = json.loads(d.ctl_json("status"))["remote"]["gate"]
    assert (gate["allow_listed"], gate["too_wide"], gate["shortened"]) == (1, 1, 1)


def test_the_lapi_stopped_and_restarted_loses_nothing(
        netns: str, tmp_path: Path, daemons: list[Daemon], lapi: Lapi) -> None:
    d = run(netns, tmp_path, daemons, lapi)
    lapi.cscli("decisions", "add", "-i", "192.0.2.9", "-d", "4h")
    wait(lambda: "192.0.2.9" in kernel(netns), "the decision", d)
    lapi.stop()
    d.send(attack_lines("192.0.2.1") + attack_lines("192.0.2.2"))
    d.wait_for(lambda: {"192.0.2.1", "192.0.2.2"} <= set(d.reported()),
               "local blocks while the LAPI is away")
    assert {"192.0.2.1", "192.0.2.2", "192.0.2.9"} <= kernel(netns)
    wait(lambda: crowdsec_status(d)["operations_waiting"] == 2, "the alerts waiting", d)
    # syslogban restarts too while the LAPI is away: blocks and alerts stay
    assert d.close() == 0
    d = run(netns, tmp_path, daemons, lapi)
    assert set(d.blocks()) == {"192.0.2.1", "192.0.2.2", "192.0.2.9"}
    assert d.blocks()["192.0.2.9"]["origin"] == ADMIN
    lapi.start()
    wait(lambda: {x["value"] for x in lapi.decisions("--origin", "syslogban")} ==
         {"192.0.2.1", "192.0.2.2"}, "the waiting alerts in the LAPI", d)
    wait(lambda: crowdsec_status(d)["operations_waiting"] == 0, "an empty outbox", d)
    lapi.cscli("decisions", "add", "-i", "192.0.2.20", "-d", "1h")
    wait(lambda: "192.0.2.20" in kernel(netns), "a decision after the restart", d)
    assert {"192.0.2.1", "192.0.2.2", "192.0.2.9", "192.0.2.20"} <= kernel(netns)


def _seconds(go: str) -> float:
    from syslogban.crowdsec.decisions import go_duration
    return go_duration(go)
