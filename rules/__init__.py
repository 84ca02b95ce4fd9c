"""Bundled signature files (data, not code), installed as syslogban.rules."""
