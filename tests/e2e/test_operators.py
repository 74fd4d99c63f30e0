"""The operator's view over real HTTP, with ``herald serve``, ``herald worker`` and SMTP:
a permanent failure shows up with its code, and a retry delivers it."""

from __future__ import annotations

import time
from typing import Any

from tests import support
from tests.e2e.conftest import Herald, ScriptedSink, StartHerald
from tests.e2e.test_signup import REGISTER

DELIVERIES = """
query Deliveries($status: DeliveryStatus, $after: String) {
  emailDeliveries(status: $status, first: 10, after: $after) {
    edges { cursor node { id kind status recipient attempts manualRetries
                          lastSmtpCode lastError sentAt } }
    pageInfo { hasNextPage endCursor }
  }
}"""

DELIVERY = "query One($id: ID!) { emailDelivery(id: $id) { status attempts manualRetries } }"

STATS = """{ deliveryStats {
  lastHour { queued sending sent failed suppressed total }
  lastDay { failed total } } }"""

RETRY = """
mutation Retry($id: ID!) {
  retryEmailDelivery(id: $id) {
    __typename
    ... on RetryEmailDeliverySuccess { delivery { status attempts manualRetries } }
    ... on DeliveryNotFound { message }
    ... on DeliveryNotRetryable { message status }
  }
}"""


def admin(herald: Herald, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    return herald.graphql(query, variables, bearer=support.ADMIN_KEY)


def wait_for_status(herald: Herald, delivery_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        found = admin(herald, DELIVERY, {"id": delivery_id})["emailDelivery"]
        if found["status"] == status:
            return found
        assert time.monotonic() < deadline, f"delivery stayed {found}"
        time.sleep(0.1)


def test_without_an_admin_key_every_operator_field_is_forbidden_and_reveals_nothing(
    start_herald: StartHerald,
) -> None:
    herald = start_herald(worker=False)
    herald.graphql(REGISTER, {"email": "ann@example.com", "password": "correct horse"})
    [(delivery_id,)] = herald.sql("SELECT id::text FROM email_deliveries")
    for key in (None, "wrong-" + "k" * 40, support.SECRET):
        for query, variables in (
            (DELIVERIES, {}),
            (DELIVERY, {"id": delivery_id}),
            (STATS, {}),
            (RETRY, {"id": delivery_id}),
        ):
            body = herald.post(query, variables, bearer=key)
            [error] = body["errors"]
            assert error["extensions"] == {"code": "FORBIDDEN"}, body
            assert "Authorization: Bearer" in error["message"]
            assert body["data"] is None or all(v is None for v in body["data"].values()), body
            assert "ann@" not in str(body)


def test_a_permanent_failure_is_listed_and_an_operator_retry_delivers_it(
    start_herald: StartHerald, sink: ScriptedSink
) -> None:
    sink.script = ["550 5.1.1 mailbox unavailable"]
    herald = start_herald()
    herald.graphql(REGISTER, {"email": "ann@example.com", "password": "correct horse"})
    herald.graphql(REGISTER, {"email": "bob@example.com", "password": "correct horse"})
    sink.wait_for(1)

    failed = admin(herald, DELIVERIES, {"status": "FAILED"})["emailDeliveries"]
    deadline = time.monotonic() + 30
    while not failed["edges"]:
        assert time.monotonic() < deadline, "no delivery failed"
        time.sleep(0.1)
        failed = admin(herald, DELIVERIES, {"status": "FAILED"})["emailDeliveries"]
    [edge] = failed["edges"]
    node = edge["node"]
    assert node["kind"] == "VERIFY_EMAIL" and node["attempts"] == 1
    assert (node["lastSmtpCode"], node["lastError"]) == (550, "5.1.1 mailbox unavailable")
    assert failed["pageInfo"] == {"hasNextPage": False, "endCursor": edge["cursor"]}
    [sent] = sink.messages
    assert {node["recipient"], *sent.recipients} == {"ann@example.com", "bob@example.com"}

    stats = admin(herald, STATS)["deliveryStats"]
    assert stats["lastHour"] == {
        "queued": 0,
        "sending": 0,
        "sent": 1,
        "failed": 1,
        "suppressed": 0,
        "total": 2,
    }
    assert stats["lastDay"] == {"failed": 1, "total": 2}

    # A delivery that did not fail cannot be retried; an unknown one is not found.
    everything = admin(herald, DELIVERIES)["emailDeliveries"]["edges"]
    [sent_id] = [e["node"]["id"] for e in everything if e["node"]["status"] == "SENT"]
    refused = admin(herald, RETRY, {"id": sent_id})["retryEmailDelivery"]
    assert refused["__typename"] == "DeliveryNotRetryable" and refused["status"] == "SENT"
    missing = admin(herald, RETRY, {"id": "00000000-0000-0000-0000-000000000000"})
    assert missing["retryEmailDelivery"]["__typename"] == "DeliveryNotFound"

    retried = admin(herald, RETRY, {"id": node["id"]})["retryEmailDelivery"]
    assert retried == {
        "__typename": "RetryEmailDeliverySuccess",
        "delivery": {"status": "QUEUED", "attempts": 0, "manualRetries": 1},
    }
    done = wait_for_status(herald, node["id"], "SENT")
    assert done == {"status": "SENT", "attempts": 1, "manualRetries": 1}
    messages = sink.wait_for(2)
    assert sorted(r for m in messages for r in m.recipients) == [
        "ann@example.com",
        "bob@example.com",
    ]
    again = admin(herald, RETRY, {"id": node["id"]})["retryEmailDelivery"]
    assert again["__typename"] == "DeliveryNotRetryable"
    time.sleep(0.5)
    assert len(sink.messages) == 2
