#!/usr/bin/env bash
# Installs the two syslog daemons that tests/test_syslogd_e2e.py runs as
# private instances (own configuration, sockets and ports; never /dev/log,
# never port 514, never the system configuration):
#
# * rsyslog, the Debian package. Its service is never started: the package's
#   maintainer scripts are told not to start it (policy-rc.d), and the tests
#   run their own rsyslogd with -f and -i.
# * syslog-ng, unpacked into a private directory, because the Debian package
#   syslog-ng-core conflicts with rsyslog: only its libraries are installed
#   with apt (they conflict with nothing), the .deb itself is extracted with
#   dpkg-deb into $SYSLOGBAN_E2E_DIR/syslog-ng (default
#   ~/.cache/syslogban-e2e/syslog-ng) and run from there with --module-path.
#
# * busybox (its syslogd), socklog, runit (svlogd) and daemontools
#   (multilog, tai64nlocal): the header forms of tests/test_header_daemons_e2e.py.
#   Their .debs are only extracted into $SYSLOGBAN_E2E_DIR/loggers (they need
#   nothing but libc): nothing is installed, no service or init is touched.
#
# * the mail daemons of tests/test_attempts_real.py: Postfix, Dovecot (IMAP,
#   POP3, submission, SQLite passdb), OpenSSH's server, swaks, curl, sqlite3
#   as Debian packages (their services disabled, never started: the tests run
#   private instances in network namespaces); Exim and OpenSMTPD, each "the"
#   mail-transport-agent like Postfix, unpacked into $SYSLOGBAN_E2E_DIR/exim
#   and .../opensmtpd (only their libraries installed with apt).
#
# Idempotent: a second run only checks. Prints what it does. Debian (apt) and
# root (or sudo) only; anything else is told why and exits 1, and the tests
# then skip, saying why.
set -euo pipefail

e2e_dir=${SYSLOGBAN_E2E_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/syslogban-e2e}
syslog_ng_root=$e2e_dir/syslog-ng

say() { echo "install-syslogd: $*" >&2; }

if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
    say "needs Debian's apt-get and dpkg-deb"; exit 1
fi
if [[ $(id -u) -eq 0 ]]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else
    say "needs root or sudo to install packages"; exit 1
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }

apt_install() {
    # No service may start while packages are installed (no system syslog
    # daemon is wanted here): policy-rc.d answers 101 ("not allowed") to
    # invoke-rc.d. An existing policy-rc.d is left as it is.
    local policy=/usr/sbin/policy-rc.d made_policy=""
    if [[ ! -e $policy ]]; then
        say "forbidding service starts during the install ($policy)"
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        made_policy=1
    fi
    say "apt-get install $*"
    local status=0
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "$@" >/dev/null || status=$?
    if [[ -n $made_policy ]]; then "${sudo[@]}" rm -f "$policy"; fi
    return "$status"
}

updated=""
apt_update() {
    if [[ -z $updated ]]; then
        say "apt-get update"
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || true
        updated=1
    fi
}

# --- rsyslog ---------------------------------------------------------------
if installed rsyslog; then
    say "rsyslog: installed ($(dpkg-query -W -f='${Version}' rsyslog))"
else
    apt_update
    apt_install rsyslog
fi
# The package's service must neither run nor start at boot: the tests start
# their own instances. Its maintainer scripts enable it; that is undone here
# (systemctl edits the links even where systemd is not running).
if command -v systemctl >/dev/null; then
    if [[ $(systemctl is-enabled rsyslog.service 2>/dev/null) == enabled ]]; then
        say "rsyslog: disabling the system service"
        "${sudo[@]}" systemctl disable rsyslog.service >/dev/null 2>&1 || true
    fi
    if [[ -d /run/systemd/system ]] && systemctl is-active --quiet rsyslog.service syslog.socket; then
        say "rsyslog: stopping the system service"
        "${sudo[@]}" systemctl stop rsyslog.service syslog.socket >/dev/null 2>&1 || true
    fi
fi
# --- syslog-ng, unpacked privately ------------------------------------------
if [[ -x $syslog_ng_root/usr/sbin/syslog-ng ]]; then
    say "syslog-ng: unpacked in $syslog_ng_root"
else
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    chmod 755 "$work"  # apt downloads as the user _apt
    apt_update
    say "apt-get download syslog-ng-core (into $work)"
    (cd "$work" && apt-get download -qq syslog-ng-core >/dev/null)
    deb=$(ls "$work"/syslog-ng-core_*.deb)
    # Its library dependencies: the first of each set of alternatives,
    # without version constraints; only the missing ones are installed.
    missing=()
    while read -r package; do
        [[ -n $package ]] && ! installed "$package" && missing+=("$package")
    done < <(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed -E 's/\|.*//; s/\(.*\)//; s/[[:space:]]//g')
    if ((${#missing[@]})); then apt_install "${missing[@]}"; fi
    say "dpkg-deb -x $(basename "$deb") $syslog_ng_root"
    mkdir -p "$syslog_ng_root.new"
    dpkg-deb -x "$deb" "$syslog_ng_root.new"
    rm -rf "$syslog_ng_root"
    mv "$syslog_ng_root.new" "$syslog_ng_root"
fi
# The binary looks for its own libraries and modules under /usr/lib: a
# wrapper points it at the private copy. Tests and people run the wrapper.
libdir=$syslog_ng_root/usr/lib/syslog-ng
module_path=$(dirname "$(find "$libdir" -name 'libafprog.so' -print -quit)")
wrapper=$e2e_dir/bin/syslog-ng
mkdir -p "$e2e_dir/bin"
cat >"$wrapper.new" <<WRAPPER
#!/bin/sh
# Runs the privately unpacked syslog-ng (made by contrib/e2e/install-syslogd.sh).
LD_LIBRARY_PATH="$libdir\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$syslog_ng_root/usr/sbin/syslog-ng" --module-path "$module_path" "\$@"
WRAPPER
chmod 755 "$wrapper.new"
mv "$wrapper.new" "$wrapper"
if ! version=$("$wrapper" --version 2>&1 | head -1); then
    say "syslog-ng in $syslog_ng_root does not run: $version"; exit 1
fi
say "syslog-ng: $version"
say "syslog-ng: run it as $wrapper"
# --- busybox, socklog, svlogd, multilog, unpacked privately ----------------
loggers_root=$e2e_dir/loggers
if [[ -x $loggers_root/bin/busybox && -x $loggers_root/usr/sbin/socklog \
      && -x $loggers_root/usr/bin/svlogd && -x $loggers_root/usr/bin/multilog ]]; then
    say "busybox, socklog, svlogd, multilog: unpacked in $loggers_root"
else
    loggers_work=$(mktemp -d)
    trap 'rm -rf "${work:-}" "$loggers_work"' EXIT  # with syslog-ng's, if it ran
    chmod 755 "$loggers_work"  # apt downloads as the user _apt
    apt_update
    say "apt-get download busybox socklog runit daemontools (into $loggers_work)"
    (cd "$loggers_work" && apt-get download -qq busybox socklog runit daemontools >/dev/null)
    mkdir -p "$loggers_root.new"
    for deb in "$loggers_work"/*.deb; do
        say "dpkg-deb -x $(basename "$deb") $loggers_root"
        dpkg-deb -x "$deb" "$loggers_root.new"
    done
    rm -rf "$loggers_root"
    mv "$loggers_root.new" "$loggers_root"
fi
say "busybox: $("$loggers_root/bin/busybox" 2>&1 | head -1)"
# --- mail daemons (tests/test_attempts_real.py) -----------------------------
mail_packages=(postfix dovecot-core dovecot-imapd dovecot-pop3d dovecot-submissiond
               dovecot-sqlite openssh-server swaks curl sqlite3 openssl)
missing=()
for package in "${mail_packages[@]}"; do installed "$package" || missing+=("$package"); done
if ((${#missing[@]})); then
    apt_update
    apt_install "${missing[@]}"
fi
if command -v systemctl >/dev/null; then
    for unit in postfix.service dovecot.service ssh.service; do
        if [[ $(systemctl is-enabled "$unit" 2>/dev/null) == enabled ]]; then
            say "disabling the system service $unit"
            "${sudo[@]}" systemctl disable "$unit" >/dev/null 2>&1 || true
        fi
        if [[ -d /run/systemd/system ]] && systemctl is-active --quiet "$unit"; then
            "${sudo[@]}" systemctl stop "$unit" >/dev/null 2>&1 || true
        fi
    done
fi
for entry in "exim exim4-daemon-light exim4-base" "opensmtpd opensmtpd"; do
    read -r name debs <<<"$entry"
    root=$e2e_dir/$name
    if [[ -e $root/.complete ]]; then say "$name: unpacked in $root"; continue; fi
    mail_work=$(mktemp -d)
    chmod 755 "$mail_work"  # apt downloads as the user _apt
    apt_update
    say "apt-get download $debs (into $mail_work)"
    # shellcheck disable=SC2086 # a list of packages
    (cd "$mail_work" && apt-get download -qq $debs >/dev/null)
    # Their libraries (the first of each set of alternatives); not the
    # packages of an MTA, its configuration or cron.
    missing=()
    for deb in "$mail_work"/*.deb; do
        while read -r package; do
            case $package in ""|exim4*|opensmtpd*|cron*|debconf*) continue ;; esac
            installed "$package" || missing+=("$package")
        done < <(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed -E 's/\|.*//; s/\(.*\)//; s/[[:space:]]//g')
    done
    if ((${#missing[@]})); then apt_install "${missing[@]}"; fi
    rm -rf "$root.new"
    mkdir -p "$root.new"
    for deb in "$mail_work"/*.deb; do dpkg-deb -x "$deb" "$root.new"; done
    touch "$root.new/.complete"
    rm -rf "$mail_work" "$root"
    mv "$root.new" "$root"
    say "$name: unpacked in $root"
done
