"""The price table and GEMINI_PRICES."""

from __future__ import annotations

import pytest

from gemini_ls.gemini.pricing import Tokens, cost_by_model, cost_of, parse_prices, price_for
from gemini_ls.settings import Settings, SettingsError


def test_prices_match_the_longest_prefix_and_overrides_win():
    assert price_for("models/gemini-2.5-flash-lite-preview-09-2025") == (0.10, 0.40)
    assert price_for("gemini-2.5-flash") == (0.30, 2.50)
    assert price_for("gemini-2.5-flash", {"gemini-2.5-flash": (1.0, 2.0)}) == (1.0, 2.0)
    assert price_for("some-other-model") is None


def test_cost_at_sync_and_batch_rates():
    cost = cost_of("gemini-2.5-flash", Tokens(prompt=1_000_000, output=100_000, thoughts=100_000, requests=10))
    assert cost.sync_usd == pytest.approx(0.30 + 0.2 * 2.50)
    assert cost.batch_usd == pytest.approx(cost.sync_usd / 2)
    assert cost.per_thousand(500) == pytest.approx((cost.sync_usd * 2, cost.batch_usd * 2))
    assert "at the batch rate" in cost.describe()
    unknown = cost_of("mystery", Tokens(prompt=5))
    assert unknown.sync_usd is None and "set GEMINI_PRICES" in unknown.describe()


def test_a_jobs_cost_sums_its_models_and_is_unknown_when_one_price_is():
    usage = {"gemini-2.5-flash-lite": Tokens(prompt=1_000_000, requests=1), "gemini-3.6-flash": Tokens(output=1_000_000, requests=1)}
    cost = cost_by_model(usage)
    assert cost.sync_usd == pytest.approx(0.10 + 7.50) and cost.batch_usd == pytest.approx((0.10 + 7.50) / 2)
    assert cost.tokens == Tokens(prompt=1_000_000, output=1_000_000, requests=2)
    assert cost.model == "gemini-2.5-flash-lite + gemini-3.6-flash"
    partial = cost_by_model({**usage, "mystery": Tokens(prompt=1)})
    assert partial.sync_usd is None and "set GEMINI_PRICES" in partial.describe()
    assert cost_by_model({}).sync_usd == 0.0


def test_price_overrides_from_env():
    settings = Settings.from_env({"GEMINI_PRICES": "gemini-2.5-flash=1:2, mine=0.5:0.75"})
    assert settings.prices == (("gemini-2.5-flash", 1.0, 2.0), ("mine", 0.5, 0.75))
    assert parse_prices("") == {}
    with pytest.raises(SettingsError, match="GEMINI_PRICES: 'oops' is not MODEL=INPUT:OUTPUT"):
        Settings.from_env({"GEMINI_PRICES": "oops"})
    with pytest.raises(SettingsError):
        Settings.from_env({"GEMINI_PRICES": "m=1:x"})
