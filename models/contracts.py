"""Capability contracts of model plugins, checked when ``@register_model`` runs.

A plugin declares ``capabilities`` (a subset of :data:`CAPABILITIES`) and implements each declared
capability's methods, usually by inheriting its contract class (:class:`Sampler`, :class:`Encoder`,
...) and overriding the methods the contract marks with :func:`contract_method`. :func:`check_contracts`
refuses a plugin that declares a capability without overriding its methods, or overrides them without
declaring it (so ``model.capabilities`` is the one truth generic code reads; it never probes methods).

    capability       contract         methods a plugin must override
    ``sample``       Sampler          sample
    ``conditional``  Conditional      (none: generation and translation take class labels c)
    ``encode``       Encoder          encode, reconstruct
    ``translate``    Translator       translate
    ``edit``         Editor           edit_start, edit_direction, edit_decode (edit_fit, edit_encode, edit_move have defaults)
    ``likelihood``   Likelihood       bits_per_dim
    ``iw_likelihood`` IWLikelihood    iw_bits_per_dim (an importance-weighted bound, Burda et al. 2016)

Images are float32 N x C x H x W in [-1, 1] (C, H, W of the plugin's ``spec``); labels int64 N in
0..K-1. This module imports no torch at import time (``exprbench models`` lists plugins without it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, ClassVar

from exprbench.core.capabilities import CAPABILITIES as VOCABULARY
from exprbench.core.errors import RegistryError

if TYPE_CHECKING:
    import torch


def contract_method(fn: Callable) -> Callable:
    """Mark ``fn`` as a contract's placeholder: a plugin declaring the capability must override it."""
    fn.__contract_method__ = True
    return fn


class Sampler:
    """Capability ``sample``: generate images from noise."""

    @contract_method
    def sample(self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Generate ``n`` images, float32 n x C x H x W in [-1, 1], on the plugin's device.

        Args:
            n: number of images.
            labels: int64 n class indices (conditional models; uniform random when None, ignored by
                unconditional ones).
            generator: a CPU ``torch.Generator`` for z and random labels (same seed, same latents on any device).

        Raises:
            ValueError: bad labels.
        """
        raise NotImplementedError


class Conditional:
    """Capability ``conditional``: generation (and translation) take class labels c; no methods of its own."""


class Encoder:
    """Capability ``encode``: invert the generator, x -> z (and c where predicted)."""

    @contract_method
    def encode(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """E(x) for float32 N x C x H x W images in [-1, 1] (any device).

        Returns:
            ``{"z": float32 N x z_dim}`` on the device, plus ``"c_logits"`` (float32 N x K, unnormalized;
            softmax gives p(c | x)) for models that predict the class.

        Raises:
            ValueError: wrong image shape or dtype.
        """
        raise NotImplementedError

    @contract_method
    def reconstruct(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """G(E(x)): float32 N x C x H x W in [-1, 1] from ``x`` of the same form; ``c`` int64 N labels for
        conditional generators (None: the predicted c; ignored by unconditional models).

        Raises:
            ValueError: bad shapes or labels.
        """
        raise NotImplementedError


class Translator:
    """Capability ``translate``: change the expression of a given face, keeping the person."""

    @contract_method
    def translate(self, x: torch.Tensor, c_target: torch.Tensor, c_source: torch.Tensor | None = None) -> torch.Tensor:
        """x (float32 N x C x H x W in [-1, 1]) with classes ``c_target`` (int64 N): float32 N x C x H x W
        in [-1, 1] on the device. ``c_source`` (int64 N, optional): the classes of x; models that need
        them infer them when None, others validate and ignore them.

        Raises:
            ValueError: bad shapes or labels.
        """
        raise NotImplementedError


class Likelihood:
    """Capability ``likelihood``: negative log-likelihood of real images in bits per dimension."""

    #: True when :meth:`bits_per_dim` is exact (flows), False for a bound (VAE ELBO)
    likelihood_exact: ClassVar[bool] = False

    @contract_method
    def bits_per_dim(self, x: torch.Tensor, c: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """-log2 P(x) / D over the 256 discrete pixel values (uniform dequantization, Theis et al. 2016;
        D = C * H * W), exact or an upper bound (:attr:`likelihood_exact`).

        Args:
            x: float32 N x C x H x W in [-1, 1] (uint8 values / 127.5 - 1).
            c: int64 N labels (conditional models); None marginalizes the class (uniform prior).
            generator: CPU generator of the dequantization / posterior noise.

        Returns:
            float32 N bits/dim on the device.

        Raises:
            ValueError: bad shapes or labels.
        """
        raise NotImplementedError


class IWLikelihood:
    """Capability ``iw_likelihood``: the importance-weighted bound (Burda et al. 2016) in bits/dim."""

    @contract_method
    def iw_bits_per_dim(self, x: torch.Tensor, c: torch.Tensor | None = None, k: int = 64,
                        generator: torch.Generator | None = None) -> torch.Tensor:
        """-log2 mean_k [p(x, z_k | c) / q(z_k | x, c)] / D with ``k`` posterior samples: float32 N bits/dim,
        an upper bound on -log2 p(x) / D, non-increasing in k in expectation (arguments as
        :meth:`Likelihood.bits_per_dim`; raises ValueError for bad inputs or k < 1)."""
        raise NotImplementedError


class Editor:
    """Capability ``edit``: move latents along an attribute direction and decode them.

    ``edit_mode``: ``distance`` (strength = the signed distance the latent is moved to, InterFaceGAN:
    z' = z + (d - z.n) n) or ``offset`` (strength scales an attribute vector, z' = z + f v).
    """

    edit_mode: ClassVar[str] = "offset"
    #: the strength the edit leaderboard reports success at
    edit_reference_strength: ClassVar[float] = 1.0
    #: how far the strength sweep reaches, in multiples of the reference strength (steps of a third of it)
    edit_sweep_extent: ClassVar[float] = 1.0

    def edit_fit(self, x: torch.Tensor, c: torch.Tensor) -> None:
        """Derive the directions from labelled real images (x float32 N x C x H x W in [-1, 1], c int64 N)
        where the model needs them; models whose directions are part of the run ignore it."""

    @contract_method
    def edit_start(self, n: int, generator: torch.Generator | None = None, labels: torch.Tensor | None = None) -> torch.Tensor:
        """``n`` random start latents (float32 n x D on the device) drawn with the CPU ``generator``."""
        raise NotImplementedError

    def edit_encode(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Latents (float32 N x D) of real images x to edit.

        Raises:
            NotImplementedError: the model has no encoder (edit a seed instead).
        """
        raise NotImplementedError(f"model {self.name!r} cannot edit a given image (no encoder); use a seed")

    @contract_method
    def edit_direction(self, target: int, keep: int | None = None) -> torch.Tensor:
        """The direction toward class ``target`` (float32 D); with ``keep``, its component along class
        ``keep``'s direction removed and the length restored (Shen et al. 2020, sec. 2.3).

        Raises:
            ValueError: ``target``/``keep`` not a class index, or ``keep == target``.
        """
        raise NotImplementedError

    def edit_move(self, z: torch.Tensor, target: int, strength: float, keep: int | None = None) -> torch.Tensor:
        """Latents z (float32 N x D) moved along :meth:`edit_direction` by ``strength`` (see ``edit_mode``)."""
        v = self.edit_direction(target, keep).to(z.device, z.dtype)
        if self.edit_mode == "distance":
            return move_to_distance(z, v, strength)
        return z + strength * v

    @contract_method
    def edit_decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images of latents z (float32 N x D): float32 N x C x H x W in [-1, 1] on the device."""
        raise NotImplementedError


#: capability name -> its contract class
CONTRACTS: dict[str, type] = {
    "sample": Sampler, "conditional": Conditional, "encode": Encoder, "translate": Translator,
    "edit": Editor, "likelihood": Likelihood, "iw_likelihood": IWLikelihood,
}
CAPABILITIES = frozenset(CONTRACTS)
if tuple(CONTRACTS) != VOCABULARY:  # one list: exprbench.core.capabilities names them, this maps them to contracts
    raise RegistryError(f"models/contracts.py: CONTRACTS {tuple(CONTRACTS)} differ from exprbench.core.capabilities {VOCABULARY}")
EDIT_MODES = ("distance", "offset")


def capabilities_of(cls: type) -> frozenset[str]:
    """The capabilities a plugin class declares: one per contract class among its bases."""
    return frozenset(cap for cap, contract in CONTRACTS.items() if issubclass(cls, contract))


def contract_capabilities_by_name() -> dict[str, frozenset[str]]:
    """``{class name: capabilities}`` of the contract classes of this module (``AttributeVectorEditor`` too), so
    the capabilities of a plugin can be read from its bases' names without importing it."""
    return {obj.__name__: capabilities_of(obj) for obj in list(globals().values())
            if isinstance(obj, type) and capabilities_of(obj)}


def contract_methods(contract: type) -> tuple[str, ...]:
    """Names of the methods of ``contract`` a plugin declaring it must override."""
    return tuple(k for k, v in vars(contract).items() if getattr(v, "__contract_method__", False))


def _overrides(cls: type, method: str) -> bool:
    fn = getattr(cls, method, None)
    return fn is not None and not getattr(fn, "__contract_method__", False)


def check_contracts(cls: type) -> None:
    """Check ``cls.capabilities`` against the methods ``cls`` implements.

    Raises:
        RegistryError: an unknown capability name; a declared capability whose contract methods are
            missing or still the contract's placeholders; contract methods implemented without the
            capability declared; an ``edit`` plugin with an unknown ``edit_mode``. The message names
            the class, the capability and the methods.
    """
    where = f"{cls.__module__}.{cls.__qualname__}"
    declared = set(getattr(cls, "capabilities", ()))
    unknown = sorted(declared - CAPABILITIES)
    if unknown:
        raise RegistryError(f"{where}: unknown capabilities {unknown} (known: {', '.join(sorted(CAPABILITIES))})")
    for cap, contract in CONTRACTS.items():
        methods = contract_methods(contract)
        done = [m for m in methods if _overrides(cls, m)]
        if cap in declared and len(done) < len(methods):
            missing = [m for m in methods if m not in done]
            raise RegistryError(f"{where} declares capability {cap!r} but does not implement "
                                f"{', '.join(missing)} (contract {contract.__name__}: {', '.join(methods)})")
        if cap not in declared and done:
            raise RegistryError(f"{where} implements {', '.join(done)} of capability {cap!r} "
                                f"(contract {contract.__name__}) without declaring it in capabilities")
    if "edit" in declared and getattr(cls, "edit_mode", None) not in EDIT_MODES:
        raise RegistryError(f"{where}: edit_mode={getattr(cls, 'edit_mode', None)!r}, expected one of {EDIT_MODES}")


# --------------------------------------------------------------------------------------------
# latent-space helpers of the edit contract (float tensors; torch is only needed to call them)


def move_to_distance(z: torch.Tensor, n: torch.Tensor, d: float) -> torch.Tensor:
    """z + (d - z.n) n: latents z (float N x D) moved along unit normals n (D, or N x D: one per row) to
    the signed distance d from the hyperplane z.n = 0 (InterFaceGAN, Shen et al. 2020, sec. 2.2)."""
    return z + (d - (z * n).sum(-1, keepdim=True)) * n


class AttributeVectorEditor(Editor):
    """``edit`` by attribute vectors (Kingma & Dhariwal 2018, sec. 5.2): :meth:`edit_fit` stores
    ``edit_vectors`` (float32 K x D, :func:`class_mean_differences` of encoded labelled images) and the
    strength scales v_target (``offset`` mode). Plugins implement ``edit_fit`` and the latent maps."""

    edit_vectors: torch.Tensor | None = None

    def edit_direction(self, target: int, keep: int | None = None) -> torch.Tensor:
        """The attribute vector v_target (float32 D, not normalized: strength 1 moves by the full class-mean
        difference). With ``keep``: v_t - (v_t.v_k / |v_k|^2) v_k rescaled to |v_t| (:func:`project_out`).

        Raises:
            ValueError: ``target``/``keep`` not a class index, or ``keep == target``.
            RuntimeError: :meth:`edit_fit` was not called, or saw no images of ``target`` (or only those).
        """
        import torch

        t = self.check_class(target, "target")
        if keep is not None and self.check_class(keep, "keep") == t:
            raise ValueError(f"keep {keep} equals target {target}: nothing to keep")
        if self.edit_vectors is None:
            raise RuntimeError(f"{self.name}: call edit_fit first: the edit directions come from labelled images")
        v = self.edit_vectors[t]
        v = v.clone() if keep is None else project_out(v, self.edit_vectors[keep])
        if not bool(torch.isfinite(v).all()):
            raise RuntimeError(f"{self.name}: edit_fit saw no images of class {target} (or only those)")
        return v


def class_mean_differences(w: torch.Tensor, c: torch.Tensor, k: int) -> torch.Tensor:
    """Attribute vectors v_e = mean w(class e) - mean w(other classes) (Kingma & Dhariwal 2018, sec. 5.2)
    of latents w (float N x D) with labels c (int64 N): K x D of ``w``'s dtype; the row of a class
    without images, or without images of other classes, is NaN."""
    import torch

    n = torch.bincount(c, minlength=k).to(w.dtype).unsqueeze(1)
    sums = torch.zeros(k, w.shape[1], dtype=w.dtype, device=w.device).index_add_(0, c, w)
    return sums / n - (w.sum(0) - sums) / (len(w) - n)  # 0/0 = NaN for an absent class


def project_out(v: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """v without its component along u, rescaled to the length of v (float D): InterFaceGAN's conditional
    manipulation n_A - (n_A.n_B) n_B, renormalized (Shen et al. 2020, sec. 2.3). A zero or non-finite
    u leaves v as it is."""
    import torch

    uu = u @ u
    if not bool(torch.isfinite(u).all()) or float(uu) <= 0:
        return v
    w = v - (v @ u) / uu * u
    return w * (v.norm() / w.norm().clamp_min(1e-12))
