"""The email templates render, escape, and refuse missing variables."""

from __future__ import annotations

import jinja2
import pytest

from domain import emails
from infra.rendering import JinjaRenderer

LINK = "https://accounts.example.com/verify-email?token=abc.def-ghi_"


def test_the_verification_email_has_the_link_on_a_line_of_its_own() -> None:
    rendered = JinjaRenderer().render(
        emails.EmailKind.VERIFY_EMAIL,
        {
            "email": "ann@example.com",
            "link": LINK,
            "public_url": "https://x",
            "valid_for": "48 hours",
        },
    )
    assert rendered.subject == "Confirm your email address"
    assert LINK in rendered.text.splitlines()
    assert f'href="{LINK}"' in rendered.html
    assert "48 hours" in rendered.text


def test_html_is_escaped() -> None:
    rendered = JinjaRenderer().render(
        emails.EmailKind.ACCOUNT_EXISTS,
        {"email": "<script>x</script>@example.com", "public_url": "https://x"},
    )
    assert "<script>" not in rendered.html and "&lt;script&gt;" in rendered.html


def test_a_missing_variable_is_an_error_not_a_blank() -> None:
    with pytest.raises(jinja2.UndefinedError):
        JinjaRenderer().render(emails.EmailKind.VERIFY_EMAIL, {"email": "a@b.c", "public_url": "x"})


@pytest.mark.parametrize("kind", list(emails.EmailKind))
def test_every_kind_has_its_three_templates(kind: emails.EmailKind) -> None:
    renderer = JinjaRenderer()
    context = {"email": "a@b.c", "public_url": "https://x", "link": LINK, "valid_for": "1 hour"}
    rendered = renderer.render(kind, context)
    assert rendered.subject and rendered.text and rendered.html
