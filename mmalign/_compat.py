"""Old names that keep working for one release, with a :class:`DeprecationWarning`."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["renamed_keywords"]

F = TypeVar("F", bound=Callable[..., Any])

#: The release that deprecated the names, and the one that drops them.
DEPRECATED_IN = "0.2.0"
REMOVED_IN = "0.3.0"


def renamed_keywords(**renames: str) -> Callable[[F], F]:
    """Accept old keyword names of a function for one release.

    ``@renamed_keywords(workers="jobs")`` lets callers still pass ``workers=4``: the value
    goes to ``jobs`` with a :class:`DeprecationWarning`. Passing both names is a
    ``TypeError``, as Python says for any keyword given twice.
    """

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, new in renames.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{func.__qualname__}() got both {old}= and {new}=; pass {new}= only")
                    warnings.warn(
                        f"{func.__qualname__}({old}=...) is deprecated since {DEPRECATED_IN} and goes in "
                        f"{REMOVED_IN}; pass {new}=",
                        DeprecationWarning,
                        stacklevel=2,
                    )
                    kwargs[new] = kwargs.pop(old)
            return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
