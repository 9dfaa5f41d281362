"""Helpers shared by the test modules, each module named after what it holds. A test module
imports its helpers from here, never from another test module or a conftest
(tests/unit/test_test_layout.py); the fixtures among them are registered in tests/conftest.py."""
