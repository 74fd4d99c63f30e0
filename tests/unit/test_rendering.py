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
            "valid_for_seconds": 48 * 3600,
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
    context = {
        "email": "a@b.c",
        "public_url": "https://x",
        "link": LINK,
        "valid_for_seconds": 3600,
        "new_email": "n***@example.com",
    }
    rendered = renderer.render(kind, context)
    assert rendered.subject and rendered.text and rendered.html


def test_a_translation_is_used_when_it_exists_and_english_otherwise() -> None:
    renderer = JinjaRenderer()
    context = {"email": "a@b.c", "public_url": "https://x", "link": LINK, "valid_for_seconds": 3600}
    german = renderer.render(emails.EmailKind.PASSWORD_RESET, context, "de-AT")
    assert german.subject == "Setzen Sie Ihr Passwort zurück"
    assert "läuft in 1 Stunde ab" in german.text and '<html lang="de">' in german.html
    assert "automatische Nachricht" in german.html
    for fallback in ("fr", "en-GB", "xx-YY"):
        english = renderer.render(emails.EmailKind.PASSWORD_RESET, context, fallback)
        assert english.subject == "Reset your password" and "expires in 1 hour" in english.text
        assert '<html lang="en">' in english.html


@pytest.mark.parametrize("kind", list(emails.EmailKind))
def test_every_kind_has_a_german_translation(kind: emails.EmailKind) -> None:
    context = {
        "email": "a@b.c",
        "public_url": "https://x",
        "link": LINK,
        "valid_for_seconds": 172800,
        "new_email": "n***@example.com",
    }
    english = JinjaRenderer().render(kind, context)
    german = JinjaRenderer().render(kind, context, "de")
    assert german.subject != english.subject and german.text != english.text
    if LINK in english.text:
        assert LINK in german.text.splitlines()
