"""metrics/protocols/spec.py: protocol names carry their protocol."""

from __future__ import annotations

import pytest

from exprbench.core.errors import RegistryError
from exprbench.metrics.protocols.spec import format_count, parse_count
from exprbench.metrics.protocols.catalog import default_metrics, resolve_metric


def test_default_set():
    names = default_metrics()
    for n in ("fid10k_train", "kid10k_train", "pr10k_train", "ifid_train", "acc_gen", "cas"):
        assert n in names
    assert resolve_metric("ifid_train").needs == {"sample", "conditional"}
    assert resolve_metric("fid10k_train").needs == {"sample"}


def test_counts_in_names():
    assert resolve_metric("fid1k_train").n_samples == 1000
    assert resolve_metric("kid2500_train").name == "kid2500_train"
    assert resolve_metric("fid10k_train").with_n(1000).name == "fid1k_train"
    assert resolve_metric("ifid_train").with_n(2000).name == "ifid2k_train"
    assert resolve_metric("acc_gen").with_n(700).name == "acc_gen700"
    assert resolve_metric("cas").with_n(7000).name == "cas"  # the default count keeps the name
    assert format_count(10000) == "10k" and parse_count("10k") == 10000 and format_count(2500) == "2500"


def test_seeds_fixed_and_distinct():
    p = [resolve_metric(n) for n in ("fid10k_train", "ifid_train", "acc_gen", "cas")]
    assert len({x.seed for x in p}) == 4
    assert resolve_metric("fid1k_train").seed == resolve_metric("fid10k_train").seed


def test_unknown_protocol():
    with pytest.raises(RegistryError, match="unknown metric protocol"):
        resolve_metric("fid_everything")
    with pytest.raises(RegistryError):
        resolve_metric("fid10k_train").with_n(0)
