"""The portal's forms read and checked: every refusal names the field and says why, in the citizen's
language. Lengths are the event contract's; control characters (NUL included) are refused, tabs and
line breaks in free texts excepted. Scripts, Markdown and HTML are ordinary text: stored as written and
always shown as plain text (the templates escape everything)."""

from __future__ import annotations

import unicodedata
from collections.abc import Collection, Mapping
from typing import NamedTuple

from services.portal.words import N_, Words

#: An idea's title (the event contract's bound for `title`).
TITLE_MAX = 200
#: A report's reason: a few sentences.
REASON_MAX = 1000
#: The themes an idea can be filed under (names of the event contract: lower case, dashes).
THEMES: dict[str, str] = {
    "mobility": N_("Getting around"),
    "environment": N_("Environment and nature"),
    "public-space": N_("Streets and public spaces"),
    "digital": N_("Digital services"),
    "solidarity": N_("Solidarity and health"),
    "culture": N_("Culture and sport"),
    "other": N_("Something else"),
}
FIELD_NAMES = {
    "title": N_("Title"),
    "text": N_("Your idea"),
    "comment": N_("Your comment"),
    "reason": N_("Why"),
    "theme": N_("Theme"),
    "district": N_("District"),
    "code": N_("Recovery code"),
    "score": N_("Vote"),
    "nps": N_("Recommendation"),
    "rating": N_("Rating"),
    "sus": N_("Ease of use"),
    "pilot": N_("Pilot"),
}


class FieldProblem(NamedTuple):
    """Why one field of a form was refused (`field` as named in the form)."""

    field: str
    message: str


class FormRefused(ValueError):
    """A form with fields to correct; nothing was sent."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = problems


def _control(text: str, multiline: bool) -> str | None:
    """Returns the name of the first control character of the text (tab and line breaks allowed in
    multi-line texts), None when there is none."""
    for c in text:
        if c in "\t\n\r" and multiline:
            continue
        if unicodedata.category(c) in ("Cc", "Cs") or c in "\u2028\u2029":
            return f"U+{ord(c):04X}"
    return None


class FormReader:
    """Reads the fields of one submitted form, gathering every problem before refusing it."""

    def __init__(self, form: Mapping[str, str], words: Words) -> None:
        self.form = form
        self.words = words
        self.problems: list[FieldProblem] = []

    def refuse(self, field: str, message: str, **values: object) -> None:
        """Refuses a field with a message of the catalog (its values filled in), the field's name first."""
        name = self.words(FIELD_NAMES.get(field, field))
        self.problems.append(
            FieldProblem(field, self.words(N_("%(field)s: "), field=name) + self.words(message, **values))
        )

    def text(self, field: str, *, max_length: int, required: bool = True, multiline: bool = True) -> str:
        """Returns the text of a field (line breaks normalised); refuses an empty, too long or control text."""
        value = str(self.form.get(field, "")).replace("\r\n", "\n")
        control = _control(value, multiline)
        if control is not None:
            self.refuse(field, N_("contains a control character (%(code)s); remove it and send again."), code=control)
            return value
        if required and not value.strip():
            self.refuse(field, N_("is empty; please write something."))
        elif len(value) > max_length:
            self.refuse(
                field,
                N_("has %(length)s characters; at most %(max)s are accepted."),
                length=self.words.count(len(value)),
                max=self.words.count(max_length),
            )
        return value

    def choice(self, field: str, options: Collection[str], *, required: bool = True) -> str | None:
        """Returns the option chosen in a field; refuses one that is not offered."""
        value = str(self.form.get(field, ""))
        if not value and not required:
            return None
        if value not in options:
            self.refuse(field, N_("choose one of the options offered."))
            return None
        return value

    def number(self, field: str, allowed: Collection[int], *, required: bool = False) -> int | None:
        """Returns an integer answer among `allowed`; None when it was left empty (and may be)."""
        value = str(self.form.get(field, "")).strip()
        if not value and not required:
            return None
        if not value.lstrip("-").isdigit() or int(value) not in allowed:
            self.refuse(field, N_("choose one of the answers offered."))
            return None
        return int(value)

    def check(self) -> None:
        """Raises FormRefused when any field was refused."""
        if self.problems:
            raise FormRefused(self.problems)
