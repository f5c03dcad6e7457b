"""Feature spaces of the metrics: the shipped FER2013 evaluator and auxiliary classifier (nets, card, training
recipe and resumable state), their torch-fidelity extractors and the multilayer realism space."""
