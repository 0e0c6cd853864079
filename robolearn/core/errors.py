"""Errors that reach the user as one line: what is wrong, and what to do about it."""


class RobolearnError(Exception):
    """Base for errors the CLI prints as a single line instead of a traceback."""


class UnknownTaskError(RobolearnError, KeyError):
    """A task name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ActionError(RobolearnError, ValueError):
    """An action of the wrong shape, or with NaN/inf in it."""


class RenderBackendError(RobolearnError, RuntimeError):
    """No headless OpenGL backend could be opened for MuJoCo."""


class ConfigError(RobolearnError, ValueError):
    """A config key that does not exist, or a value of the wrong type."""


def one_line(exc: BaseException, limit: int = 300) -> str:
    """`exc`'s message on one line (YAML, JSON and orbax errors span several), cut to `limit`
    characters; its type's name when it has no message."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
