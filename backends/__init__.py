"""Firewall drivers, installed as syslogban.backends (see DESIGN.md)."""
