"""gemini/usage.py: today's counts per model and of the Files API cache, parsed back from the hash
layout Redis holds (the in-memory counter keeps the same fields)."""

from __future__ import annotations

from gemini_ls.gemini.daily import DailyUsage, parse_day


def test_counts_per_model_and_files_cache_per_utc_day():
    now = [1_780_000_000.0]  # 2026-05-28 UTC
    usage = DailyUsage(wall=lambda: now[0])
    usage.record_call("gemini-2.5-flash", 1000, 100, 50)
    usage.record_call("gemini-2.5-flash", 500, 0, 0)
    usage.record_call("models/gemini-2.5-pro", 10, 1, 0)
    usage.record_file_lookup(True, 2048)
    usage.record_file_lookup(False, 4096)
    day = usage.today()
    assert day.day == "2026-05-28"
    flash = day.by_model["gemini-2.5-flash"]
    assert (flash.prompt, flash.output, flash.thoughts, flash.requests) == (1500, 100, 50, 2)
    assert day.by_model["models/gemini-2.5-pro"].requests == 1
    assert (day.files_hits, day.files_misses, day.files_bytes_saved, day.files_hit_rate) == (1, 1, 2048, 0.5)
    cost = day.cost_usd({"gemini-2.5-flash": (1.0, 10.0), "gemini-2.5-pro": (2.0, 20.0)})
    assert cost is not None and abs(cost - (1500 * 1.0 + 150 * 10.0 + 10 * 2.0 + 1 * 20.0) / 1e6) < 1e-12
    now[0] += 86400  # a new UTC day starts from nothing
    assert usage.today().by_model == {} and usage.today().files_hit_rate is None


def test_parse_day_reads_the_redis_hash_with_bytes_keys():
    day = parse_day("2026-05-28", {b"tokens:gemini-x:input": b"7", b"requests:gemini-x": b"1", b"files:hit": b"2"})
    assert day.by_model["gemini-x"].prompt == 7 and day.files_hits == 2 and day.to_json()["files_cache"]["hit_rate"] == 1.0
