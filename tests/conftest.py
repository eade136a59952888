"""Fixtures shared by the end-to-end tests: a real broker and an operator on it.

A test that needs Mosquitto where it is not installed is skipped, not failed:
`start_mosquitto` raises `MosquittoMissing`, turned into a skip here.
"""

from __future__ import annotations

import pytest

from loaxa.testing.broker import MosquittoMissing, start_mosquitto
from loaxa.testing.station import Operator


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    """Fixtures (module-scoped ones too) that start a broker."""
    try:
        return (yield)
    except MosquittoMissing as exc:
        pytest.skip(str(exc))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Test bodies that start a broker."""
    try:
        return (yield)
    except MosquittoMissing as exc:
        pytest.skip(str(exc))


@pytest.fixture
def broker(tmp_path):
    """A Mosquitto of this test's own on a free loopback port."""
    b = start_mosquitto(tmp_path)
    yield b
    b.stop()


@pytest.fixture
def operator(broker):
    """A province-side client watching the test station's events and state."""
    op = Operator(broker.host, broker.port)
    yield op
    op.close()
