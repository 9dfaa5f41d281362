"""The test suite. The helpers shared by its modules live in tests/support: plain modules, whose
asserts pytest rewrites too (registered here, before any of them is imported), so a helper's
failing assert says what it compared."""
import pytest

pytest.register_assert_rewrite("tests.support")
