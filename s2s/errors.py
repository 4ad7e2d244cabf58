"""User-facing errors. Each one names the file, line or field at fault and what was expected."""


class S2SError(Exception):
    """Base class: the CLI prints these as one clean line instead of a traceback."""


class ConfigError(S2SError):
    """A recipe or override is wrong: unknown key, wrong type, invalid combination."""


class DataError(S2SError):
    """A corpus file is unreadable, misaligned or malformed."""


class BundleError(S2SError):
    """An exported bundle is missing pieces or is inconsistent."""


class RunError(S2SError):
    """A training run directory or one of its checkpoints is missing, unreadable or inconsistent."""


class TrainingError(S2SError):
    """Training cannot go on: a batch that does not fit in memory, or too many non-finite updates in a row."""
