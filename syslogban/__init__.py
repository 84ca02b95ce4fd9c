"""syslogban: blocks mail-server attackers from the syslog records it receives."""

__version__ = "0.1.0"
