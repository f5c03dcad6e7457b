"""A grid point's identity: the sha256 of its resolved config, kept in its run directory as
``identity.json``, so that a suite asking for another config in an existing directory is refused."""

from __future__ import annotations

from pathlib import Path

from exprbench.core.io import read_json, write_json

from exprbench.benchmarks.suite import GridPoint, Suite, SuiteError, identity_config, identity_hash

IDENTITY = "identity.json"


class IdentityError(SuiteError):
    """A grid point's run directory holds a run of another config."""


def check_identity(suite: Suite, point: GridPoint, run_dir: Path) -> str:
    """The identity hash of ``point``; raises when ``run_dir`` already holds a run of another config.

    Compares with ``run_dir/identity.json``, or for directories written before it with ``config.json``.

    Raises:
        IdentityError: the stored config differs (names the first differing key, both values).
    """
    want = suite.identity(point)
    digest = identity_hash(want)
    stored = read_json(run_dir / IDENTITY)
    if stored is not None:
        if stored.get("config_sha256") == digest:
            return digest
        have = stored.get("config") or {}
    else:
        cfg = read_json(run_dir / "config.json")
        if cfg is None:
            return digest
        have = identity_config(cfg, runs_dir=run_dir.parent)
        if identity_hash(have) == digest:
            return digest
    diff = [k for k in sorted(set(have) | set(want)) if have.get(k) != want.get(k)] or ["config_sha256"]
    k = diff[0]
    raise IdentityError(
        f"{run_dir} holds grid point {point.name} run with {k}={have.get(k)!r} but suite {suite.name!r} now "
        f"asks for {k}={want.get(k)!r}: use another --out, or delete that directory to rerun it"
    )


def write_identity(suite: Suite, point: GridPoint, run_dir: Path) -> str:
    """Write ``run_dir/identity.json`` (grid point, config sha256, the identity mapping); returns the hash."""
    ident = suite.identity(point)
    digest = identity_hash(ident)
    if (read_json(run_dir / IDENTITY) or {}).get("config_sha256") != digest:
        write_json(run_dir / IDENTITY, {"grid_point": point.name, "suite": suite.name, "config_sha256": digest,
                                        "config": ident})
    return digest
