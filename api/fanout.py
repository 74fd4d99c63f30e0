"""One step, many watchers: execute and serialise a subscription event once.

Every subscriber of a registration receives the same step object from the
hub. For subscribers that also sent the same document and variables (the
common case: several tabs or devices on one sign-up), the selection set is
executed once per step and its JSON written once; each subscriber then only
frames its own message. Results are shared only when they carry no errors.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

from graphql import ExecutionResult, OperationType
from strawberry.extensions import MaskErrors
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

SHARED = "_herald_shared_results"


def shareable(event: Any) -> Any:
    """Mark an event object so that its executions may be shared."""
    setattr(event, SHARED, {})
    return event


def _frozen(values: Any) -> Hashable | None:
    coerced = getattr(values, "coerced", values)
    try:
        frozen = tuple(sorted(coerced.items()))
        hash(frozen)
    except (TypeError, AttributeError):
        return None
    return frozen


class _Done:
    """Stands in for a per-event executor when the result is already known."""

    def __init__(self, result: ExecutionResult) -> None:
        self.result = result

    def execute_operation(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        return self.result


class SharedEventExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def _shared(
        self, payload: Any
    ) -> tuple[dict[Hashable, tuple[Any, ExecutionResult]], Hashable] | None:
        shared = getattr(payload, SHARED, None)
        variables = _frozen(self.variable_values)
        if (
            shared is None
            or variables is None
            or self.operation.operation is not OperationType.SUBSCRIPTION
        ):
            return None
        # The parser cache hands every identical document the same node, so
        # the node's identity stands for the document.
        return shared, (id(self.operation), variables)

    def build_per_event_executor(self, payload: Any) -> Any:
        found = self._shared(payload)
        if found is not None:
            shared, key = found
            hit = shared.get(key)
            if hit is not None and hit[0] is self.operation:
                return _Done(hit[1])  # no copy of the executor, no execution
        return super().build_per_event_executor(payload)

    def execute_operation(self, *args: Any, **kwargs: Any) -> Any:
        result = super().execute_operation(*args, **kwargs)
        found = self._shared(self.root_value)
        if found is not None and isinstance(result, ExecutionResult) and not result.errors:
            shared, key = found
            shared[key] = (self.operation, result)
        return result


class LightMaskErrors(MaskErrors):
    """MaskErrors without a runtime-protocol check on every streamed result,
    which cost more than the rest of a shared event's handling."""

    def _process_result(self, result: object) -> None:
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._process_errors(errors)  # type: ignore[attr-defined]


class NextMessageEncoder:
    """JSON for protocol messages, reusing the payload text of shared results."""

    def __init__(self, size: int = 256) -> None:
        self._texts: OrderedDict[int, tuple[object, str]] = OrderedDict()
        self.size = size

    def encode(self, message: object) -> str:
        if not (isinstance(message, dict) and message.get("type") in {"next", "data"}):
            return json.dumps(message, separators=(",", ":"))
        payload = message["payload"]
        data = payload.get("data") if isinstance(payload, dict) else None
        if data is None or set(payload) != {"data"}:
            return json.dumps(message, separators=(",", ":"))
        cached = self._texts.get(id(data))
        if cached is not None and cached[0] is data:
            text = cached[1]
        else:
            text = json.dumps(payload, separators=(",", ":"))
            self._texts[id(data)] = (data, text)  # holding data keeps its id unique
            if len(self._texts) > self.size:
                self._texts.popitem(last=False)
        return f'{{"id":{json.dumps(message["id"])},"type":"{message["type"]}","payload":{text}}}'
