"""The page's Gemini panel and GET /api/gemini (docs/page.md): which model serves each request
kind, the quota windows in use against GEMINI_RPM / GEMINI_TPM and the 429 cool-downs (the shared
limiter's state in Redis, gemini/quota.py), the Files API cache hit rate and bytes saved and the
tokens and dollars of today (gemini/usage.py). Reads only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..gemini.daily import DailyUsage, DayUsage
from ..gemini.quota import QuotaWindow, SharedGate
from ..gemini.rategate import RateGate
from ..settings import Settings


@dataclass(frozen=True)
class ModelSpend:
    model: str
    requests: int
    input_tokens: int
    output_tokens: int  # thinking tokens included: they are billed as output
    cost_usd: float | None


@dataclass(frozen=True)
class GeminiPanel:
    routing: tuple[tuple[str, str], ...]  # (request kind, model)
    windows: tuple[QuotaWindow, ...]
    window_seconds: float
    process_cooldown: dict[str, Any] | None  # this process's gate (open / half-open), as /health says
    usage: DayUsage | None  # None: not counted (no Gemini configured)
    spend: tuple[ModelSpend, ...]
    cost_usd: float | None

    def to_json(self, settings: Settings) -> dict[str, Any]:
        return {
            "routing": dict(self.routing),
            "window_seconds": self.window_seconds,
            "quota": [{"model": w.model, "requests": w.requests, "rpm": w.rpm, "input_tokens": w.input_tokens, "tpm": w.tpm,
                       "cooldown_seconds": w.cooldown_seconds} for w in self.windows],
            "process_cooldown": self.process_cooldown,
            "today": self.usage.to_json(settings.price_overrides) if self.usage is not None else None,
        }


def gemini_panel(settings: Settings, gate: RateGate | None, usage: DailyUsage | None) -> GeminiPanel:
    """Raises redis.RedisError / OSError when the shared Redis does not answer (the caller says so)."""
    from ..gemini.pricing import cost_of

    by_kind = settings.routing.describe()["by_kind"]
    models = sorted(set(by_kind.values()))
    windows = gate.windows(models) if isinstance(gate, SharedGate) else [
        QuotaWindow(m, None, None, None, None, 0.0) for m in models]
    day = usage.today() if usage is not None else None
    spend = tuple(
        ModelSpend(m, t.requests, t.prompt, t.output + t.thoughts, cost_of(m, t, settings.price_overrides).sync_usd)
        for m, t in sorted(day.by_model.items())) if day is not None else ()
    return GeminiPanel(tuple(sorted(by_kind.items())), tuple(windows), settings.gemini_rate_window,
                       gate.status() if gate is not None else None, day, spend,
                       day.cost_usd(settings.price_overrides) if day is not None else None)
