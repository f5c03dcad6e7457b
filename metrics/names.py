"""Names of the feature extractors, importable without torch (``exprbench metrics`` lists protocols from them)."""

EXTRACTOR_NAME = "fer-evaluator"
INCEPTION_NAME = "inception-v3-compat"
