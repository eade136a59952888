"""Fixtures shared by the end-to-end tests: a real broker and an operator on it."""

from __future__ import annotations

import pytest

from brokers import start_mosquitto
from stations import Operator


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
