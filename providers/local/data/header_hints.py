"""Why a CSV's declared columns were not found, when its header says why.

Two mistakes account for most "declared column(s) missing" reports on files exported by
other tools: the file is separated by another character than ``csv.delimiter`` (a
tab-separated file read as comma-separated arrives as one column named after the whole
header line), and the header writes its names in quotes that the values do not use
(``'age','income'``, common in exported survey data). ``missing_columns_hint`` names the
setting that fixes each.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.kinds.data import CsvOptions

SEPARATORS = {"\t": "tab", ";": "semicolon", "|": "pipe", ",": "comma"}
QUOTES = ("'", '"', "`")
SHOWN = 60  # characters of a header line quoted in a message


def _yaml(character: str) -> str:
    """How to write the character as a YAML value."""
    if character == "\t":
        return '"\\t" (in double quotes)'
    return f"'{character}'" if character == '"' else f'"{character}"'


def _quote_around(names: Sequence[str], missing: set[str]) -> str | None:
    """The quote character wrapped around header names that are, without it, missing ones."""
    for name in names:
        if len(name) > 2 and name[0] == name[-1] and name[0] in QUOTES and name[1:-1] in missing:
            return name[0]
    return None


def missing_columns_hint(present: Sequence[str], missing: Sequence[str], csv: CsvOptions) -> str:
    """What to set so that the missing declared columns are found ("" when nothing is clear)."""
    names, advice = list(present), []
    if csv.header and len(names) == 1:
        found = [d for d in SEPARATORS if d != csv.delimiter and d in names[0]]
        if found:
            separator = max(found, key=names[0].count)
            shown = names[0] if len(names[0]) <= SHOWN else names[0][:SHOWN] + "..."
            advice.append(
                f"the whole header was read as one column ({shown!r}): the file looks "
                f"{SEPARATORS[separator]}-separated, so set spec.source.csv.delimiter: "
                f"{_yaml(separator)}"
            )
            names = names[0].split(separator)
    quote = _quote_around(names, set(missing)) if csv.header and not csv.header_strip else None
    if quote is not None:
        example = next(n for n in names if n[1:-1] in set(missing))
        advice.append(
            f"the header writes its names in quotes ({example}), so set "
            f"spec.source.csv.headerStrip: {_yaml(quote)}"
        )
    return "".join(f"; {a}" for a in advice)
