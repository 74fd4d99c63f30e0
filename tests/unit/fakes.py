"""In-memory fakes of the domain's ports, for unit tests of the use cases."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from domain import accounts, delivery, emails, errors, operations, progress, sessions, users

ADMIN_KEY = "admin-key-for-unit-tests-0123456789"


class FakeClock:
    def __init__(self) -> None:
        self.current = datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


class Store:
    """What the fake database holds; survives across units of work like a real one."""

    def __init__(self) -> None:
        self.users: dict[uuid.UUID, users.User] = {}
        self.deliveries: dict[uuid.UUID, dict[str, Any]] = {}
        self.cooldowns: dict[str, datetime] = {}
        self.windows: dict[tuple[str, float], int] = {}
        self.steps: list[progress.RegistrationStep] = []
        self.sessions: dict[str, sessions.Session] = {}
        self.queue_up = True  # False: the job queue is down, deliveries get no job
        self.clock: FakeClock | None = None  # stamps deliveries when set


class FakeUsers:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def add(self, user: users.User) -> bool:
        if any(u.email.lower() == user.email.lower() for u in self.store.users.values()):
            return False
        self.store.users[user.id] = user
        return True

    async def get_by_email(self, email: str) -> users.User | None:
        return next(
            (u for u in self.store.users.values() if u.email.lower() == email.lower()), None
        )

    async def bump_verification_nonce(self, user_id: uuid.UUID) -> int:
        user = self.store.users[user_id]
        self.store.users[user_id] = dataclasses.replace(
            user, verification_nonce=user.verification_nonce + 1
        )
        return user.verification_nonce + 1

    async def mark_verified(
        self, user_id: uuid.UUID, email: str, nonce: int, at: datetime
    ) -> users.User | None:
        user = self.store.users.get(user_id)
        if (
            user is None
            or user.email.lower() != email.lower()
            or user.verification_nonce != nonce
            or user.email_verified
        ):
            return None
        self.store.users[user_id] = dataclasses.replace(user, email_verified_at=at)
        return self.store.users[user_id]

    async def get(self, user_id: uuid.UUID) -> users.User | None:
        return self.store.users.get(user_id)

    async def remember_registration(self, user_id: uuid.UUID, password_hash: str) -> None:
        user = self.store.users[user_id]
        if user.email_verified:
            changed = dataclasses.replace(user, registration_attempt_hash=password_hash)
        else:
            changed = dataclasses.replace(
                user, password_hash=password_hash, password_contested=True
            )
        self.store.users[user_id] = changed

    async def contest_password(self, user_id: uuid.UUID) -> None:
        user = self.store.users[user_id]
        self.store.users[user_id] = dataclasses.replace(user, password_contested=True)

    async def replace_password(
        self, user_id: uuid.UUID, *, current_hash: str, new_hash: str
    ) -> bool:
        user = self.store.users.get(user_id)
        if user is None or user.password_hash != current_hash:
            return False
        self.store.users[user_id] = dataclasses.replace(
            user, password_hash=new_hash, password_contested=False
        )
        return True

    async def change_email(
        self,
        user_id: uuid.UUID,
        *,
        current: str,
        new: str,
        nonce: int,
        password_hash: str,
        at: datetime,
    ) -> users.User | None:
        others = [u for u in self.store.users.values() if u.id != user_id]
        for other in others:
            if other.email.lower() == new.lower() and not other.email_verified:
                del self.store.users[other.id]
        user = self.store.users.get(user_id)
        if (
            user is None
            or user.email.lower() != current.lower()
            or user.verification_nonce != nonce
            or user.password_hash != password_hash
        ):
            return None
        if any(u.email.lower() == new.lower() for u in self.store.users.values() if u != user):
            raise errors.AddressUnavailable()
        self.store.users[user_id] = dataclasses.replace(
            user,
            email=new,
            email_verified_at=at,
            verification_nonce=user.verification_nonce + 1,
        )
        return self.store.users[user_id]


class FakeSessions:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def add(self, session: sessions.Session, *, password_hash: str) -> bool:
        user = self.store.users.get(session.user_id)
        if user is None or user.password_hash != password_hash:
            return False
        self.store.sessions[session.token_digest] = session
        return True

    async def user_of(self, token_digest: str, now: datetime) -> users.User | None:
        session = self.store.sessions.get(token_digest)
        if session is None or session.expires_at <= now:
            return None
        return self.store.users.get(session.user_id)

    async def revoke(self, token_digest: str) -> bool:
        return self.store.sessions.pop(token_digest, None) is not None

    async def revoke_all(self, user_id: uuid.UUID) -> int:
        mine = [k for k, s in self.store.sessions.items() if s.user_id == user_id]
        for key in mine:
            del self.store.sessions[key]
        return len(mine)

    async def prune(self, now: datetime) -> int:
        over = [k for k, s in self.store.sessions.items() if s.expires_at <= now]
        for key in over:
            del self.store.sessions[key]
        return len(over)


class FakeDeliveries:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def claim(
        self, delivery_id: uuid.UUID, now: datetime, *, lease_seconds: float
    ) -> emails.Delivery | None:
        row = self.store.deliveries.get(delivery_id)
        if row is None or row["status"] not in {
            emails.DeliveryStatus.QUEUED,
            emails.DeliveryStatus.SENDING,
        }:
            return None
        if row["status"] is emails.DeliveryStatus.SENDING:
            # As the SQL claim: another attempt holds it until its lease ends.
            until = row["claimed_at"] + timedelta(seconds=lease_seconds)
            if now < until:
                raise errors.DeliveryLeased(until)
        row.update(
            status=emails.DeliveryStatus.SENDING, attempts=row["attempts"] + 1, claimed_at=now
        )
        return emails.Delivery(
            id=delivery_id,
            kind=row["kind"],
            user_id=row["user_id"],
            registration_id=row["registration_id"],
            recipient=row["recipient"],
            suppressed=row["suppressed"],
            attempts=row["attempts"],
            message_id=f"<{delivery_id}@test>",
            verification_nonce=row["verification_nonce"],
            claims=row["claims"],
            locale=row["locale"],
        )

    def _settle(self, delivery_id: uuid.UUID, **values: Any) -> bool:
        row = self.store.deliveries[delivery_id]
        if row["status"] is not emails.DeliveryStatus.SENDING:
            return False
        row.update(**values)
        return True

    async def mark_sent(self, delivery_id: uuid.UUID, now: datetime) -> bool:
        return self._settle(delivery_id, status=emails.DeliveryStatus.SENT)

    async def mark_retrying(
        self, delivery_id: uuid.UUID, now: datetime, code: int | None, reason: str
    ) -> bool:
        return self._settle(
            delivery_id, status=emails.DeliveryStatus.QUEUED, code=code, reason=reason
        )

    async def mark_failed(
        self, delivery_id: uuid.UUID, now: datetime, code: int | None, reason: str
    ) -> bool:
        return self._settle(
            delivery_id, status=emails.DeliveryStatus.FAILED, code=code, reason=reason
        )

    async def mark_suppressed(self, delivery_id: uuid.UUID, now: datetime) -> bool:
        return self._settle(delivery_id, status=emails.DeliveryStatus.SUPPRESSED)

    async def received(self, user_id: uuid.UUID, nonce: int, at: datetime) -> list[uuid.UUID]:
        registrations = []
        for row in self.store.deliveries.values():
            if (
                row["user_id"] == user_id
                and row["kind"] is emails.EmailKind.VERIFY_EMAIL
                and row["verification_nonce"] == nonce
                and row["status"]
                in {
                    emails.DeliveryStatus.QUEUED,
                    emails.DeliveryStatus.SENDING,
                    emails.DeliveryStatus.FAILED,
                }
            ):
                row["status"] = emails.DeliveryStatus.SENT
                if row["registration_id"] is not None:
                    registrations.append(row["registration_id"])
        return registrations

    async def registration_of(self, message_id: str) -> uuid.UUID | None:
        for key, row in self.store.deliveries.items():
            if f"<{key}@test>" == message_id:
                return uuid.UUID(str(row["registration_id"]))
        return None

    async def stranded(
        self, *, created_before: datetime, leased_before: datetime, limit: int
    ) -> list[uuid.UUID]:
        return [
            key
            for key, row in self.store.deliveries.items()
            if row["status"] is emails.DeliveryStatus.QUEUED and not row["job"]
        ][:limit]

    def _record(self, key: uuid.UUID) -> emails.DeliveryRecord:
        row = self.store.deliveries[key]
        return emails.DeliveryRecord(
            id=key,
            kind=row["kind"],
            status=row["status"],
            recipient=row["recipient"],
            suppressed=row["suppressed"],
            registration_id=row["registration_id"],
            attempts=row["attempts"],
            manual_retries=row.get("manual_retries", 0),
            last_smtp_code=row.get("code"),
            last_error=row.get("reason"),
            message_id=f"<{key}@test>",
            created_at=row["created_at"],
            updated_at=row["created_at"],
            sent_at=None,
            user_id=row["user_id"],
            verification_nonce=row["verification_nonce"],
        )

    async def get(self, delivery_id: uuid.UUID) -> emails.DeliveryRecord | None:
        return self._record(delivery_id) if delivery_id in self.store.deliveries else None

    async def page(
        self,
        *,
        status: emails.DeliveryStatus | None,
        kind: emails.EmailKind | None,
        before: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[emails.DeliveryRecord]:
        records = sorted(
            (self._record(key) for key in self.store.deliveries),
            key=lambda r: (r.created_at, r.id),
            reverse=True,
        )
        return [
            r
            for r in records
            if (status is None or r.status is status)
            and (kind is None or r.kind is kind)
            and (before is None or (r.created_at, r.id) < before)
        ][:limit]

    async def requeue(self, delivery_id: uuid.UUID, now: datetime) -> emails.DeliveryRecord | None:
        row = self.store.deliveries.get(delivery_id)
        if row is None or row["status"] is not emails.DeliveryStatus.FAILED:
            return None
        row.update(
            status=emails.DeliveryStatus.QUEUED,
            attempts=0,
            manual_retries=row.get("manual_retries", 0) + 1,
            job=False,
        )
        return self._record(delivery_id)

    async def count_by_status(self, *, since: datetime) -> emails.DeliveryCounts:
        counts: dict[emails.DeliveryStatus, int] = {}
        for row in self.store.deliveries.values():
            if row["created_at"] >= since:
                counts[row["status"]] = counts.get(row["status"], 0) + 1
        return emails.DeliveryCounts(counts)


class FakeProgress:
    def __init__(self, pending: list[progress.RegistrationStep]) -> None:
        self.pending = pending

    async def record(
        self,
        registration_id: uuid.UUID,
        step: progress.Step,
        at: datetime,
        *,
        will_retry: bool = False,
        retry_at: datetime | None = None,
        reason: str | None = None,
    ) -> None:
        self.pending.append(
            progress.RegistrationStep(0, registration_id, step, at, will_retry, retry_at, reason)
        )

    async def record_verified(self, user_id: uuid.UUID, nonce: int, at: datetime) -> None:
        raise AssertionError("replaced by FakeUnitOfWork")


class FakeOutbox:
    def __init__(self, store: Store, pending: list[emails.EmailRequest]) -> None:
        self.store = store
        self.pending = pending

    async def enqueue(self, request: emails.EmailRequest) -> None:
        self.pending.append(request)

    async def defer(self, delivery_id: uuid.UUID) -> bool:
        if not self.store.queue_up:
            return False
        self.store.deliveries[delivery_id]["job"] = True
        return True


class FakeCooldowns:
    def __init__(
        self,
        store: Store,
        pending: dict[str, datetime],
        pending_windows: dict[tuple[str, float], int],
    ) -> None:
        self.store = store
        self.pending = pending
        self.pending_windows = pending_windows

    async def acquire(self, key: str, *, seconds: int, now: datetime) -> int | None:
        until = self.pending.get(key) or self.store.cooldowns.get(key)
        if until is not None and until > now:
            return int((until - now).total_seconds() + 0.999)
        self.pending[key] = now + timedelta(seconds=seconds)
        return None

    async def take(self, key: str, *, limit: int, window_seconds: int, now: datetime) -> int | None:
        epoch = now.timestamp()
        start = epoch - epoch % window_seconds
        window = (key, start)
        used = self.pending_windows.get(window, self.store.windows.get(window, 0))
        if used >= limit:
            return max(1, int(start + window_seconds - epoch + 0.999))
        self.pending_windows[window] = used + 1
        return None

    async def give_back(self, key: str, *, window_seconds: int, now: datetime) -> None:
        epoch = now.timestamp()
        window = (key, epoch - epoch % window_seconds)
        count = self.pending_windows.get(window, self.store.windows.get(window, 0))
        self.pending_windows[window] = max(0, count - 1)

    async def prune(self, now: datetime) -> int:
        over = [key for key, until in self.store.cooldowns.items() if until <= now]
        for key in over:
            del self.store.cooldowns[key]
        return len(over)


class FakeUnitOfWork:
    """Writes to users, sessions and deliveries apply at once (like reads in
    the same transaction), and users and sessions are put back unless
    committed; queued emails and cooldowns only land on commit."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._users_before = dict(store.users)
        self._sessions_before = dict(store.sessions)
        self._emails: list[emails.EmailRequest] = []
        self._cooldowns: dict[str, datetime] = {}
        self._steps: list[progress.RegistrationStep] = []
        self.progress = FakeProgress(self._steps)
        self.progress.record_verified = self._record_verified  # type: ignore[method-assign]
        self.users = FakeUsers(store)
        self.deliveries = FakeDeliveries(store)
        self.sessions = FakeSessions(store)
        self.outbox = FakeOutbox(store, self._emails)
        self._windows: dict[tuple[str, float], int] = {}
        self.cooldowns = FakeCooldowns(store, self._cooldowns, self._windows)
        self.committed = False

    async def _record_verified(self, user_id: uuid.UUID, nonce: int, at: datetime) -> None:
        registrations = {
            d["registration_id"]
            for d in self.store.deliveries.values()
            if d["user_id"] == user_id and d["verification_nonce"] == nonce
        }
        for registration_id in sorted(registrations):
            await self.progress.record(registration_id, progress.Step.EMAIL_VERIFIED, at)

    async def commit(self) -> None:
        for request in self._emails:
            account = self.store.users.get(request.user_id) if request.user_id else None
            self.store.deliveries[uuid.uuid4()] = {
                # Snapshots, as the real outbox records them with the request.
                "recipient": request.recipient or (account.email if account else None),
                "locale": account.locale if account else "en",
                "claims": dict(request.claims),
                "kind": request.kind,
                "user_id": request.user_id,
                "registration_id": request.registration_id,
                "verification_nonce": request.verification_nonce,
                "suppressed": request.suppressed,
                "status": emails.DeliveryStatus.QUEUED,
                "attempts": 0,
                "job": self.store.queue_up,
                "created_at": self.store.clock.now() if self.store.clock else datetime.now(UTC),
            }
        self.store.cooldowns.update(self._cooldowns)
        self.store.windows.update(self._windows)
        for step in self._steps:
            self.store.steps.append(dataclasses.replace(step, id=len(self.store.steps) + 1))
        self._emails.clear()
        self._steps.clear()
        self.committed = True

    async def rollback(self) -> None:
        if not self.committed:
            self.store.users.clear()
            self.store.users.update(self._users_before)
            self.store.sessions.clear()
            self.store.sessions.update(self._sessions_before)
        self._emails.clear()
        self._cooldowns.clear()
        self._windows.clear()
        self._steps.clear()


class FakeHasher:
    def __init__(self) -> None:
        self.hashed: list[str] = []
        self.verified: list[str] = []

    async def hash(self, password: str, *, like: str | None = None) -> str:
        self.hashed.append(password)
        return f"hashed:{password[::-1]}"

    async def check(
        self, password_hash: str | None, password: str, *, also: str | None = None
    ) -> str | None:
        self.verified.append(password)  # one computation, whatever matches
        computed = f"hashed:{password[::-1]}"
        if password_hash is not None and computed == password_hash:
            return "stored"
        if password_hash is not None and also is not None and computed == also:
            return "also"
        return None

    def needs_rehash(self, password_hash: str) -> bool:
        return password_hash.startswith("old:")


class FakeAddresses:
    def normalize(self, address: str) -> str:
        local, at, domain = address.strip().partition("@")
        if not at or not local or "." not in domain:
            raise errors.InvalidAddress("An email address must have an @-sign and a domain.")
        return f"{local}@{domain.lower()}"


class FakeSigner:
    """Readable tokens: ``purpose|issued_at|json``. Age is checked against the clock."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    def sign(self, purpose: str, payload: Mapping[str, Any]) -> str:
        return f"{purpose}|{self.clock.now().timestamp()}|{json.dumps(dict(payload))}"

    def unsign(self, purpose: str, token: str, *, max_age_seconds: int) -> dict[str, Any]:
        try:
            signed_purpose, issued, body = token.split("|", 2)
            payload = json.loads(body)
        except ValueError:
            raise errors.InvalidToken() from None
        if signed_purpose != purpose:
            raise errors.InvalidToken()
        if self.clock.now().timestamp() - float(issued) > max_age_seconds:
            raise errors.ExpiredToken()
        return dict(payload)


class FakeRenderer:
    def render(
        self, kind: emails.EmailKind, context: Mapping[str, Any], locale: str = "en"
    ) -> emails.RenderedEmail:
        return emails.RenderedEmail(
            subject=f"{kind.value}:{locale}", text=json.dumps(dict(context)), html=""
        )


class FakeMailer:
    def __init__(self) -> None:
        self.sent: list[emails.OutgoingEmail] = []
        self.failures: list[errors.DeliveryFailure] = []
        self.rehearsals = 0

    async def send(self, email: emails.OutgoingEmail) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(email)

    async def rehearse(self) -> None:
        self.rehearsals += 1
        if self.failures:
            raise self.failures.pop(0)


@dataclasses.dataclass
class World:
    store: Store
    clock: FakeClock
    hasher: FakeHasher
    signer: FakeSigner
    mailer: FakeMailer
    accounts: accounts.Accounts
    courier: delivery.Courier
    operations: operations.Operations


def world() -> World:
    store = Store()
    clock = FakeClock()
    store.clock = clock

    @asynccontextmanager
    async def uow() -> AsyncIterator[FakeUnitOfWork]:
        unit = FakeUnitOfWork(store)
        try:
            yield unit
        finally:
            await unit.rollback()

    hasher = FakeHasher()
    signer = FakeSigner(clock)
    mailer = FakeMailer()
    service = accounts.Accounts(
        uow=uow,
        hasher=hasher,
        addresses=FakeAddresses(),
        tokens=signer,
        clock=clock,
        policy=accounts.Policy(),
    )
    courier = delivery.Courier(
        uow=uow,
        tokens=signer,
        renderer=FakeRenderer(),
        mailer=mailer,
        clock=clock,
        public_url="https://herald.test",
    )
    ops = operations.Operations(
        uow=uow, clock=clock, admin_keys=operations.AdminKeys.of([ADMIN_KEY])
    )
    return World(store, clock, hasher, signer, mailer, service, courier, ops)
