#!/usr/bin/env bash
# Writes the wrapper that runs the privately unpacked syslog-ng, for
# tests/test_syslogd_e2e.py. contrib/setup-venv.sh unpacks the package (it
# conflicts with rsyslog) into $SYSLOGBAN_E2E_DIR/syslog-ng (default
# ~/.cache/syslogban-e2e/syslog-ng) and then runs this script: the binary
# looks for its libraries and modules under /usr/lib, the wrapper points it
# at the private copy. Tests and people run $SYSLOGBAN_E2E_DIR/bin/syslog-ng.
set -euo pipefail

e2e_dir=${SYSLOGBAN_E2E_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/syslogban-e2e}
root=$e2e_dir/syslog-ng
libdir=$root/usr/lib/syslog-ng
wrapper=$e2e_dir/bin/syslog-ng

module_path=$(dirname "$(find "$libdir" -name 'libafprog.so' -print -quit)")
mkdir -p "$e2e_dir/bin"
cat >"$wrapper.new" <<WRAPPER
#!/bin/sh
# Runs the privately unpacked syslog-ng (written by contrib/e2e/wrap-syslog-ng.sh).
LD_LIBRARY_PATH="$libdir\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$root/usr/sbin/syslog-ng" --module-path "$module_path" "\$@"
WRAPPER
chmod 755 "$wrapper.new"
mv "$wrapper.new" "$wrapper"
if ! version=$("$wrapper" --version 2>&1 | head -1); then
    echo "wrap-syslog-ng: syslog-ng in $root does not run: $version" >&2; exit 1
fi
