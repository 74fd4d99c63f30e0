"""Bad input gets a precise error, never a 500 or a stack trace, and the server stays up."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Herald, StartHerald
from tests.e2e.test_signup import REGISTER


@pytest.fixture
def herald(start_herald: StartHerald) -> Herald:
    return start_herald(worker=False)


def post(herald: Herald, body: Any, **headers: str) -> httpx.Response:
    content = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return httpx.post(
        f"{herald.base_url}/graphql",
        content=content,
        headers={"content-type": "application/json", **headers},
        timeout=30,
    )


def only_error(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["data"] is None
    [error] = body["errors"]
    return str(error["message"])


@pytest.mark.parametrize(
    ("query", "variables", "expected"),
    [
        ("mutation { register(input: {email:", {}, "Syntax Error"),
        (
            'mutation { register(input: {email: 1, password: "x"}) { __typename } }',
            {},
            "String cannot represent",
        ),
        (
            REGISTER,
            {"email": 5, "password": "correct horse"},
            "Variable '$email' has invalid value",
        ),
        (REGISTER, {"password": "correct horse"}, "Expected a value of non-null type 'String!'"),
        ("{ passwordPolicy { minLength } doesNotExist }", {}, "Cannot query field 'doesNotExist'"),
    ],
)
def test_malformed_and_mistyped_requests_get_precise_errors(
    herald: Herald, query: str, variables: dict[str, Any], expected: str
) -> None:
    assert expected in only_error(post(herald, {"query": query, "variables": variables}))


def test_a_query_deeper_than_the_limit_is_refused(start_herald: StartHerald) -> None:
    shallow = start_herald(worker=False, GRAPHQL_MAX_DEPTH=1)
    deep = 'mutation { verifyEmail(token: "x") { ... on VerifyEmailSuccess { user { id } } } }'
    assert "exceeds maximum operation depth of 1" in only_error(post(shallow, {"query": deep}))


def test_too_many_aliases_are_refused(herald: Herald) -> None:
    aliases = " ".join(f"a{i}: passwordPolicy {{ minLength }}" for i in range(16))
    assert "aliases" in only_error(post(herald, {"query": f"{{ {aliases} }}"}))


def test_a_huge_body_is_refused_before_parsing(herald: Herald) -> None:
    body = {"query": REGISTER, "variables": {"email": "a@example.com", "password": "x" * 200_000}}
    response = post(herald, body)
    assert response.status_code == 413
    assert response.json() == {"errors": [{"message": "Request body is larger than 65536 bytes."}]}


def test_a_long_password_or_address_is_a_field_error(herald: Herald) -> None:
    data = post(
        herald,
        {
            "query": REGISTER,
            "variables": {"email": "a" * 5000 + "@example.com", "password": "y" * 1000},
        },
    ).json()["data"]["register"]
    assert data["__typename"] == "InvalidInput"
    assert {f["field"] for f in data["fields"]} == {"email", "password"}


def test_a_body_that_is_not_json_is_a_clear_400(herald: Herald) -> None:
    response = post(herald, "this is not json")
    assert response.status_code == 400 and "JSON" in response.text


def test_an_unexpected_failure_is_masked_and_the_server_stays_up(herald: Herald) -> None:
    herald.sql("ALTER TABLE users RENAME TO users_gone")
    message = only_error(
        post(
            herald,
            {
                "query": REGISTER,
                "variables": {"email": "a@example.com", "password": "correct horse"},
            },
        )
    )
    assert message == "Internal server error; the request was not completed."
    herald.sql("ALTER TABLE users_gone RENAME TO users")
    assert "users_gone" not in message and "Traceback" not in message
    assert httpx.get(f"{herald.base_url}/healthz", timeout=10).status_code == 200
    # The operator still sees what happened.
    assert "users" in herald.log("serve")
    ok = post(
        herald,
        {"query": REGISTER, "variables": {"email": "a@example.com", "password": "correct horse"}},
    )
    assert ok.json()["data"]["register"]["__typename"] == "RegisterSuccess"


def test_graphiql_is_off_unless_enabled(herald: Herald, start_herald: StartHerald) -> None:
    assert (
        httpx.get(f"{herald.base_url}/graphql", headers={"accept": "text/html"}).status_code == 404
    )
    explorer = start_herald(worker=False, GRAPHIQL_ENABLED="true")
    page = httpx.get(f"{explorer.base_url}/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200 and "GraphiQL" in page.text


def test_the_verify_page_runs_only_its_own_script(herald: Herald) -> None:
    page = httpx.get(f"{herald.base_url}/verify-email?token=abc", timeout=10)
    policy = page.headers["content-security-policy"]
    assert "script-src 'sha256-" in policy and "default-src 'none'" in policy
    assert page.headers["cache-control"] == "no-store"
    # The token is read by the script from the URL, never written into the page.
    assert "abc" not in page.text


def test_only_listed_origins_may_call_from_a_browser(start_herald: StartHerald) -> None:
    herald = start_herald(worker=False, ALLOWED_ORIGINS="https://app.example.com")
    preflight = {
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type",
    }
    allowed = httpx.options(
        f"{herald.base_url}/graphql", headers={"origin": "https://app.example.com", **preflight}
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    refused = httpx.options(
        f"{herald.base_url}/graphql", headers={"origin": "https://evil.example.net", **preflight}
    )
    assert "access-control-allow-origin" not in refused.headers
