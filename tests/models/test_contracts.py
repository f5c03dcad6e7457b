"""Contract tests over the model registry (torch-fidelity ``test_batchsize_independence.py`` style): every
registered plugin x named config x data spec gets each DECLARED capability checked for shapes, dtypes,
value ranges, determinism under a seeded generator, and a state-dict round trip (through
``torch.load(weights_only=True)``). A new plugin gets this coverage without a test of its own."""

from __future__ import annotations

import io

import pytest
import torch

from exprbench.models import get_model, list_models

from .conftest import SPECS, images, tiny_model, train_once

CASES = [(name, config, spec) for name in list_models() for config in get_model(name).named_configs
         for spec in SPECS]
N = 4


def gen(seed: int = 1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def check_images(x: torch.Tensor, n: int, spec) -> None:
    assert x.shape == (n, spec.channels, spec.height, spec.width) and x.dtype == torch.float32
    assert bool(torch.isfinite(x).all()) and float(x.min()) >= -1 and float(x.max()) <= 1


def outputs(model, spec, x: torch.Tensor, c: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every declared capability's outputs, checked for form; seeded where the API takes a generator."""
    caps, n, k, out = model.capabilities, x.shape[0], spec.num_classes, {}
    target = (c + 1) % k
    if "sample" in caps:
        out["sample"] = model.sample(n, labels=c, generator=gen())
        check_images(out["sample"], n, spec)
        check_images(model.sample(2, generator=gen()), 2, spec)  # labels drawn when omitted
    if "encode" in caps:
        enc = model.encode(x)
        assert enc["z"].dtype == torch.float32 and enc["z"].dim() == 2 and enc["z"].shape[0] == n
        if "c_logits" in enc:
            assert enc["c_logits"].shape == (n, k) and enc["c_logits"].dtype == torch.float32
        out |= {"z": enc["z"], "rec": model.reconstruct(x), "rec_c": model.reconstruct(x, c)}
        check_images(out["rec"], n, spec)
        check_images(out["rec_c"], n, spec)
    if "translate" in caps:
        out["translate"] = model.translate(x, target)
        check_images(out["translate"], n, spec)
        check_images(model.translate(x, target, c_source=c), n, spec)
    if "likelihood" in caps:
        for cc in (c, None):
            bpd = model.bits_per_dim(x, cc, generator=gen())
            assert bpd.shape == (n,) and bpd.dtype == torch.float32 and bool((torch.isfinite(bpd) & (bpd > 0)).all())
        out["bpd"] = bpd
    if "iw_likelihood" in caps:
        out["iw_bpd"] = model.iw_bits_per_dim(x, c, k=2, generator=gen())
        assert out["iw_bpd"].shape == (n,) and bool(torch.isfinite(out["iw_bpd"]).all())
    if "edit" in caps:
        model.edit_fit(x, c)
        z = model.edit_start(n, gen(), labels=c)
        assert z.dtype == torch.float32 and z.dim() == 2 and z.shape[0] == n
        v = model.edit_direction(int(target[0]))
        assert v.shape == (z.shape[1],)
        out["edit"] = model.edit_decode(model.edit_move(z, int(target[0]), float(model.edit_reference_strength)))
        check_images(out["edit"], n, spec)
        assert torch.equal(model.edit_decode(model.edit_move(z, 0, 0.0) if model.edit_mode == "offset" else z), model.edit_decode(z))
    return out


@pytest.mark.parametrize("name,config,spec_name", CASES, ids=[f"{n}-{c}-{s}" for n, c, s in CASES])
def test_declared_capabilities(name, config, spec_name):
    spec = SPECS[spec_name]
    model = tiny_model(name, config, spec)
    k = spec.num_classes
    x, c = images(N, spec), torch.arange(N) % k
    if "edit" in model.capabilities and model.edit_mode == "offset":  # attribute vectors need every class
        x, c = images(max(N, k), spec, seed=3), torch.arange(max(N, k)) % k

    train_once(model, spec)
    model.train(False)

    first = outputs(model, spec, x, c)
    again = outputs(model, spec, x, c)
    for key in first:
        assert torch.equal(first[key], again[key]), f"{name}/{config}: {key} is not deterministic"

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    other = tiny_model(name, config, spec, seed=7)
    other.load_state_dict(torch.load(buf, weights_only=True))
    other.train(False)
    loaded = outputs(other, spec, x, c)
    for key in first:
        assert torch.equal(first[key], loaded[key]), f"{name}/{config}: {key} differs after a state-dict round trip"
