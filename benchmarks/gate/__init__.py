"""The quality-regression gate: baselines, tolerances, verdicts, ``exprbench regress``, and the study that
plants regressions to show what the gate catches."""
