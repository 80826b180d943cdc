"""A column's ``regex``, checked when the spec is validated as RE2 will read it at apply.

Data is checked with RE2 (pyarrow's ``match_substring_regex``), which refuses what
Python's ``re`` accepts in several ways: counted repetitions above 1000 (also as a
product of nested ones: ``(a{10}){101}``), look-arounds, back-references, atomic groups
and possessive quantifiers. Such a pattern would pass ``validate`` and ``plan`` and fail
only when a snapshot is checked, so it is refused here, with the reason. The check runs
on Python's parse of the pattern; a pattern Python cannot compile (``re.error``, a
repetition count too large to hold, nesting too deep to parse) is refused with Python's
reason. Patterns are at most ``MAX_PATTERN_LENGTH`` characters, which bounds the work.
RE2 never backtracks, so no pattern can make checking the data slow.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

MAX_PATTERN_LENGTH = 4096
"""The longest column regex, in characters."""
MAX_REPEAT = 1000
"""RE2's largest repetition count, also for the product of nested counts."""

_UNSUPPORTED = {
    "ASSERT": "a look-ahead or look-behind ((?=...), (?!...), (?<=...), (?<!...))",
    "ASSERT_NOT": "a look-ahead or look-behind ((?=...), (?!...), (?<=...), (?<!...))",
    "GROUPREF": "a back-reference (\\1, (?P=name))",
    "GROUPREF_EXISTS": "a conditional group ((?(1)...|...))",
    "ATOMIC_GROUP": "an atomic group ((?>...))",
    "POSSESSIVE_REPEAT": "a possessive quantifier (*+, ++, ?+)",
}
_REPEATS = ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")


def check_pattern(pattern: str) -> str:
    """The pattern, if RE2 can use it to check data; else ValueError saying why not."""
    shown = (
        repr(pattern)
        if len(pattern) <= 60
        else f"{pattern[:40]!r}... ({len(pattern):,} characters)"
    )
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(
            f"regex {shown} is longer than {MAX_PATTERN_LENGTH:,} characters; write a shorter pattern"
        )
    try:
        re.compile(pattern)
        parsed = _parser().parse(pattern)
        problem = _re2_problem(parsed, MAX_REPEAT)
    except re.error as exc:
        raise ValueError(f"regex {shown} does not compile: {exc}") from None
    except (OverflowError, ValueError) as exc:  # a{99999999999999999999}: "too large"
        raise ValueError(f"regex {shown} does not compile: {exc}") from None
    except RecursionError:
        raise ValueError(
            f"regex {shown} does not compile: its groups are nested too deeply"
        ) from None
    if problem:
        raise ValueError(f"regex {shown} cannot be used: {problem}")
    return pattern


def _re2_problem(items: Any, budget: int) -> str | None:
    """What in Python's parse of a pattern RE2 refuses, or None. ``budget`` is what is
    left of RE2's repetition limit under the repetitions around ``items``."""
    for op, arg in items:
        name = str(op)
        if name in _UNSUPPORTED:
            return f"it uses {_UNSUPPORTED[name]}, which RE2 (the engine that checks data) does not support"
        for sub, inner in _children(name, arg, budget):
            if inner < 0:
                return f"a repetition count is above {MAX_REPEAT}, RE2's limit; use + or * for more"
            if inner == 0:
                return (
                    f"its nested repetitions multiply to more than {MAX_REPEAT}, RE2's limit; "
                    "use smaller counts, or + and *"
                )
            found = _re2_problem(sub, inner)
            if found:
                return found
    return None


def _children(name: str, arg: Any, budget: int) -> list[tuple[Any, int]]:
    """The sub-patterns of one parsed item, each with the repetition budget left in it
    (RE2 divides it by each count around; -1: a count above the limit on its own)."""
    if name in _REPEATS:
        low, high, sub = arg
        unbounded = high == _parser().MAXREPEAT
        if low > MAX_REPEAT or (not unbounded and high > MAX_REPEAT):
            return [(sub, -1)]
        count = low if unbounded else high
        return [(sub, budget // count if count > 0 else budget)]
    if name == "SUBPATTERN":
        return [(arg[-1], budget)]
    if name == "BRANCH":
        return [(sub, budget) for sub in arg[1]]
    return []


def _parser() -> Any:
    """Python's regex parser: private, but its parse tree is the only full account of a
    pattern's structure; its shape has held since Python 3.11 (sre_parse before)."""
    return importlib.import_module("re._parser")
