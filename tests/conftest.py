"""Shared fixtures: small FER2013-format datasets generated on the fly, an isolated cache, the real zip."""

from __future__ import annotations

import contextlib
import io
import os
import zipfile
from pathlib import Path

# The tests' models are tiny: one intra-op thread is fastest for them, and it keeps the test
# subprocesses (kill-and-resume) from oversubscribing the cores, which slows OpenMP down badly.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

from exprbench.data import FER7, FaceDataset, load_fer2013

REPO = Path(__file__).resolve().parents[1]
USAGES = ("Training", "PublicTest", "PrivateTest")


def real_data_path() -> Path | None:
    """The real FER2013 zip: $EXPRBENCH_DATA, else ../shared/data/fer2013.zip beside the repo."""
    env = os.environ.get("EXPRBENCH_DATA")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared" / "data" / "fer2013.zip"]:
        if cand.exists():
            return cand
    return None


def make_images(n: int, seed: int) -> np.ndarray:
    """n smooth random 48x48 uint8 images (faces are not needed to test plumbing)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(n, 12, 12)).astype(np.uint8)
    return np.repeat(np.repeat(base, 4, axis=1), 4, axis=2)


def write_csv(path: Path, per_class: int = 2, seed: int = 0) -> Path:
    """fer2013.csv with ``per_class`` rows per emotion and usage (7 x 3 x per_class rows)."""
    imgs = make_images(7 * 3 * per_class, seed)
    lines, k = ["emotion,pixels,Usage"], 0
    for usage in USAGES:
        for label in range(7):
            for _ in range(per_class):
                lines.append(f"{label},{' '.join(map(str, imgs[k].ravel()))},{usage}")
                k += 1
    path.write_text("\n".join(lines) + "\n")
    return path


def folder_entries(per_class: int = 2, seed: int = 0):
    """(relative path, JPEG bytes) in the Kaggle image-folder layout."""
    imgs = make_images(7 * 3 * per_class, seed)
    k = 0
    for usage in USAGES:
        top = "train" if usage == "Training" else "test"
        for emotion in FER7:
            for i in range(per_class):
                buf = io.BytesIO()
                Image.fromarray(imgs[k]).save(buf, format="PNG")
                k += 1
                yield f"{top}/{emotion}/{usage}_{k}.png", buf.getvalue()


def write_folder(root: Path, per_class: int = 2, seed: int = 0) -> Path:
    for rel, raw in folder_entries(per_class, seed):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(raw)
    return root


def write_zip(path: Path, per_class: int = 2, seed: int = 0, prefix: str = "") -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for rel, raw in folder_entries(per_class, seed):
            zf.writestr(prefix + rel, raw)
    return path


@pytest.fixture(autouse=True)
def default_sigint():
    """Every test starts with Python's own SIGINT handler (a Ray session of an earlier test installs
    its own, and the trainer only takes Ctrl-C over when nobody else has)."""
    import signal

    before = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.fixture(autouse=True)
def isolated_cache(request, tmp_path_factory, monkeypatch):
    """Every test gets its own decode cache, so tests never see each other's (or the user's) cache, with
    one entry shared among the tests that read the real zip (the ``real_zip`` fixture or a module-level
    ``DATA``): its decoded data, hard-linked in once such a test of this worker has decoded it (35,887
    JPEGs, about 10 s a decode; a dozen modules load it). Every other test starts from an empty cache."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("EXPRBENCH_CACHE", str(cache))
    real = real_data_path()
    reads_real = "real_zip" in request.fixturenames or getattr(request.module, "DATA", None) is not None
    if real is None or not reads_real:
        yield
        return
    from exprbench.data.fer2013 import _cache_file

    name = _cache_file(real).name
    shared, entry = tmp_path_factory.getbasetemp() / "real-decoded" / name, cache / "data" / name
    if shared.exists():
        entry.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):  # no hard links here: the test decodes it itself
            os.link(shared, entry)
    yield
    if not shared.exists() and entry.exists():
        shared.parent.mkdir(exist_ok=True)
        with contextlib.suppress(OSError):
            os.link(entry, shared)


@pytest.fixture
def tiny_csv(tmp_path) -> Path:
    return write_csv(tmp_path / "fer2013.csv", per_class=3)


@pytest.fixture
def tiny_dataset(tmp_path) -> FaceDataset:
    """A 7-class dataset with 6 training images per class, loaded through the CSV reader."""
    return load_fer2013(write_csv(tmp_path / "fer2013.csv", per_class=6), use_cache=False)


@pytest.fixture(scope="session")
def real_zip() -> Path:
    p = real_data_path()
    if p is None:
        pytest.skip("real FER2013 zip not found (set EXPRBENCH_DATA or put ../shared/data/fer2013.zip)")
    return p


@pytest.fixture(scope="session")
def bench_results(tmp_path_factory):
    """A two-model (gan, cgan), two-seed tiny suite on a tiny CSV, run once for the session."""
    from exprbench.benchmarks.runner import run_suite
    from exprbench.benchmarks.suite import load_suite

    from .bench_helpers import need_evaluator, write_suite

    need_evaluator()
    tmp = tmp_path_factory.mktemp("bench")
    data = write_csv(tmp / "fer2013.csv", per_class=10)
    p = write_suite(tmp / "s.toml")
    p.write_text(p.read_text().replace("seeds = [0]", "seeds = [0, 1]"))
    run_suite(load_suite(p), tmp / "out", data_path=str(data), progress=False)
    return tmp / "out"


# The longest tests first, so that under pytest-xdist (``make test``: ``-n auto``) one worker starts on
# the smoke-suite gate at once while the others take the rest, instead of the gate starting last.
LONGEST_FIRST = ("tests/benchmarks/test_smoke_suite.py",)


def pytest_collection_modifyitems(config, items):
    first = [it for it in items if it.nodeid.startswith(LONGEST_FIRST)]
    if first:
        items[:] = first + [it for it in items if not it.nodeid.startswith(LONGEST_FIRST)]
