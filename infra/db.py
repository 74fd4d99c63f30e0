"""Herald's tables and the database engine."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

metadata = sa.MetaData()


def param(column: sa.Column[Any]) -> sa.BindParameter[Any]:
    """A named parameter typed as ``column`` (``p_<column name>``).

    The statements on the hot paths (a registration, a send) are built once,
    at import, from these and only executed per call: SQLAlchemy took longer
    to build and key such a statement (150 to 270 µs) than to run it.
    """
    return sa.bindparam(f"p_{column.name}", type_=column.type)


users = sa.Table(
    "users",
    metadata,
    sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("email", sa.Text, nullable=False),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("email_verified_at", sa.DateTime(timezone=True)),
    sa.Column("verification_nonce", sa.Integer, nullable=False, server_default="1"),
    sa.Column("locale", sa.Text, nullable=False, server_default="en"),
    sa.Column("password_contested", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("registration_attempt_hash", sa.Text),
    sa.Index("users_email_lower_key", sa.func.lower(sa.text("email")), unique=True),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column(
        "user_id",
        pg.UUID(as_uuid=True),
        sa.ForeignKey("users.id", ondelete="CASCADE"),
        nullable=False,
    ),
    # SHA-256 of the bearer token, hex: the table never holds a usable token.
    sa.Column("token_digest", sa.Text, nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("sessions_user", "user_id"),
    sa.Index("sessions_expires", "expires_at"),
)

email_deliveries = sa.Table(
    "email_deliveries",
    metadata,
    sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column(
        "user_id",
        pg.UUID(as_uuid=True),
        sa.ForeignKey("users.id", ondelete="CASCADE"),
    ),
    sa.Column("registration_id", pg.UUID(as_uuid=True)),
    # NULL only for a suppressed delivery to an address without an account.
    sa.Column("recipient", sa.Text),
    sa.Column("suppressed", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("verification_nonce", sa.Integer),
    # What the email's link says (never the signed token itself).
    sa.Column("link_claims", pg.JSONB),
    sa.Column("locale", sa.Text, nullable=False, server_default="en"),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("manual_retries", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_smtp_code", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("message_id", sa.Text, nullable=False, unique=True),
    sa.Column("job_id", sa.BigInteger),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True)),
    sa.CheckConstraint(
        "status IN ('queued', 'sending', 'sent', 'failed', 'suppressed')",
        name="email_deliveries_status",
    ),
    sa.Index("email_deliveries_user_kind", "user_id", "kind"),
    sa.Index("email_deliveries_registration", "registration_id"),
    sa.Index("email_deliveries_status_created", "status", "created_at"),
    sa.Index("email_deliveries_created", "created_at", "id"),
    sa.Index(
        "email_deliveries_pending",
        "created_at",
        postgresql_where=sa.text("status IN ('queued', 'sending')"),
    ),
)

registration_events = sa.Table(
    "registration_events",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("registration_id", pg.UUID(as_uuid=True), nullable=False),
    sa.Column("step", sa.Text, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("will_retry", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("retry_at", sa.DateTime(timezone=True)),
    sa.Column("reason", sa.Text),
    sa.CheckConstraint(
        "step IN ('email_queued', 'email_sent', 'email_failed', 'email_verified')",
        name="registration_events_step",
    ),
    sa.Index("registration_events_registration", "registration_id", "id"),
)

email_cooldowns = sa.Table(
    "email_cooldowns",
    metadata,
    # SHA-256 of the cooldown key: the table never holds an address in clear.
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("until", sa.DateTime(timezone=True), nullable=False),
)


email_windows = sa.Table(
    "email_windows",
    metadata,
    # Counters of emails per key (an address's hour, or all emails' minute).
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("window_start", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
)


def sqlalchemy_url(database_url: str) -> str:
    return "postgresql+psycopg://" + database_url.partition("://")[2]


# A pooled connection given back more recently than this is taken as alive;
# one idle for longer is pinged before it is used again (see ``create_engine``).
PING_AFTER_IDLE_SECONDS = 1.0
_RETURNED_AT = "herald_returned_at"


def create_engine(database_url: str, *, pool_size: int = 10) -> AsyncEngine:
    """The engine, with its pool's liveness check kept off the busy path.

    SQLAlchemy's ``pool_pre_ping`` pings every connection it hands out: a
    round trip per transaction, two of a registration's seventeen. Here only
    a connection that sat idle for ``PING_AFTER_IDLE_SECONDS`` is pinged (the
    rule of connection pools such as HikariCP), which is what catches the
    connections a database restart or an idle timeout killed. One that fails
    its ping is replaced before the caller sees it; a connection that dies
    under load fails its statement once, and SQLAlchemy then recycles every
    connection of the pool opened before the failure.
    """
    engine = create_async_engine(
        sqlalchemy_url(database_url),
        pool_size=pool_size,
        max_overflow=pool_size,
        # Errors are logged; their SQL parameters (addresses, hashes) must not be.
        hide_parameters=True,
    )
    dialect = engine.sync_engine.dialect

    def returned(dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    def ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.get(_RETURNED_AT)  # None: connected just now
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # The pool discards this connection and hands out another.
            raise sa_exc.DisconnectionError(f"stale pooled connection: {exc}") from exc

    sa.event.listen(engine.sync_engine, "checkin", returned)
    sa.event.listen(engine.sync_engine, "checkout", ping_if_idle)
    return engine
