"""The parser and validation caches are hit by a repeated document, limits included."""

from __future__ import annotations

from strawberry.extensions import parser_cache, validation_cache

from api.schema import Limits, create_schema

QUERY = "{ passwordPolicy { minLength maxLength } }"


async def test_a_repeated_document_is_parsed_and_validated_once() -> None:
    schema = create_schema(Limits(max_depth=7, max_aliases=3))
    parses = parser_cache._get_parse_cache(256)
    validations = validation_cache._get_validate_cache(256)
    parses.cache_clear()
    validations.cache_clear()
    for _ in range(5):
        result = await schema.execute(QUERY)
        assert result.errors is None
    assert (parses.cache_info().misses, parses.cache_info().hits) == (1, 4)
    assert (validations.cache_info().misses, validations.cache_info().hits) == (1, 4)
