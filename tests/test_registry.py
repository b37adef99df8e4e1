import pytest

from attn_har.registry import lookup


def test_lookup_returns_entry():
  assert lookup({"a": 1, "b": 2}, "b", "thing") == 2


def test_lookup_unknown_names_valid_choices():
  with pytest.raises(KeyError, match=r"unknown thing 'c'.*'a', 'b'"):
    lookup({"b": 2, "a": 1}, "c", "thing")
