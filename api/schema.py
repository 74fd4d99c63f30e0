"""The GraphQL schema, with its caches and limits."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import strawberry
from graphql import ASTValidationRule, GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxAliasesLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.extensions.context import StreamResultContextManager
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.types import ExecutionContext
from strawberry.utils.await_maybe import await_maybe

from api import fanout, operations, subscriptions, types
from api.mutations import (
    email_change,
    password_reset,
    register,
    resend_verification_email,
    session,
    verify_email,
)
from domain import users


def _password_policy() -> types.PasswordPolicy:
    return types.PasswordPolicy(
        min_length=users.PASSWORD_MIN_LENGTH, max_length=users.PASSWORD_MAX_LENGTH
    )


@strawberry.type
class Query:
    me: types.User | None = strawberry.field(
        resolver=session.me, description="The signed-in account; null without a valid session."
    )
    password_policy: types.PasswordPolicy = strawberry.field(
        resolver=_password_policy, description="The rules a new password must follow."
    )
    email_deliveries = strawberry.field(
        resolver=operations.email_deliveries,
        description="Admin only: the delivery record, newest first.",
    )
    email_delivery = strawberry.field(
        resolver=operations.email_delivery, description="Admin only: one delivery by id."
    )
    delivery_stats = strawberry.field(
        resolver=operations.delivery_stats,
        description="Admin only: deliveries of the last hour and day, by status.",
    )


@strawberry.type
class Mutation:
    register = strawberry.mutation(
        resolver=register.register,
        description="Create an account and send its verification email.",
    )
    verify_email = strawberry.mutation(
        resolver=verify_email.verify_email,
        description="Confirm an address with the token from the verification email.",
    )
    resend_verification_email = strawberry.mutation(
        resolver=resend_verification_email.resend_verification_email,
        description="Send a new verification link (at most one per address a minute).",
    )
    sign_in = strawberry.mutation(
        resolver=session.sign_in,
        description="Start a session for a verified account.",
    )
    sign_out = strawberry.mutation(
        resolver=session.sign_out, description="End the current session."
    )
    request_password_reset = strawberry.mutation(
        resolver=password_reset.request_password_reset,
        description="Email a link to choose a new password (answered the same for every address).",
    )
    reset_password = strawberry.mutation(
        resolver=password_reset.reset_password,
        description="Choose a new password with the emailed link's token; ends every session.",
    )
    request_email_change = strawberry.mutation(
        resolver=email_change.request_email_change,
        description="Signed in: move the account to another address, once that address confirms.",
    )
    confirm_email_change = strawberry.mutation(
        resolver=email_change.confirm_email_change,
        description="Confirm a new address with the token from the emailed link.",
    )
    retry_email_delivery = strawberry.mutation(
        resolver=operations.retry_email_delivery,
        description="Admin only: queue a failed delivery again.",
    )


@strawberry.type
class Subscription:
    registration_events: AsyncGenerator[subscriptions.RegistrationEvent, None] = (
        strawberry.subscription(
            resolver=subscriptions.registration_events,
            description=(
                "Each step of one registration: those so far, then live, "
                "ending after EmailVerified."
            ),
        )
    )


@dataclass(frozen=True)
class Limits:
    max_depth: int = 10
    max_tokens: int = 1000
    max_aliases: int = 15


class _Limits(AddValidationRules):
    """The token limit (as ``MaxTokensLimiter``) and the limit rules, as one
    extension: every extension costs a little on each subscription event."""

    def __init__(self, rules: list[type[ASTValidationRule]], *, max_tokens: int) -> None:
        super().__init__(rules)
        self.max_tokens = max_tokens

    def on_operation(self) -> Iterator[None]:
        self.execution_context.parse_options["max_tokens"] = self.max_tokens
        yield from super().on_operation()


def _unexpected(error: GraphQLError) -> bool:
    # Syntax, validation and limit errors carry no original exception and are
    # the client's to read; anything raised inside a resolver is a server
    # fault whose text (SQL, paths) must not leave the server.
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


class _LeanRunner(SchemaExtensionsRunner):
    """Per subscription event, strawberry asks every extension for results and
    opens a stream-result hook on each; Herald's extensions have neither, and
    for 200 subscribers of one registration that was a tenth of the event
    loop (bench.subscriptions). Only extensions that define them are asked."""

    def __init__(
        self, execution_context: ExecutionContext, extensions: list[SchemaExtension] | None = None
    ) -> None:
        super().__init__(execution_context, extensions)
        self._with_results = [
            e for e in self.extensions if type(e).get_results is not SchemaExtension.get_results
        ]
        self._on_stream = [
            e
            for e in self.extensions
            if type(e).on_stream_result is not SchemaExtension.on_stream_result
        ]

    async def get_extensions_results(self, ctx: ExecutionContext) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for extension in self._with_results:
            data.update(await await_maybe(extension.get_results()))
        data.update(ctx.extensions_results)
        return data

    def on_stream_result(self, result: Any) -> Any:
        hooks = self._on_stream
        if hooks and not getattr(result, "errors", None):
            # Masking only ever changes a result's errors: a result without
            # any (every shared step) skips it, and its context manager.
            hooks = [e for e in hooks if not isinstance(e, MaskErrors)]
        if not hooks:
            return contextlib.nullcontext()
        return StreamResultContextManager(hooks, result)


class _HeraldSchema(strawberry.Schema):
    def create_extensions_runner(
        self, execution_context: ExecutionContext, extensions: list[SchemaExtension]
    ) -> SchemaExtensionsRunner:
        return _LeanRunner(execution_context, extensions)


def create_schema(limits: Limits = Limits(), *, mask_errors: bool = True) -> strawberry.Schema:
    # Factories, as strawberry asks: a fresh extension per request. The limit
    # rules are built once here: the validation cache is keyed by the rule
    # classes, and limiters built per request would make every key new.
    rules = [
        *QueryDepthLimiter(max_depth=limits.max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=limits.max_aliases).validation_rules,
    ]
    extensions: list[type[SchemaExtension] | Callable[[], SchemaExtension]] = [
        lambda: ParserCache(maxsize=256),
        lambda: _Limits(rules, max_tokens=limits.max_tokens),
        lambda: ValidationCache(maxsize=256),
    ]
    if mask_errors:
        extensions.append(
            lambda: fanout.LightMaskErrors(
                should_mask_error=_unexpected,
                error_message="Internal server error; the request was not completed.",
            )
        )
    return _HeraldSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        execution_context_class=fanout.SharedEventExecutionContext,
    )
