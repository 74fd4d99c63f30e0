"""Helpers shared by integration and end-to-end tests."""

from __future__ import annotations

from typing import Any

from infra.settings import Settings

SECRET = "test-secret-key-" + "k" * 32
ADMIN_KEY = "test-admin-key-" + "a" * 32


def environment(database_url: str, **overrides: Any) -> dict[str, str]:
    """A complete Herald environment for tests: cheap hashing, fast retries."""
    env = {
        "DATABASE_URL": database_url,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": "1",
        "SMTP_SECURITY": "none",
        "SMTP_TIMEOUT": "5",
        "MAIL_FROM": "Herald <no-reply@herald.test>",
        "SECRET_KEYS": SECRET,
        "ADMIN_API_KEYS": ADMIN_KEY,
        "PUBLIC_URL": "http://127.0.0.1:8000",
        "PASSWORD_HASH_TIME_COST": "1",
        "PASSWORD_HASH_MEMORY_KIB": "1024",
        "EMAIL_RETRY_BASE_SECONDS": "1",
        "EMAIL_RETRY_MAX_SECONDS": "2",
        "WORKER_POLL_SECONDS": "0.2",
        "LOG_LEVEL": "WARNING",
    }
    env.update({key: str(value) for key, value in overrides.items()})
    return env


def settings(database_url: str, **overrides: Any) -> Settings:
    return Settings.from_env(environment(database_url, **overrides))
