"""exprbench.core.registry and the model registry."""

from __future__ import annotations

import pytest

from exprbench.core.errors import RegistryError
from exprbench.models import MODELS, get_model
from exprbench.models.contracts import CAPABILITIES
from exprbench.core.registry import Registry


def test_register_and_get():
    reg: Registry = Registry("thing")

    @reg.register("a")
    class A:
        pass

    assert reg.get("a") is A and "a" in reg and reg.names() == ["a"]
    with pytest.raises(RegistryError, match="unknown thing 'b' \\(known: a\\)"):
        reg.get("b")
    with pytest.raises(RegistryError, match="registered twice"):
        reg.register("a")(object)


def test_builtin_models_registered_with_capabilities():
    assert {"gan", "cgan", "acgan", "bigan", "bicogan", "ccyclegan"} <= set(MODELS.names())
    for name in MODELS.names():
        cls = get_model(name)
        assert cls.name == name
        assert cls.capabilities <= CAPABILITIES
        assert cls.capabilities & {"sample", "translate"}, f"{name} can neither sample nor translate"
    assert "conditional" in get_model("cgan").capabilities
    assert "conditional" not in get_model("gan").capabilities
