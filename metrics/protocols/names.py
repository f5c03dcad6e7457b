"""Names and constants of the metrics layer, importable without torch (``exprbench metrics`` lists the
protocols from them)."""

EXTRACTOR_NAME = "fer-evaluator"
INCEPTION_NAME = "inception-v3-compat"
MULTILAYER_NAME = "fer-multilayer"  # the realism space (metrics/extractors/multilayer.py)
CAS_NAME = "cas-classifier"

CAPABILITY_SEED = 4  # every protocol over real test images of one count sees the same test subset
PROBE_TRAIN_PER_CLASS = 300  # linear probe: fixed class-balanced train subset, <= 300 per class (seed 4)
EDIT_SEED, BPD_SEED = 5, 6
EDIT_FIT_PER_CLASS = 500  # attribute vectors: mean latent of <= 500 train images per class (seed 5)
BPD_IW_K = 64  # importance samples of the IWAE bound (models with the capability iw_likelihood)
PR_REFERENCE_SIZE = 10000  # precision/recall compare equal-sized sets (Kynkäänniemi et al. 2019)
DIRECTIONS = ("lower", "higher")  # which way a protocol's value (or a derived column) is better
