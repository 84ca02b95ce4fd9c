"""Conformance: syslogban's signatures scored against fail2ban's test corpus.

The corpus is read from Debian's `fail2ban` package (downloaded, never
installed, never copied into this repository); see README.md.
"""
