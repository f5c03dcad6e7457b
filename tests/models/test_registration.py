"""The capability check of ``@register_model`` (torch-fidelity registry style): the capabilities a plugin
inherits (its contract classes) and the contract methods it implements must agree, or registration fails
with one message naming the class, the capability and the methods; name and capabilities are declared once."""

from __future__ import annotations

import pytest
import torch

from exprbench.core.errors import RegistryError
from exprbench.models import MODELS, get_model, list_models, register_model
from exprbench.models.base import ModelPlugin
from exprbench.models.contracts import CONTRACTS, Encoder, Sampler, Translator, check_contracts, contract_methods


@pytest.fixture
def throwaway():
    """Registered names are removed again after the test."""
    names: list[str] = []
    yield names
    for n in names:
        MODELS._items.pop(n, None)


def test_declared_without_methods_fails_with_a_clear_message(throwaway):
    class HalfEncoder(ModelPlugin, Sampler, Encoder):
        def sample(self, n, labels=None, generator=None):
            return torch.zeros(n, 1, 8, 8)

        def encode(self, x):
            return {"z": x.flatten(1)}

    throwaway.append("tmp_half")
    with pytest.raises(RegistryError, match=r"HalfEncoder declares capability 'encode' but does not implement reconstruct"):
        register_model("tmp_half")(HalfEncoder)
    assert "tmp_half" not in MODELS


def test_declared_without_inheriting_the_contract_fails():
    class NoSampler(ModelPlugin):
        capabilities = frozenset({"sample"})

    with pytest.raises(RegistryError, match=r"NoSampler declares capability 'sample' but does not implement sample"):
        check_contracts(NoSampler)


def test_implemented_without_declaring_fails():
    class Undeclared(ModelPlugin, Translator):
        capabilities = frozenset()

        def translate(self, x, c_target, c_source=None):
            return x

    with pytest.raises(RegistryError, match=r"Undeclared implements translate of capability 'translate' .*without declaring"):
        check_contracts(Undeclared)


def test_unknown_capability_fails():
    class Typo(ModelPlugin):
        capabilities = frozenset({"smaple"})

    with pytest.raises(RegistryError, match=r"Typo: unknown capabilities \['smaple'\]"):
        check_contracts(Typo)


def test_complete_plugin_registers_and_is_listed(throwaway):
    class Tiny(ModelPlugin, Sampler):
        def sample(self, n, labels=None, generator=None):
            return torch.zeros(n, 1, 8, 8)

    throwaway.append("tmp_tiny")
    assert register_model("tmp_tiny")(Tiny) is Tiny
    assert "tmp_tiny" in list_models() and get_model("tmp_tiny") is Tiny
    assert Tiny.name == "tmp_tiny" and Tiny.capabilities == frozenset({"sample"})


@pytest.mark.parametrize("body", ["name", "capabilities"])
def test_name_or_capabilities_in_the_class_body_is_a_second_declaration(throwaway, body):
    attrs = {"sample": lambda self, n, labels=None, generator=None: torch.zeros(n, 1, 8, 8),
             body: "tmp_twice" if body == "name" else frozenset({"sample"})}
    Twice = type("Twice", (ModelPlugin, Sampler), attrs)
    throwaway.append("tmp_twice")
    with pytest.raises(RegistryError, match=f"Twice sets {body} in its body"):
        register_model("tmp_twice")(Twice)
    assert "tmp_twice" not in MODELS


def test_listing_reads_the_same_capabilities_as_the_classes():
    """``exprbench models`` reads a built-in plugin's capabilities from its bases without importing it."""
    from exprbench.models import _static_info

    for module in ("flow", "ccyclegan", "interfacegan"):
        for name, info in _static_info(module).items():
            assert info["capabilities"] == sorted(get_model(name).capabilities), name


def test_every_builtin_satisfies_its_contracts():
    for name in list_models():
        cls = get_model(name)
        check_contracts(cls)
        for cap in cls.capabilities:
            assert all(getattr(cls, m) is not getattr(CONTRACTS[cap], m) for m in contract_methods(CONTRACTS[cap]))
    assert "iw_likelihood" in get_model("vae").capabilities and "iw_likelihood" not in get_model("flow").capabilities
    assert "sample" not in get_model("ccyclegan").capabilities and not hasattr(get_model("ccyclegan"), "sample")
