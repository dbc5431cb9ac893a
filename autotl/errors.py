"""The exceptions autotl raises on purpose.

Every message says what is wrong, what was given and what to do, so the CLI can print it as is.
"""

from __future__ import annotations


class AutoTLError(Exception):
    """Base class: the CLI prints these without a traceback."""


class PluginError(AutoTLError):
    """A plugin could not be loaded or misbehaved (raised only in strict mode)."""


class DuplicateNameError(AutoTLError):
    """Two plugins registered the same name."""


class UnknownComponentError(AutoTLError, KeyError):
    """A backbone, head, strategy or dataset name that no plugin registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(AutoTLError, ValueError):
    """A search setting is out of range or contradicts another."""


class DataError(AutoTLError, ValueError):
    """The input data cannot be used; the message names the file/column/value and the fix."""


class WeightsError(AutoTLError):
    """Pretrained weights could not be found, converted or loaded."""


class StorageError(AutoTLError):
    """The study's storage cannot be opened or written; the message names the host, never a
    password."""
