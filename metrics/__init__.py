"""Metrics: the FER2013 evaluator network, fidelity metrics through torch-fidelity, class-aware metrics."""
