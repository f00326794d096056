"""A run's cost: the site's overrides, then genai-prices; unknown is None, never 0."""

from __future__ import annotations

from decimal import Decimal

from guilds.agents.llm.pricing import run_cost


def test_a_known_model_is_priced_from_the_table_cached_tokens_cheaper():
    full = run_cost("gpt-4o-mini", input_tokens=1000, output_tokens=100)
    cached = run_cost("gpt-4o-mini", input_tokens=1000, output_tokens=100, cached_tokens=800)
    assert full is not None
    assert cached is not None
    assert Decimal(0) < cached < full


def test_an_unknown_model_or_missing_usage_has_no_cost():
    assert run_cost("house-model-7b", input_tokens=1000, output_tokens=100) is None
    assert run_cost("gpt-4o-mini", input_tokens=None, output_tokens=None) is None


def test_the_sites_override_wins(settings):
    settings.GUILDSITE_LLM_PRICES = {"house-model-7b": {"input": 1.0, "output": 2.0, "cached": 0.5},
                                     "gpt-4o-mini": {"input": 0, "output": 0}}
    assert run_cost("house-model-7b", input_tokens=1_000_000, output_tokens=500_000, cached_tokens=200_000) == \
        Decimal("0.8") + Decimal("0.1") + Decimal("1.0")
    assert run_cost("gpt-4o-mini", input_tokens=10, output_tokens=10) == Decimal(0)  # a site may say free
