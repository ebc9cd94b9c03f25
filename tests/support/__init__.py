"""What tests share besides fixtures: plain modules, imported by name wherever they are needed.

Fixtures live in conftest.py files (those several folders use in tests/conftest.py); a test never
imports another folder's conftest."""
