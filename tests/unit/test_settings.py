"""Configuration: defaults, and errors that name the variable."""

from __future__ import annotations

import pytest

from infra.settings import ConfigError, Settings

VALID = {
    "DATABASE_URL": "postgresql+psycopg://herald@db/herald",
    "SMTP_HOST": "smtp.example.com",
    "MAIL_FROM": "Herald <no-reply@example.com>",
    "SECRET_KEYS": "a" * 32 + "," + "b" * 32,
    "PUBLIC_URL": "https://accounts.example.com/",
}


def test_a_minimal_environment_gives_safe_defaults() -> None:
    settings = Settings.from_env(VALID)
    assert settings.database_url == "postgresql://herald@db/herald"
    assert (settings.smtp_security, settings.smtp_port) == ("starttls", 587)
    assert settings.secret_keys == ("a" * 32, "b" * 32)
    assert settings.public_url == "https://accounts.example.com"
    assert settings.email_verification_max_age == 48 * 3600
    assert settings.job_queue_enabled and not settings.graphiql_enabled and not settings.debug
    assert settings.mail_domain == "example.com"


def test_the_smtp_port_follows_the_security_mode() -> None:
    assert Settings.from_env({**VALID, "SMTP_SECURITY": "tls"}).smtp_port == 465
    assert Settings.from_env({**VALID, "SMTP_SECURITY": "none"}).smtp_port == 25
    assert (
        Settings.from_env({**VALID, "SMTP_SECURITY": "none", "SMTP_PORT": "2525"}).smtp_port == 2525
    )


def test_every_missing_variable_is_named_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({})
    message = str(caught.value)
    for name in ("DATABASE_URL", "SMTP_HOST", "MAIL_FROM", "SECRET_KEYS", "PUBLIC_URL"):
        assert f"{name} is required" in message


@pytest.mark.parametrize(
    ("name", "value", "hint"),
    [
        ("DATABASE_URL", "mysql://x/y", "postgresql://"),
        ("SMTP_SECURITY", "ssl", "none, starttls or tls"),
        ("SMTP_PORT", "-1", "positive"),
        ("SMTP_PORT", "abc", "SMTP_PORT"),
        ("SECRET_KEYS", "short", "32 characters"),
        ("PUBLIC_URL", "accounts.example.com", "absolute http(s) URL"),
        ("MAIL_FROM", "nobody", "address"),
        ("JOB_QUEUE_ENABLED", "maybe", "true or false"),
        ("EMAIL_VERIFICATION_MAX_AGE", "0", "positive"),
        ("WORKER_POLL_SECONDS", "0", "positive"),
        ("EMAIL_SWEEP_CRON", "every minute", "cron expression"),
        ("LOG_LEVEL", "LOUD", "DEBUG, INFO"),
        ("ALLOWED_ORIGINS", "app.example.com", "not an origin"),
    ],
)
def test_a_bad_value_names_its_variable(name: str, value: str, hint: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**VALID, name: value})
    [problem] = caught.value.problems
    assert problem.startswith(f"{name}=") and hint in problem


def test_smtp_credentials_come_in_pairs() -> None:
    with pytest.raises(ConfigError, match="SMTP_USERNAME and SMTP_PASSWORD"):
        Settings.from_env({**VALID, "SMTP_USERNAME": "herald"})


def test_the_smtp_password_is_not_in_the_repr() -> None:
    settings = Settings.from_env({**VALID, "SMTP_USERNAME": "u", "SMTP_PASSWORD": "hunter2-secret"})
    assert "hunter2-secret" not in repr(settings)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SECRET_KEYS", "k" * 40 + ",short"),
        ("DATABASE_URL", "mysql://herald:s3cr3t-db-pass@db/herald"),
        ("ADMIN_API_KEYS", "k" * 40 + ",s3cr3t"),
    ],
)
def test_a_bad_secret_is_named_but_never_shown(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**VALID, name: value})
    message = str(caught.value)
    assert name in message and "(value hidden)" in message
    assert "k" * 40 not in message and "s3cr3t" not in message


def test_secrets_are_not_in_the_repr() -> None:
    settings = Settings.from_env(
        {
            **VALID,
            "DATABASE_URL": "postgresql://herald:s3cr3t-db-pass@db/herald",
            "ADMIN_API_KEYS": " " + "z" * 32 + " , " + "y" * 40,
        }
    )
    assert settings.admin_api_keys == ("z" * 32, "y" * 40)
    assert "s3cr3t" not in repr(settings) and "a" * 32 not in repr(settings)
    assert "z" * 32 not in repr(settings)


def test_the_send_lease_must_outlast_an_smtp_attempt() -> None:
    with pytest.raises(
        ConfigError, match="EMAIL_SEND_LEASE_SECONDS must be longer than SMTP_TIMEOUT"
    ):
        Settings.from_env({**VALID, "SMTP_TIMEOUT": "30", "EMAIL_SEND_LEASE_SECONDS": "30"})
