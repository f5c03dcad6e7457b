"""The resumable state of a classifier training (:func:`~.classifier_training.train_classifier`): written after
every epoch in three parts so that each stays under 10 MB for the evaluator (a stopped training can be
committed and continued elsewhere), loaded with ``weights_only=True``, bit-exact on CPU."""

from __future__ import annotations

from pathlib import Path

import torch

from exprbench.core.errors import UserError


def _part(path: Path, name: str) -> Path:
    return path.with_name(f"{path.stem}.{name}{path.suffix}")  # x.state.pt -> x.state.opt.pt


def save_state(path: Path, net, opt, sched, gen, history, best_acc, best_state, recipe: dict) -> None:
    """The training state in three files, each under 10 MB for a width-32 net so that a stopped training can be
    committed and continued elsewhere: ``path`` (net, schedule, RNG states, history), ``<stem>.opt`` (the
    optimizer) and ``<stem>.best`` (the best epoch's weights); the parts are written first, each atomically,
    and carry the epoch, so a crash between them is detected when loading."""
    from exprbench.data import atomic_torch_save

    epoch = len(history)
    atomic_torch_save({"epoch": epoch, "opt": opt.state_dict()}, _part(path, "opt"))
    atomic_torch_save({"epoch": epoch, "best_state": best_state, "best_acc": best_acc}, _part(path, "best"))
    atomic_torch_save({"epoch": epoch, "net": net.state_dict(), "sched": sched.state_dict(), "gen": gen.get_state(),
                       "rng": torch.get_rng_state(), "history": history, "recipe": recipe}, path)


def load_parts(path: Path) -> tuple[dict, dict, dict]:
    """(main, optimizer part, best part) of a state; the one-file layout (before the split) is all three.

    Raises:
        UserError: the parts were written at different epochs (a crash mid-save)."""
    st = torch.load(path, map_location="cpu", weights_only=True)
    if "opt" in st:  # one file: the layout before the split
        return st, st, st
    opt, best = (torch.load(_part(path, k), map_location="cpu", weights_only=True) for k in ("opt", "best"))
    if not opt.get("epoch") == best.get("epoch") == st.get("epoch"):
        raise UserError(f"{path}: its parts were written at different epochs (a crash mid-save): delete them")
    return st, opt, best


def load_state(path: Path, net, opt, sched, gen, recipe: dict) -> tuple[list, float, dict | None]:
    """Restore a :func:`save_state` checkpoint (``weights_only=True``); returns history, best acc, best state.

    Raises:
        UserError: the checkpoint does not load, was written by another recipe, or its parts disagree.
    """
    try:
        st, st_opt, st_best = load_parts(path)
        if st["recipe"] != recipe:
            raise UserError(f"{path}: the checkpoint was written by another recipe ({st['recipe']}); "
                            "delete it or train with the same options")
        net.load_state_dict(st["net"])
        opt.load_state_dict(st_opt["opt"])
        sched.load_state_dict(st["sched"])
        gen.set_state(st["gen"])
        torch.set_rng_state(st["rng"])
    except (KeyError, RuntimeError, ValueError, EOFError, FileNotFoundError) as e:
        raise UserError(f"{path}: classifier checkpoint does not load ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    return list(st["history"]), float(st_best["best_acc"]), st_best["best_state"]
