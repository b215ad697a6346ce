"""What every multi-output command promises: all its outputs, or none.

Standard library only (the CLI parser imports the command modules).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["all_or_none"]

F = TypeVar("F", bound=Callable[..., Any])


def all_or_none(func: F) -> F:
    """Run a command inside :func:`core.io.all_or_none`: a failure removes every output.

    Outputs already moved into place when a later one fails (or the run is cancelled)
    are removed, and the files they replaced are put back.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ..io import all_or_none as output_group

        with output_group():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
