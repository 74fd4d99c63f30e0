"""The checked-in SDL is the schema the code serves."""

from __future__ import annotations

from pathlib import Path

from api.schema import create_schema

SDL = Path(__file__).resolve().parents[2] / "schema.graphql"


def test_schema_graphql_matches_the_code() -> None:
    assert SDL.read_text() == str(create_schema()) + "\n", (
        "schema.graphql is out of date: run `.venv/bin/herald export-schema`"
    )


def test_the_contract_names_are_served() -> None:
    sdl = str(create_schema())
    for fragment in (
        "register(input: RegisterInput!): RegisterResult!",
        "verifyEmail(token: String!): VerifyEmailResult!",
        "resendVerificationEmail(email: String!): ResendVerificationEmailResult!",
        "union RegisterResult = RegisterSuccess | InvalidInput | RateLimited",
        "union VerifyEmailResult = VerifyEmailSuccess | InvalidToken | ExpiredToken",
        "union ResendVerificationEmailResult = "
        "ResendVerificationEmailSuccess | InvalidInput | RateLimited",
    ):
        assert fragment in sdl
