"""Email content from the Jinja2 templates in ``templates/``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

from domain import emails

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"


# How long a link lasts, in words: (seconds per unit, singular, plural) by language.
_UNITS = {
    "en": ((3600, "hour", "hours"), (60, "minute", "minutes"), (1, "second", "seconds")),
    "de": ((3600, "Stunde", "Stunden"), (60, "Minute", "Minuten"), (1, "Sekunde", "Sekunden")),
}


def duration(seconds: int, lang: str = "en") -> str:
    """``48 hours``, ``1 hour``, ``15 minutes``: the largest whole unit that fits."""
    units = _UNITS.get(lang, _UNITS["en"])
    for size, one, many in units:
        if (seconds >= size and seconds % size == 0) or size == 1:
            count = max(1, seconds // size)
            return f"{count} {one if count == 1 else many}"
    raise AssertionError("unreachable")


class JinjaRenderer:
    """Renders ``<kind>.subject.txt``, ``<kind>.txt`` and ``<kind>.html``.

    StrictUndefined turns a missing variable into an error at render time rather
    than an email with a blank where the link should be. Each template is read
    once per process (no check of its file before every email): restart the
    worker after editing one.
    """

    def __init__(self, directory: Path = TEMPLATES_DIR) -> None:
        self._directory = directory
        loader = jinja2.FileSystemLoader(directory)
        self._html = jinja2.Environment(
            loader=loader, autoescape=True, undefined=jinja2.StrictUndefined, auto_reload=False
        )
        # Subjects and plain-text bodies are not HTML: escaping would corrupt them.
        self._text = jinja2.Environment(
            loader=loader,
            autoescape=False,  # noqa: S701
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            auto_reload=False,
        )

    def render(
        self, kind: emails.EmailKind, context: Mapping[str, Any], locale: str = "en"
    ) -> emails.RenderedEmail:
        """In ``locale`` ("de-AT", then "de") when ``templates/<locale>/`` has the
        kind's templates, else in English (``templates/``)."""
        folder = self._translation(kind, locale)
        lang = folder.rstrip("/") or "en"
        values = {**context, "lang": lang}
        if "valid_for_seconds" in context:
            values["valid_for"] = duration(int(context["valid_for_seconds"]), lang)
        subject = self._text.get_template(f"{folder}{kind.value}.subject.txt").render(values)
        return emails.RenderedEmail(
            subject=" ".join(subject.split()),
            text=self._text.get_template(f"{folder}{kind.value}.txt").render(values),
            html=self._html.get_template(f"{folder}{kind.value}.html").render(values),
        )

    def _translation(self, kind: emails.EmailKind, locale: str) -> str:
        tag = locale.lower()
        for candidate in (tag, tag.partition("-")[0]):
            if candidate and (self._directory / candidate / f"{kind.value}.txt").is_file():
                return f"{candidate}/"
        return ""
