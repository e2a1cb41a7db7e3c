"""Shared fixtures live in tests/fixtures/, one module per concern; this file only loads them."""

pytest_plugins = [
    "tests.fixtures.emulator",
    "tests.fixtures.redis",
    "tests.fixtures.servers",
    "tests.fixtures.backend",
    "tests.fixtures.labelstudio",
    "tests.fixtures.processes",
    "tests.fixtures.phases",
]
