#!/usr/bin/env bash
# Sets up what syslogban needs in this checkout: Debian packages (when
# missing) and the virtual environment .venv/ with syslogban installed
# editable. Idempotent: a second run only checks. Sourced by ./demo and
# ./run-tests; run it alone to prepare a machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# python3-nftables is not on PyPI: the venv sees Debian's copy through
# --system-site-packages. python3-venv brings ensurepip to Debian's Python.
packages=(python3-venv python3-nftables)
# The fleet: Debian's psycopg 3 (the venv sees it as it sees nftables) and,
# for the tests, a private PostgreSQL 15 server started from its binaries
# (the package's own cluster is never used) and openssl for its certificates.
packages+=(python3-psycopg postgresql-15 openssl)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -eq 0 ]]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else
        echo "setup: please install these Debian packages first: ${missing[*]}" >&2; exit 1
    fi
    echo "setup: installing ${missing[*]}" >&2
    # No service may start on install (postgresql-15 would start the system's
    # cluster): policy-rc.d answers 101, "not allowed"; an existing one stays.
    policy=/usr/sbin/policy-rc.d made_policy=""
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        made_policy=1
    fi
    status=0
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq || status=$?
    ((status)) || "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null || status=$?
    if [[ -n $made_policy ]]; then "${sudo[@]}" rm -f "$policy"; fi
    ((status == 0)) || exit "$status"
fi

if [[ ! -x .venv/bin/python ]]; then
    echo "setup: creating .venv" >&2
    /usr/bin/python3 -m venv --system-site-packages .venv
fi
stamp=.venv/.syslogban-installed
if [[ ! -e $stamp || setup.cfg -nt $stamp || pyproject.toml -nt $stamp ]]; then
    echo "setup: installing syslogban into .venv" >&2
    if ! .venv/bin/python -m pip install --disable-pip-version-check -e '.[test]' \
            >.venv/setup.log 2>&1; then
        cat .venv/setup.log >&2
        exit 1
    fi
    touch "$stamp"
fi

# The CrowdSec bridge's tests run a private Local API from Debian's crowdsec
# package, unpacked (never installed: its post-install script registers
# online). Without it those tests skip, saying why.
if ! out=$(contrib/crowdsec/install-lapi.sh 2>&1); then
    echo "$out" >&2
    echo "setup: the CrowdSec LAPI is not unpacked; the bridge's tests against it skip" >&2
fi
