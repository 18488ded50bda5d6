"""What the option declarations of :mod:`tuspipe._options` are read for.

Each option there is ``Annotated[type, Option(default, "meaning", check)]``, a key of a
TypedDict (a *schema*). This module reads those declarations:

* :func:`resolve` fills in the defaults and runs every check, in one place, before any traffic,
  naming the option in its :class:`~tuspipe.UsageError`; :func:`resolve_changes` does the
  same for a few changed values of options already resolved, and :func:`split_options`
  divides one call's options between two schemas;
* :func:`documented` gives a ``**options`` function one keyword parameter per option in its
  runtime signature (``inspect.signature``, ``help()`` and IPython's completion show them,
  defaults included) and appends the options' meanings to its docstring.
"""

from __future__ import annotations

import difflib
import inspect
import textwrap
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar, cast, get_type_hints

from ._checks import Option
from ._errors import UsageError

__all__ = ["documented", "option_names", "resolve", "resolve_changes", "split_options"]

_Schema = type  # a TypedDict class of tuspipe._options


def _declared(schema: _Schema) -> dict[str, Option]:
    """The options a TypedDict declares (its own and inherited), by name."""
    found: dict[str, Option] = {}
    for name, hint in get_type_hints(schema, include_extras=True).items():
        option = next(
            (item for item in getattr(hint, "__metadata__", ()) if isinstance(item, Option)),
            None,
        )
        if option is None:
            raise TypeError(f"{schema.__name__}.{name} has no Option(...) declaration")
        found[name] = option
    return found


_DECLARED: dict[_Schema, dict[str, Option]] = {}


def _options_of(schema: _Schema) -> dict[str, Option]:
    declared = _DECLARED.get(schema)
    if declared is None:
        declared = _DECLARED[schema] = _declared(schema)
    return declared


def option_names(schema: _Schema) -> tuple[str, ...]:
    """The names of the options `schema` declares."""
    return tuple(_options_of(schema))


_T = TypeVar("_T", bound=Mapping[str, Any])


def resolve(schema: type[_T], given: Mapping[str, Any]) -> _T:
    """`given` checked against `schema` and completed with the defaults.

    Raises UsageError for a name `schema` does not declare (suggesting the closest one) and for
    a value its option's check refuses.
    """
    declared = _options_of(schema)
    _refuse_unknown(given, declared)
    resolved: dict[str, Any] = {}
    for name, option in declared.items():
        value = given.get(name, option.default)
        if option.check is not None and name in given:
            option.check(name, value)
        resolved[name] = value
    return cast(_T, resolved)


def resolve_changes(schema: type[_T], resolved: _T, changes: Mapping[str, Any]) -> _T:
    """`resolved` (options :func:`resolve` returned for `schema`) with `changes`, which are
    checked as :func:`resolve` checks them; the rest is not checked again."""
    declared = _options_of(schema)
    _refuse_unknown(changes, declared)
    for name, value in changes.items():
        check = declared[name].check
        if check is not None:
            check(name, value)
    return cast(_T, {**resolved, **changes})


def split_options(
    given: Mapping[str, Any], first: _Schema, second: _Schema
) -> tuple[dict[str, Any], dict[str, Any]]:
    """`given` divided between two schemas (a name both declare goes to `second`).

    Raises UsageError for a name neither declares, suggesting the closest of either's.
    """
    in_first, in_second = _options_of(first), _options_of(second)
    _refuse_unknown(given, {**in_first, **in_second})
    return (
        {name: value for name, value in given.items() if name not in in_second},
        {name: value for name, value in given.items() if name in in_second},
    )


def _refuse_unknown(given: Iterable[str], declared: Mapping[str, Option]) -> None:
    for name in given:
        if name not in declared:
            close = difflib.get_close_matches(name, declared, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise UsageError(f"{name!r} is not an option here{hint}")


_F = TypeVar("_F", bound=Callable[..., Any])


def documented(*schemas: _Schema) -> Callable[[_F], _F]:
    """Give a ``**options`` function one keyword parameter per option of `schemas` in its
    runtime signature, and the options' meanings in its docstring ("Options:" section)."""

    def decorate(function: _F) -> _F:
        options: dict[str, Option] = {}
        hints: dict[str, object] = {}
        for schema in schemas:
            options.update(_options_of(schema))
            hints.update(get_type_hints(schema))
        signature = inspect.signature(function)
        kept = [
            parameter
            for parameter in signature.parameters.values()
            if parameter.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        keywords = [
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=option.default,
                annotation=hints[name],
            )
            for name, option in options.items()
            if name not in {parameter.name for parameter in kept}
        ]
        function.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[*kept, *keywords]
        )
        function.__doc__ = (function.__doc__ or "").rstrip() + _options_section(
            options.items(), indent=_docstring_indent(function.__doc__)
        )
        return function

    return decorate


def _docstring_indent(doc: str | None) -> str:
    lines = [line for line in (doc or "").splitlines()[1:] if line.strip()]
    return min((line[: len(line) - len(line.lstrip())] for line in lines), default="", key=len)


def _options_section(options: Iterable[tuple[str, Option]], *, indent: str) -> str:
    lines = ["", "", f"{indent}Options (keyword arguments, declared in tuspipe._options):"]
    for name, option in options:
        text = f"{name} (default {option.default!r}): {option.doc}"
        lines += textwrap.wrap(
            text,
            width=96,
            initial_indent=indent + "    ",
            subsequent_indent=indent + "        ",
            break_on_hyphens=False,
        )
    return "\n".join(lines) + "\n"
