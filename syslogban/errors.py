"""The errors syslogban reports to an admin as a message, not a traceback.

Every module raises its own subclass (RuleError, ConfigError, StateError,
BackendError, ControlError, PrivilegeError); the command line catches this one
base, so it need not import every module to recognise their errors.
"""


class SyslogbanError(Exception):
    """A problem the admin can fix, said in words the admin understands."""
