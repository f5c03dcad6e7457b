"""What the protocols compute, one module per family beside its math (fidelity, coverage, memorisation,
class-aware metrics and CAS, encoding, translation, editing, likelihood, spectral, low-pass, transplant)."""
