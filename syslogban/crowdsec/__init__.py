"""The CrowdSec bridge: syslogban as a bouncer (it pulls the Local API's
decisions) and as a machine (it pushes its own blocks as alerts).

One concept a module: `settings` (the [crowdsec] table), `decisions` (the
stream and the book of live decisions, pure), `alerts` (a block as an alert,
pure), `lapi` (HTTP), `store` (the outbox and the book in the state file),
`bridge` (the part the daemon runs).
"""
