#!/usr/bin/env bash
# Unpacks Debian's crowdsec package (the Local API and cscli) into a private
# directory, for the tests of the CrowdSec bridge (tests/test_crowdsec_*.py),
# which run their own LAPI instances: own configuration, database and log,
# listening on loopback, no Central API, as an unprivileged user.
#
# The package is never installed: its post-install script registers with
# CrowdSec's Central API, fails without Internet access and leaves dpkg in a
# broken state for every later install. `apt-get download` + `dpkg-deb -x`
# runs no maintainer script and starts no service.
#
# Where: $SYSLOGBAN_CROWDSEC_DIR, by default /var/cache/syslogban-e2e/crowdsec
# as root (readable by the unprivileged user the LAPI runs as), else
# ~/.cache/syslogban-e2e/crowdsec. Idempotent: a second run only checks.
# Debian (apt) only; anything else is told why and exits 1, and the tests then
# skip, saying why.
set -euo pipefail

if [[ $(id -u) -eq 0 ]]; then default=/var/cache/syslogban-e2e/crowdsec; else
    default=${XDG_CACHE_HOME:-$HOME/.cache}/syslogban-e2e/crowdsec
fi
root=${SYSLOGBAN_CROWDSEC_DIR:-$default}

say() { echo "install-lapi: $*" >&2; }

if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
    say "needs Debian's apt-get and dpkg-deb"; exit 1
fi
if [[ -x $root/usr/bin/crowdsec && -x $root/usr/bin/cscli ]] \
        && "$root/usr/bin/cscli" version >/dev/null 2>&1; then
    say "crowdsec: unpacked in $root"
    exit 0
fi
if [[ $(id -u) -eq 0 ]]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else
    sudo=()
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"  # apt downloads as the user _apt
say "apt-get download crowdsec (into $work)"
if ! (cd "$work" && apt-get download -qq crowdsec >/dev/null 2>&1); then
    # No package lists yet (a fresh machine): fetch them once and try again.
    if ((${#sudo[@]})) || [[ $(id -u) -eq 0 ]]; then
        say "apt-get update"
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || true
    fi
    (cd "$work" && apt-get download -qq crowdsec >/dev/null)
fi
deb=$(ls "$work"/crowdsec_*.deb)
# Its run-time libraries (libsqlite3, libc, ca-certificates) conflict with
# nothing: the missing ones are installed with apt, without recommends.
missing=()
while read -r package; do
    if [[ -n $package ]] && ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null \
            | grep -q "ok installed"; then
        missing+=("$package")
    fi
done < <(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed -E 's/\|.*//; s/\(.*\)//; s/[[:space:]]//g')
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 && ${#sudo[@]} -eq 0 ]]; then
        say "please install these Debian packages first: ${missing[*]}"; exit 1
    fi
    say "apt-get install ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null
fi
say "dpkg-deb -x $(basename "$deb") $root"
mkdir -p "$(dirname "$root")"
rm -rf "$root.new"
mkdir -p "$root.new"
dpkg-deb -x "$deb" "$root.new"
chmod 755 "$root.new" "$(dirname "$root")"
rm -rf "$root"
mv "$root.new" "$root"
if ! version=$("$root/usr/bin/cscli" version 2>&1 | sed -n "s/.*version: //p" | grep -m1 .); then
    say "cscli in $root does not run"; exit 1
fi
say "crowdsec: $version, in $root"
