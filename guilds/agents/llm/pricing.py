"""What a run cost, in USD: the site's overrides (GUILDSITE_LLM_PRICES) first, then genai-prices' table.

An unknown model or missing token counts give None, never 0: a free-looking run that was not free would
mislead whoever reads the bill.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from django.conf import settings
from genai_prices import Usage, calc_price

logger = logging.getLogger(__name__)
PER_MILLION = Decimal(1_000_000)


def run_cost(model: str, *, input_tokens: int | None, output_tokens: int | None,
             cached_tokens: int | None = None) -> Decimal | None:
    if not model or input_tokens is None or output_tokens is None:
        return None
    cached = cached_tokens or 0
    override = settings.GUILDSITE_LLM_PRICES.get(model)
    if override is not None:
        # Prompt tokens include the cached ones (OpenAI's usage); those cost the cached price where given.
        cached_price = Decimal(str(override.get("cached", override["input"])))
        return ((Decimal(input_tokens - cached) * Decimal(str(override["input"])) + Decimal(cached) * cached_price
                 + Decimal(output_tokens) * Decimal(str(override["output"]))) / PER_MILLION)
    try:
        usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens, cache_read_tokens=cached or None)
        return Decimal(calc_price(usage, model_ref=model).total_price)
    except LookupError:
        return None
    except Exception:  # a price table problem must not fail the run
        logger.exception("pricing failed", extra={"model": model})
        return None
