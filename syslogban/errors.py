"""The errors syslogban reports to an admin as a message, not a traceback.

Every module raises its own subclass (RuleError, ConfigError, StateError,
BackendError, ControlError, PrivilegeError); the command line catches this one
base, so it need not import every module to recognise their errors.
"""


class SyslogbanError(Exception):
    """A problem the admin can fix, said in words the admin understands."""


def os_error(exc: OSError) -> str:
    """An OSError in an admin's words: the file it concerns and the system's
    reason ("/var/lib/syslogban: Permission denied"), never "[Errno 13] ..."."""
    reason = exc.strerror or str(exc)
    names = [str(n) for n in (exc.filename, exc.filename2) if n is not None]
    return ": ".join([*names, reason]) if names else reason
