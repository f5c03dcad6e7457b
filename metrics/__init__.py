"""The metrics layer: registered protocols (one declaration each) over the FER2013 evaluator's feature
spaces. Sub-packages, by what they are (each imported on its own, so ``exprbench --help`` stays fast):

* :mod:`.protocols` - the declarations: :mod:`.protocols.spec` (``MetricSpec``, ``register_metric``, the
  registry), :mod:`.protocols.presentation` (how a protocol is shown), the built-in protocols (:mod:`.protocols.builtin`, :mod:`.protocols.evidence`).
* :mod:`.families` - what the protocols compute, each family beside its math (``compute_<family>`` and
  ``reference_<family>``): fidelity (FID, KID,
  precision/recall), coverage, memorisation, class-aware metrics and CAS, encoding, translation, editing,
  likelihood, spectral footprint, low-pass and transplant checks.
* :mod:`.extractors` - the feature spaces: the shipped FER2013 evaluator and its nets, its training recipe,
  the torch-fidelity extractors, the multilayer realism space.
* :mod:`.run` - running an evaluation: ``evaluate_run`` (:mod:`.run.evaluate`), its shared context, the
  real-data references, ``eval.json``, progress and console output, scoring images from any source.
* :mod:`.validity` - the metric validity study and its criteria, degradations and transfer-attack test.

Weights and cards of the shipped classifiers are under ``metrics/weights/``.
"""
