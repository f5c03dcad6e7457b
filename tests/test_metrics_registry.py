"""Tests of metrics/registry.py: protocol names carry their protocol."""

from __future__ import annotations

import pytest

from exprbench.errors import RegistryError
from exprbench.metrics.registry import PROTOCOLS, default_protocols, format_count, parse_count, resolve_protocol


def test_default_set():
    names = default_protocols()
    for n in ("fid10k_train", "kid10k_train", "pr10k_train", "ifid_train", "acc_gen", "cas"):
        assert n in names
    assert PROTOCOLS.get("ifid_train").needs == {"sample", "conditional"}
    assert PROTOCOLS.get("fid10k_train").needs == {"sample"}


def test_counts_in_names():
    assert resolve_protocol("fid1k_train").n_samples == 1000
    assert resolve_protocol("kid2500_train").name == "kid2500_train"
    assert resolve_protocol("fid10k_train").with_n(1000).name == "fid1k_train"
    assert resolve_protocol("ifid_train").with_n(2000).name == "ifid2k_train"
    assert resolve_protocol("acc_gen").with_n(700).name == "acc_gen700"
    assert resolve_protocol("cas").with_n(7000).name == "cas"  # the default count keeps the name
    assert format_count(10000) == "10k" and parse_count("10k") == 10000 and format_count(2500) == "2500"


def test_seeds_fixed_and_distinct():
    p = [PROTOCOLS.get(n) for n in ("fid10k_train", "ifid_train", "acc_gen", "cas")]
    assert len({x.seed for x in p}) == 4
    assert resolve_protocol("fid1k_train").seed == PROTOCOLS.get("fid10k_train").seed


def test_unknown_protocol():
    with pytest.raises(RegistryError, match="unknown metric protocol"):
        resolve_protocol("fid_everything")
    with pytest.raises(RegistryError):
        resolve_protocol("fid10k_train").with_n(0)
