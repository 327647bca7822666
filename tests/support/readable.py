"""What a person should never read on a console page or in a report: "None", "nan", a fraction left
unformatted (0.5541 where 55 % was meant), or a key the spec gives a name to (`trip_completed`)."""

from __future__ import annotations

import re
from collections.abc import Iterable

#: Words that only a missing value or a float's repr would put in a text.
RAW_VALUES = re.compile(r"\b(None|nan|NaN|inf|null)\b")
#: A decimal fraction with four digits or more: a share or a mean nobody rounded.
RAW_FRACTION = re.compile(r"(?<![\w.,])[-−]?0[.,]\d{4,}\b")


def unreadable(text: str, keys: Iterable[str] = ()) -> list[str]:
    """Returns each raw value, unformatted fraction or named key found in a text a person reads."""
    found = [f"raw value {m.group(0)!r}" for m in RAW_VALUES.finditer(text)]
    found += [f"unformatted fraction {m.group(0)!r}" for m in RAW_FRACTION.finditer(text)]
    for key in keys:
        if re.search(rf"(?<![\w-]){re.escape(key)}(?![\w-])", text):
            found.append(f"raw key {key!r}")
    return found
