"""Configuration, read once from the environment at start and validated.

Every problem names the variable that causes it, and all problems are
reported together so a misconfigured deployment is fixed in one pass.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Literal, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")
SmtpSecurity = Literal["none", "starttls", "tls"]
_DEFAULT_PORTS: dict[str, int] = {"none": 25, "starttls": 587, "tls": 465}


class ConfigError(Exception):
    """Herald's configuration is not valid."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("use true or false")


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive whole number")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError("must be a positive number")
    return value


def database_url(raw: str) -> str:
    """A libpq URL (``postgresql://``), whatever SQLAlchemy-style scheme it came with."""
    scheme, sep, rest = raw.strip().partition("://")
    if not sep or scheme not in {"postgres", "postgresql", "postgresql+psycopg"}:
        raise ValueError("must start with postgresql:// (for example postgresql://user@host/db)")
    return f"postgresql://{rest}"


def _public_url(raw: str) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError("must be an absolute http(s) URL such as https://accounts.example.com")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or fragment")
    return raw.strip().rstrip("/")


def _mail_from(raw: str) -> str:
    _, address = parseaddr(raw)
    if "@" not in address:
        raise ValueError('must be an address such as "Herald <no-reply@example.com>"')
    return raw.strip()


def _keys(raw: str) -> tuple[str, ...]:
    """Comma-separated keys, each long enough not to be guessed."""
    keys = tuple(k.strip() for k in raw.split(",") if k.strip())
    if any(len(k) < 32 for k in keys):
        raise ValueError("each key must be at least 32 characters (openssl rand -hex 32)")
    return keys


def _secret_keys(raw: str) -> tuple[str, ...]:
    keys = _keys(raw)
    if not keys:
        raise ValueError("must hold at least one key")
    return keys


def _cron(raw: str) -> str:
    fields = raw.split()
    if len(fields) not in (5, 6):
        raise ValueError("must be a cron expression of 5 fields (or 6, the last for seconds)")
    return " ".join(fields)


def _log_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ValueError("must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return level


def _origins(raw: str) -> tuple[str, ...]:
    origins = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
    for origin in origins:
        parts = urlsplit(origin)
        if parts.scheme not in {"http", "https"} or not parts.netloc or parts.path:
            raise ValueError(f"{origin!r} is not an origin such as https://app.example.com")
    return origins


def _security(raw: str) -> SmtpSecurity:
    value = raw.strip().lower()
    if value == "none":
        return "none"
    if value == "starttls":
        return "starttls"
    if value == "tls":
        return "tls"
    raise ValueError("must be none, starttls or tls")


# Their values never appear in an error message.
_SECRET = {"SECRET_KEYS", "SMTP_PASSWORD", "DATABASE_URL", "ADMIN_API_KEYS"}


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def get(self, name: str, parse: Callable[[str], T], default: T | None = None) -> T:
        raw = self.env.get(name, "")
        if raw.strip() == "":
            if default is None:
                self.problems.append(f"{name} is required")
            return default  # type: ignore[return-value]
        try:
            return parse(raw)
        except ValueError as exc:
            shown = "(value hidden)" if name in _SECRET else repr(raw[:80])
            self.problems.append(f"{name}={shown} is not valid: {exc}")
            return default  # type: ignore[return-value]


@dataclass(frozen=True)
class Settings:
    database_url: str = field(repr=False)
    smtp_host: str
    smtp_port: int
    smtp_security: SmtpSecurity
    mail_from: str
    secret_keys: tuple[str, ...] = field(repr=False)
    public_url: str
    admin_api_keys: tuple[str, ...] = field(default=(), repr=False)
    smtp_username: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_timeout: int = 30
    smtp_pool_size: int = 2
    job_queue_enabled: bool = True
    email_verification_max_age: int = 48 * 3600
    email_cooldown_seconds: int = 60
    email_hourly_cap: int = 5
    emails_per_minute: int = 600
    registration_token_max_age: int = 48 * 3600
    session_max_age: int = 30 * 24 * 3600
    password_reset_max_age: int = 3600
    email_change_max_age: int = 24 * 3600
    sign_in_window_seconds: int = 900
    sign_in_failures_per_account: int = 10
    sign_in_failures_per_client: int = 100
    email_retry_base_seconds: int = 30
    email_retry_max_seconds: int = 3600
    email_max_attempts: int = 8
    worker_poll_seconds: float = 5.0
    email_sweep_cron: str = "* * * * *"
    email_sweep_min_age_seconds: int = 120
    email_send_lease_seconds: int = 120
    worker_stalled_seconds: int = 30
    job_retention_hours: int = 168
    password_hash_time_cost: int = 3
    password_hash_memory_kib: int = 65536
    password_hash_threads: int = 2
    password_hash_max_waiting: int = 128
    db_pool_size: int = 10
    graphiql_enabled: bool = False
    debug: bool = False
    max_request_bytes: int = 64 * 1024
    graphql_max_depth: int = 10
    graphql_max_tokens: int = 1000
    graphql_max_aliases: int = 15
    log_level: str = "INFO"
    allowed_origins: tuple[str, ...] = ()
    ws_keepalive_seconds: int = 15
    ws_connection_init_timeout: int = 10
    ws_max_subscriptions: int = 10
    subscription_queue_size: int = 64

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        r = _Reader(os.environ if env is None else env)
        default_security: SmtpSecurity = "starttls"
        security: SmtpSecurity = r.get("SMTP_SECURITY", _security, default_security)
        username = r.env.get("SMTP_USERNAME") or None
        password = r.env.get("SMTP_PASSWORD") or None
        if (username is None) != (password is None):
            r.problems.append("SMTP_USERNAME and SMTP_PASSWORD must be set together")
        settings = cls(
            database_url=r.get("DATABASE_URL", database_url),
            smtp_host=r.get("SMTP_HOST", str.strip),
            smtp_port=r.get("SMTP_PORT", _positive_int, _DEFAULT_PORTS[security or "starttls"]),
            smtp_security=security,
            smtp_username=username,
            smtp_password=password,
            smtp_timeout=r.get("SMTP_TIMEOUT", _positive_int, 30),
            smtp_pool_size=r.get("SMTP_POOL_SIZE", _positive_int, 2),
            mail_from=r.get("MAIL_FROM", _mail_from),
            secret_keys=r.get("SECRET_KEYS", _secret_keys),
            public_url=r.get("PUBLIC_URL", _public_url),
            admin_api_keys=r.get("ADMIN_API_KEYS", _keys, ()),
            job_queue_enabled=r.get("JOB_QUEUE_ENABLED", _bool, True),
            email_verification_max_age=r.get("EMAIL_VERIFICATION_MAX_AGE", _positive_int, 172800),
            email_cooldown_seconds=r.get("EMAIL_COOLDOWN_SECONDS", _positive_int, 60),
            email_hourly_cap=r.get("EMAIL_HOURLY_CAP", _positive_int, 5),
            emails_per_minute=r.get("EMAILS_PER_MINUTE", _positive_int, 600),
            registration_token_max_age=r.get(
                "REGISTRATION_TOKEN_MAX_AGE", _positive_int, 48 * 3600
            ),
            session_max_age=r.get("SESSION_MAX_AGE", _positive_int, 30 * 24 * 3600),
            password_reset_max_age=r.get("PASSWORD_RESET_MAX_AGE", _positive_int, 3600),
            email_change_max_age=r.get("EMAIL_CHANGE_MAX_AGE", _positive_int, 24 * 3600),
            sign_in_window_seconds=r.get("SIGN_IN_WINDOW_SECONDS", _positive_int, 900),
            sign_in_failures_per_account=r.get("SIGN_IN_FAILURES_PER_ACCOUNT", _positive_int, 10),
            sign_in_failures_per_client=r.get("SIGN_IN_FAILURES_PER_CLIENT", _positive_int, 100),
            email_retry_base_seconds=r.get("EMAIL_RETRY_BASE_SECONDS", _positive_int, 30),
            email_retry_max_seconds=r.get("EMAIL_RETRY_MAX_SECONDS", _positive_int, 3600),
            email_max_attempts=r.get("EMAIL_MAX_ATTEMPTS", _positive_int, 8),
            worker_poll_seconds=r.get("WORKER_POLL_SECONDS", _positive_float, 5.0),
            email_sweep_cron=r.get("EMAIL_SWEEP_CRON", _cron, "* * * * *"),
            email_sweep_min_age_seconds=r.get("EMAIL_SWEEP_MIN_AGE_SECONDS", _positive_int, 120),
            email_send_lease_seconds=r.get("EMAIL_SEND_LEASE_SECONDS", _positive_int, 120),
            worker_stalled_seconds=r.get("WORKER_STALLED_SECONDS", _positive_int, 30),
            job_retention_hours=r.get("JOB_RETENTION_HOURS", _positive_int, 168),
            password_hash_time_cost=r.get("PASSWORD_HASH_TIME_COST", _positive_int, 3),
            password_hash_memory_kib=r.get("PASSWORD_HASH_MEMORY_KIB", _positive_int, 65536),
            password_hash_threads=r.get(
                "PASSWORD_HASH_THREADS", _positive_int, max(2, os.cpu_count() or 2)
            ),
            password_hash_max_waiting=r.get("PASSWORD_HASH_MAX_WAITING", _positive_int, 128),
            db_pool_size=r.get("DB_POOL_SIZE", _positive_int, 10),
            graphiql_enabled=r.get("GRAPHIQL_ENABLED", _bool, False),
            debug=r.get("DEBUG", _bool, False),
            max_request_bytes=r.get("MAX_REQUEST_BYTES", _positive_int, 64 * 1024),
            graphql_max_depth=r.get("GRAPHQL_MAX_DEPTH", _positive_int, 10),
            graphql_max_tokens=r.get("GRAPHQL_MAX_TOKENS", _positive_int, 1000),
            graphql_max_aliases=r.get("GRAPHQL_MAX_ALIASES", _positive_int, 15),
            log_level=r.get("LOG_LEVEL", _log_level, "INFO"),
            allowed_origins=r.get("ALLOWED_ORIGINS", _origins, ()),
            ws_keepalive_seconds=r.get("WS_KEEPALIVE_SECONDS", _positive_int, 15),
            ws_connection_init_timeout=r.get("WS_CONNECTION_INIT_TIMEOUT", _positive_int, 10),
            ws_max_subscriptions=r.get("WS_MAX_SUBSCRIPTIONS", _positive_int, 10),
            subscription_queue_size=r.get("SUBSCRIPTION_QUEUE_SIZE", _positive_int, 64),
        )
        if not r.problems and settings.email_send_lease_seconds <= settings.smtp_timeout:
            r.problems.append(
                "EMAIL_SEND_LEASE_SECONDS must be longer than SMTP_TIMEOUT: a lease shorter "
                "than one attempt would let a second attempt send the same email"
            )
        if r.problems:
            raise ConfigError(r.problems)
        return settings

    @property
    def mail_domain(self) -> str:
        return parseaddr(self.mail_from)[1].rpartition("@")[2]
