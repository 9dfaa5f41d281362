"""The instant the tests' clock starts at, and is set back to before each test."""
from __future__ import annotations

from datetime import datetime, timezone

START = datetime(2026, 11, 10, 12, 0, tzinfo=timezone.utc)
