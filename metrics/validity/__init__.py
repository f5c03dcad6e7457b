"""The metric validity study (``exprbench metrics validate``): controlled degradations, pass criteria, its files,
updates, and the transfer-attack test of the scoring evaluator."""
