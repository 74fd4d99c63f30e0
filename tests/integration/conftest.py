from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from infra import bootstrap
from tests import support


@pytest.fixture
async def container(database_url: str) -> AsyncIterator[bootstrap.Container]:
    built = bootstrap.build(support.settings(database_url))
    yield built
    await built.close()
