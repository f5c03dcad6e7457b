"""What a new model must bring besides its plugin file (README, "Add a model"), checked for every registered
model in one place, each failure naming what to add."""

from __future__ import annotations

from exprbench.benchmarks.suite import load_suite
from exprbench.models import BUILTIN_MODULES, MODELS, get_model

#: the shipped suites that list every model, and the models each leaves out with the reason
SUITES = ("smoke", "quick", "full")
NOT_IN = {
    # the smoke gate compares against the committed results/smoke/baseline.json, which predates the model:
    # it joins the suite when the baseline is regenerated
    "smoke": {"diffusion"},
}


def test_every_model_brings_what_the_readme_lists():
    problems = []
    grids = {s: {p.model for p in load_suite(s).grid} for s in SUITES}
    for name in MODELS.names():
        cls = get_model(name)
        missing = sorted({"default", "reference"} - set(cls.named_configs))
        if missing:
            problems.append(f"{name}: add named_configs {missing} (default: the cpu-sized config; reference: the paper's)")
        if cls.__module__.startswith("exprbench.models.") and cls.__module__.rsplit(".", 1)[1] not in BUILTIN_MODULES:
            problems.append(f"{name}: add {cls.__module__.rsplit('.', 1)[1]!r} to BUILTIN_MODULES in models/__init__.py")
        for suite, models in grids.items():
            if name not in models and name not in NOT_IN.get(suite, set()):
                problems.append(f"{name}: add a [[models]] entry to benchmarks/suites/{suite}.toml")
    assert not problems, "a model lacks what README.md 'Add a model' lists:\n  " + "\n  ".join(problems)


def test_the_suites_list_no_unknown_model_and_the_exceptions_are_current():
    for suite in SUITES:
        models = {p.model for p in load_suite(suite).grid}
        assert models <= set(MODELS.names()), suite
        assert not (NOT_IN.get(suite, set()) & models), f"{suite}: NOT_IN lists a model the suite now has"
