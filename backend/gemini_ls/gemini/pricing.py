"""What a job's tokens cost, at the synchronous and at the Batch API rate.

USD per 1M tokens at the standard (synchronous) paid-tier rate, from Google's public price list
(ai.google.dev/gemini-api/docs/pricing, text/image input; output includes thinking tokens). The
Batch API bills 50 % of it. Override or extend with GEMINI_PRICES ("model=input:output,...") and
GEMINI_BATCH_DISCOUNT; a model matches the longest table entry its name starts with.

Input tokens served from an explicit context cache (few-shot examples, gemini/ctxcache.py) are billed
at CACHED_INPUT_RATIO of the input rate: Google's price list gives the cached rate as a tenth of the
input rate for every model it lists (2.5 Flash $0.03 against $0.30, 2.5 Pro $0.125 against $1.25 per
1M tokens; docs/gemini-facts.md#context-caching). A cache's storage is billed per 1M tokens per hour
(`storage_usd`). Gemini's promptTokenCount includes the cached tokens; `Tokens.cached` is that share.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gemini-2.0-flash-lite": (0.075, 0.30),
    "gemini-2.0-flash": (0.10, 0.40),
    "gemini-2.5-flash-lite": (0.10, 0.40),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.5-pro": (1.25, 10.00),
    "gemini-3-flash": (0.50, 3.00),
    "gemini-3-pro": (2.00, 12.00),
    "gemini-3.6-flash": (1.50, 7.50),  # docs/gemini-models.md "Prices" names the sources
    "gemini-3.8-flash": (0.75, 3.75),
}
BATCH_DISCOUNT = 0.5
CACHED_INPUT_RATIO = 0.10  # cached input tokens cost a tenth of the input rate (Google's price list)
# USD per 1M cached tokens per hour of storage: Pro $4.50, Flash (and Flash-Lite) $1.00 (price list, 2.5)
STORAGE_USD_PER_MTOK_HOUR: dict[str, float] = {"pro": 4.50, "flash": 1.00}


@dataclass(frozen=True)
class Tokens:
    prompt: int = 0
    output: int = 0
    thoughts: int = 0
    requests: int = 0
    cached: int = 0  # of `prompt`: input tokens served from a context cache, billed at CACHED_INPUT_RATIO

    def __add__(self, other: Tokens) -> Tokens:
        return Tokens(self.prompt + other.prompt, self.output + other.output, self.thoughts + other.thoughts,
                      self.requests + other.requests, self.cached + other.cached)


@dataclass(frozen=True)
class Cost:
    model: str
    tokens: Tokens
    sync_usd: float | None  # None: no price known for the model
    batch_usd: float | None

    def per_thousand(self, tasks: int) -> tuple[float | None, float | None]:
        if tasks <= 0:
            return None, None
        scale = 1000 / tasks
        return (None if self.sync_usd is None else self.sync_usd * scale,
                None if self.batch_usd is None else self.batch_usd * scale)

    def describe(self) -> str:
        t = self.tokens
        cached = f" ({t.cached} of them cached)" if t.cached else ""
        head = f"{t.requests} requests, {t.prompt} input{cached} + {t.output + t.thoughts} output tokens"
        if self.sync_usd is None or self.batch_usd is None:
            return f"{head}; no price known for {self.model} (set GEMINI_PRICES)"
        return f"{head}; ${self.batch_usd:.4f} at the batch rate (${self.sync_usd:.4f} synchronously)"


def price_for(model: str, overrides: Mapping[str, tuple[float, float]] | None = None) -> tuple[float, float] | None:
    name = model.strip().lower().rsplit("/", 1)[-1]
    table = {**DEFAULT_PRICES, **(overrides or {})}
    matches = [k for k in table if name.startswith(k.lower())]
    return table[max(matches, key=len)] if matches else None


def cost_of(model: str, tokens: Tokens, overrides: Mapping[str, tuple[float, float]] | None = None,
            discount: float = BATCH_DISCOUNT) -> Cost:
    price = price_for(model, overrides)
    if price is None:
        return Cost(model, tokens, None, None)
    return Cost(model, tokens, (sync := usd_of(price, tokens)), sync * discount)


def usd_of(price: tuple[float, float], tokens: Tokens) -> float:
    """Synchronous dollars of `tokens` at (input, output) USD per 1M: cached input at CACHED_INPUT_RATIO."""
    cached = min(max(0, tokens.cached), tokens.prompt)
    billed_input = (tokens.prompt - cached) + cached * CACHED_INPUT_RATIO
    return (billed_input * price[0] + (tokens.output + tokens.thoughts) * price[1]) / 1e6


def storage_usd(model: str, tokens: int, seconds: float) -> float:
    """What keeping `tokens` in a context cache for `seconds` costs (Pro or Flash storage rate)."""
    name = model.strip().lower().rsplit("/", 1)[-1]
    rate = STORAGE_USD_PER_MTOK_HOUR["pro" if "pro" in name else "flash"]
    return max(0, tokens) / 1e6 * rate * max(0.0, seconds) / 3600


def cost_by_model(usage: Mapping[str, Tokens], overrides: Mapping[str, tuple[float, float]] | None = None,
                  discount: float = BATCH_DISCOUNT) -> Cost:
    """A job's cost over the models its batches ran (one per model its requests are routed to); no
    price (None) as soon as one model's is unknown, so a sum is never silently partial."""
    costs = [cost_of(model, tokens, overrides, discount) for model, tokens in sorted(usage.items())]
    tokens = sum((c.tokens for c in costs), Tokens())
    name = " + ".join(c.model for c in costs) or "no model"
    if not costs or any(c.sync_usd is None for c in costs):
        return Cost(name, tokens, None, None) if costs else Cost(name, tokens, 0.0, 0.0)
    return Cost(name, tokens, sum(c.sync_usd or 0.0 for c in costs), sum(c.batch_usd or 0.0 for c in costs))


def parse_prices(raw: str) -> dict[str, tuple[float, float]]:
    """"gemini-2.5-flash=0.30:2.50,my-model=1:2" -> {model: (input, output)}; ValueError names the bad entry."""
    out: dict[str, tuple[float, float]] = {}
    for entry in (e.strip() for e in raw.split(",")):
        if not entry:
            continue
        model, sep, rates = entry.partition("=")
        inp, sep2, outp = rates.partition(":")
        try:
            if not (sep and sep2 and model.strip()):
                raise ValueError
            out[model.strip().lower()] = (float(inp), float(outp))
        except ValueError:
            raise ValueError(f"{entry!r} is not MODEL=INPUT:OUTPUT (USD per 1M tokens)") from None
    return out
