"""The composition root: the one place that builds Herald's parts from settings.

The API's lifespan, the worker and the tests all call ``build``; nothing here
runs at import time, and nothing connects until a request needs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import procrastinate
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from domain import accounts, delivery, operations
from infra import addresses, db, jobs, live, mailer, passwords, rendering, tokens, unit_of_work
from infra.settings import Settings


@dataclass
class Container:
    settings: Settings
    engine: AsyncEngine
    queue: procrastinate.App
    accounts: accounts.Accounts
    operations: operations.Operations
    courier: delivery.Courier
    hasher: passwords.Argon2Hasher
    mailer: mailer.SmtpMailer
    hub: live.RegistrationHub

    async def database_ready(self) -> bool:
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    def register_tasks(self) -> None:
        jobs.register_tasks(
            self.queue,
            courier=self.courier,
            sweep_cron=self.settings.email_sweep_cron,
            sweep_min_age=timedelta(seconds=self.settings.email_sweep_min_age_seconds),
            stalled_seconds=self.settings.worker_stalled_seconds,
            retention_hours=self.settings.job_retention_hours,
        )

    async def close(self) -> None:
        await self.hub.close()
        await self.mailer.close()
        self.hasher.close()
        await self.engine.dispose()


def build(settings: Settings) -> Container:
    engine = db.create_engine(settings.database_url, pool_size=settings.db_pool_size)
    queue = jobs.create_app(settings.database_url)
    clock = unit_of_work.SystemClock()
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    uow = unit_of_work.UnitOfWorkFactory(
        sessions,
        app=queue if settings.job_queue_enabled else None,
        clock=clock,
        mail_domain=settings.mail_domain,
    )
    # The worker always queues: JOB_QUEUE_ENABLED only stops the API from
    # deferring, and the worker's sweep is what catches up afterwards.
    worker_uow = unit_of_work.UnitOfWorkFactory(
        sessions, app=queue, clock=clock, mail_domain=settings.mail_domain
    )
    # The same pool, each statement committed as it runs: no BEGIN and COMMIT
    # round trips around a step that is one statement.
    single_statements = unit_of_work.UnitOfWorkFactory(
        async_sessionmaker(
            engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
        ),
        app=None,
        clock=clock,
        mail_domain=settings.mail_domain,
    )
    signer = tokens.TokenSigner(settings.secret_keys)
    hasher = passwords.Argon2Hasher(
        time_cost=settings.password_hash_time_cost,
        memory_kib=settings.password_hash_memory_kib,
        threads=settings.password_hash_threads,
        max_waiting=settings.password_hash_max_waiting,
    )
    service = accounts.Accounts(
        uow=uow,
        hasher=hasher,
        addresses=addresses.AddressValidator(),
        tokens=signer,
        clock=clock,
        policy=accounts.Policy(
            email_verification_max_age=settings.email_verification_max_age,
            registration_token_max_age=settings.registration_token_max_age,
            email_cooldown_seconds=settings.email_cooldown_seconds,
            hourly_email_cap=settings.email_hourly_cap,
            emails_per_minute=settings.emails_per_minute,
            session_max_age=settings.session_max_age,
            password_reset_max_age=settings.password_reset_max_age,
            email_change_max_age=settings.email_change_max_age,
            sign_in_window_seconds=settings.sign_in_window_seconds,
            sign_in_failures_per_account=settings.sign_in_failures_per_account,
            sign_in_failures_per_client=settings.sign_in_failures_per_client,
        ),
    )
    smtp = mailer.SmtpMailer(
        host=settings.smtp_host,
        port=settings.smtp_port,
        security=settings.smtp_security,
        mail_from=settings.mail_from,
        username=settings.smtp_username,
        password=settings.smtp_password,
        timeout=settings.smtp_timeout,
        pool_size=settings.smtp_pool_size,
    )
    courier = delivery.Courier(
        uow=worker_uow,
        single_statement=single_statements,
        tokens=signer,
        renderer=rendering.JinjaRenderer(),
        mailer=smtp,
        clock=clock,
        public_url=settings.public_url,
        verification_max_age=settings.email_verification_max_age,
        password_reset_max_age=settings.password_reset_max_age,
        email_change_max_age=settings.email_change_max_age,
        backoff=delivery.Backoff(
            base_seconds=settings.email_retry_base_seconds,
            max_seconds=settings.email_retry_max_seconds,
            max_attempts=settings.email_max_attempts,
        ),
        lease_seconds=settings.email_send_lease_seconds,
    )
    return Container(
        settings=settings,
        engine=engine,
        queue=queue,
        accounts=service,
        operations=operations.Operations(
            uow=uow, clock=clock, admin_keys=operations.AdminKeys.of(settings.admin_api_keys)
        ),
        courier=courier,
        hasher=hasher,
        mailer=smtp,
        hub=live.RegistrationHub(
            database_url=settings.database_url,
            engine=engine,
            queue_size=settings.subscription_queue_size,
        ),
    )
