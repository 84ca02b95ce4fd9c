#!/usr/bin/env bash
# Sets up everything syslogban, ./demo and the tests use in this checkout:
# the Debian packages (when missing), private unpacked copies of the packages
# that conflict with others, and the virtual environment .venv/ with
# syslogban installed editable. Idempotent: a second run only checks. Run by
# ./demo and ./run-tests (so the README's two commands suffice on a fresh
# Debian 12); run it alone to prepare a machine. `--list` prints what it
# would install, one "apt PACKAGE", "unpack NAME PACKAGE..." or "prepare
# SCRIPT" a line.
#
# No service of any package ever starts: policy-rc.d forbids it during the
# installs, and the services named below that an install enabled are
# disabled afterwards (one the admin had enabled before is left alone). The
# tests run private instances (own configuration, sockets, ports, network
# namespaces), never the system's.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# ============================================================================
# What each feature needs: ONE block per feature, with a comment saying who
# uses it. Add your feature's block here.
#   required+=(PACKAGE...)   syslogban cannot run without them: always installed
#                            (with sudo when not root), else setup stops
#   packages+=(PACKAGE...)   Debian packages the demo or the tests use;
#                            installed as root (or with sudo); without them the
#                            tests that need them skip, and fail on CI
#   unpacked+=("NAME PACKAGE... [!DEPENDENCY-GLOB...]")
#                            packages that conflict with others (or whose
#                            maintainer scripts do too much): `apt-get download`
#                            + `dpkg-deb -x` into $SYSLOGBAN_E2E_DIR/NAME (default
#                            ~/.cache/syslogban-e2e/NAME); their dependencies
#                            are installed with apt, except the !GLOB ones
#   services+=(UNIT...)      system services of those packages: disabled when
#                            this run's install enabled them (never the admin's)
#   prepare+=(SCRIPT...)     run after the installs: wrappers, sanity checks, a
#                            feature's own way to fetch what it needs; one that
#                            fails is reported, and the tests that need it skip
#                            (and fail on CI)
# ============================================================================
required=() packages=() unpacked=() services=() prepare=()

# The core: Debian's Python with venv (ensurepip), and Debian's nftables
# module, which is not on PyPI: the venv sees it through
# --system-site-packages.
required+=(python3-venv python3-nftables)

# nftables backend (the demo's real blocks, tests/test_backend_nftables.py,
# test_daemon_nftables.py, the e2e tests): the nft command reads the kernel's
# view; ip makes the network namespaces every kernel test runs in.
packages+=(nftables iproute2)

# ipset backend (tests/test_backend_ipset.py): ipset reads the kernel's view,
# iptables-restore/ip6tables-restore load contrib/ipset's rules.
packages+=(ipset iptables)

# Inputs end to end (tests/test_syslogd_e2e.py): the real rsyslog (its
# service never runs) and syslog-ng, whose Debian package conflicts with
# rsyslog, unpacked privately; contrib/e2e/wrap-syslog-ng.sh writes the
# wrapper the tests run.
packages+=(rsyslog)
unpacked+=("syslog-ng syslog-ng-core")
services+=(rsyslog.service)
prepare+=(contrib/e2e/wrap-syslog-ng.sh)

# Header forms of other syslog daemons (tests/test_header_daemons_e2e.py):
# busybox syslogd, socklog, svlogd (runit), multilog and tai64nlocal
# (daemontools), only unpacked: they need nothing but libc, and runit's
# helper packages are not wanted.
unpacked+=("loggers busybox socklog runit daemontools !runit-helper !sysuser-helper")

# Attempts on the real mail daemons (tests/test_attempts_real.py, tests/maild.py):
# Postfix, Dovecot (IMAP, POP3, submission, SQLite passdb), OpenSSH's server
# and the clients swaks, curl, sqlite3, run as private instances in network
# namespaces (their services disabled, never started). Exim and OpenSMTPD are
# each "the" mail-transport-agent like Postfix: unpacked, with their libraries
# only (not an MTA, its configuration or cron).
packages+=(postfix dovecot-core dovecot-imapd dovecot-pop3d dovecot-submissiond
           dovecot-sqlite openssh-server swaks curl sqlite3 openssl)
services+=(postfix.service dovecot.service ssh.service)
unpacked+=("exim exim4-daemon-light exim4-base !exim4* !opensmtpd* !cron* !debconf*")
unpacked+=("opensmtpd opensmtpd !exim4* !opensmtpd* !cron* !debconf*")

# contrib/systemd (tests/test_contrib_integrations.py): systemd-analyze
# verifies the units, systemd-socket-activate hands sockets over as
# syslogban.socket does.
packages+=(systemd)

# The fleet: Debian's psycopg 3 (the venv sees it as it sees nftables) and,
# for the tests, a private PostgreSQL 15 server started from its binaries
# (the package's own cluster is never used) and openssl for its certificates.
required+=(python3-psycopg)
packages+=(postgresql-15 openssl)
services+=(postgresql.service)

# The CrowdSec bridge (tests/test_crowdsec_*.py): a private Local API from
# Debian's crowdsec package, unpacked by contrib/crowdsec/install-lapi.sh
# (never installed: its post-install script registers online) where the
# unprivileged user the LAPI runs as can read it.
prepare+=(contrib/crowdsec/install-lapi.sh)

# The Debian package (tests/test_debian_package.py): contrib/debian/build runs
# inside throwaway Debian 12 roots, and apt installs the .deb in another one,
# never on this machine: debootstrap makes the roots (cached in
# /var/cache/syslogban-tests); the build tools are installed inside them.
packages+=(debootstrap)

# ============================================================================

if [[ ${1:-} == --list ]]; then
    for package in "${required[@]}" "${packages[@]}"; do echo "apt $package"; done
    for entry in "${unpacked[@]}"; do echo "unpack $entry"; done
    for script in "${prepare[@]}"; do echo "prepare $script"; done
    exit 0
fi

say() { echo "setup: $*" >&2; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }
missing_of() { local p; for p in "$@"; do installed "$p" || echo "$p"; done; }

# Installs need root: sudo when not root, and without sudo only what is
# already there.
can_install=1 sudo=()
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null; then sudo=(sudo); else can_install=""; fi
fi

updated=""
apt_install() {
    # No service may start on install (postgresql-15 would start the system's
    # cluster, rsyslog the system's syslog): policy-rc.d answers 101, "not
    # allowed", to invoke-rc.d. An existing policy-rc.d stays as it is.
    local policy=/usr/sbin/policy-rc.d made_policy="" status=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        made_policy=1
    fi
    if [[ -z $updated ]]; then
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq || status=$?
        updated=1
    fi
    say "installing $*"
    ((status)) || "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "$@" >/dev/null || status=$?
    if [[ -n $made_policy ]]; then "${sudo[@]}" rm -f "$policy"; fi
    return "$status"
}

e2e_dir=${SYSLOGBAN_E2E_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/syslogban-e2e}
unpack() {  # unpack NAME PACKAGE... [!GLOB...]: the packages' files in $e2e_dir/NAME
    local name=$1 root=$e2e_dir/$1 work deb dep glob
    local debs=() skip=() deps=()
    shift
    for word in "$@"; do
        if [[ $word == !* ]]; then skip+=("${word#!}"); else debs+=("$word"); fi
    done
    [[ -e $root/.complete ]] && return
    work=$(mktemp -d)
    chmod 755 "$work"  # apt downloads as the user _apt
    say "unpacking ${debs[*]} into $root"
    if ! (cd "$work" && apt-get download -qq "${debs[@]}" >/dev/null 2>&1); then
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        updated=1
        (cd "$work" && apt-get download -qq "${debs[@]}" >/dev/null)
    fi
    # Their dependencies: the first of each set of alternatives, without
    # version constraints; neither the unpacked packages nor the !GLOB ones.
    for deb in "$work"/*.deb; do
        while read -r dep; do
            [[ -z $dep ]] && continue
            for glob in "${debs[@]}" "${skip[@]}"; do
                # shellcheck disable=SC2053 # a glob on purpose
                [[ $dep == $glob ]] && continue 2
            done
            installed "$dep" || deps+=("$dep")
        done < <(dpkg-deb -f "$deb" Depends | tr ',' '\n' |
                 sed -E 's/\|.*//; s/\(.*\)//; s/[[:space:]]//g')
    done
    if ((${#deps[@]})); then apt_install "${deps[@]}"; fi
    rm -rf "$root.new"
    mkdir -p "$root.new"
    for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$root.new"; done
    touch "$root.new/.complete"
    rm -rf "$work" "$root"
    mv "$root.new" "$root"
}

enabled_services() {  # the units of $services enabled now, one a line
    command -v systemctl >/dev/null || return 0
    local unit
    for unit in "${services[@]}"; do
        [[ $(systemctl is-enabled "$unit" 2>/dev/null) == enabled ]] && echo "$unit"
    done
    return 0
}

disable_services() {
    # Only what this run's installs enabled (their maintainer scripts do):
    # a service the admin had enabled before (their sshd, their PostgreSQL)
    # is never disabled or stopped. systemctl works where systemd does not run.
    local unit
    while read -r unit; do
        [[ -z $unit ]] && continue
        printf '%s\n' "${enabled_before[@]}" | grep -qxF "$unit" && continue
        say "disabling the system service $unit (enabled by its install just now)"
        "${sudo[@]}" systemctl disable "$unit" >/dev/null 2>&1 || true
        if [[ -d /run/systemd/system ]] && systemctl is-active --quiet "$unit"; then
            "${sudo[@]}" systemctl stop "$unit" >/dev/null 2>&1 || true
        fi
    done < <(enabled_services)
}

mapfile -t enabled_before < <(enabled_services)
mapfile -t missing < <(missing_of "${required[@]}")
if ((${#missing[@]})); then
    if [[ -z $can_install ]]; then
        say "please install these Debian packages first: ${missing[*]}"; exit 1
    fi
    apt_install "${missing[@]}"
fi
if [[ -n $can_install ]]; then
    mapfile -t missing < <(missing_of "${packages[@]}")
    if ((${#missing[@]})); then apt_install "${missing[@]}"; fi
    for entry in "${unpacked[@]}"; do
        read -ra words <<<"$entry"  # words; its !GLOBs are no file names
        unpack "${words[@]}"
    done
    disable_services
    for script in "${prepare[@]}"; do
        if ! out=$("$script" 2>&1); then
            echo "$out" >&2
            say "$script failed: the tests that need it skip (and fail on CI)"
        fi
    done
else
    mapfile -t missing < <(missing_of "${packages[@]}")
    if ((${#missing[@]})); then
        say "not root and no sudo: the demo and the tests go without ${missing[*]}" \
            "(the tests that need them skip)"
    fi
fi

if [[ ! -x .venv/bin/python ]]; then
    say "creating .venv"
    /usr/bin/python3 -m venv --system-site-packages .venv
fi
stamp=.venv/.syslogban-installed
if [[ ! -e $stamp || setup.cfg -nt $stamp || pyproject.toml -nt $stamp ]]; then
    say "installing syslogban into .venv"
    if ! .venv/bin/python -m pip install --disable-pip-version-check -e '.[test]' \
            >.venv/setup.log 2>&1; then
        cat .venv/setup.log >&2
        exit 1
    fi
    touch "$stamp"
fi
