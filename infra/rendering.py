"""Email content from the Jinja2 templates in ``templates/``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

from domain import emails

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"


class JinjaRenderer:
    """Renders ``<kind>.subject.txt``, ``<kind>.txt`` and ``<kind>.html``.

    StrictUndefined turns a missing variable into an error at render time rather
    than an email with a blank where the link should be.
    """

    def __init__(self, directory: Path = TEMPLATES_DIR) -> None:
        loader = jinja2.FileSystemLoader(directory)
        self._html = jinja2.Environment(
            loader=loader, autoescape=True, undefined=jinja2.StrictUndefined
        )
        # Subjects and plain-text bodies are not HTML: escaping would corrupt them.
        self._text = jinja2.Environment(
            loader=loader,
            autoescape=False,  # noqa: S701
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
        )

    def render(self, kind: emails.EmailKind, context: Mapping[str, Any]) -> emails.RenderedEmail:
        subject = self._text.get_template(f"{kind.value}.subject.txt").render(context)
        return emails.RenderedEmail(
            subject=" ".join(subject.split()),
            text=self._text.get_template(f"{kind.value}.txt").render(context),
            html=self._html.get_template(f"{kind.value}.html").render(context),
        )
