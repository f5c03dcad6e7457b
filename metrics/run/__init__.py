"""Running an evaluation: ``evaluate_run``, the context its protocols share, real-data references, ``eval.json``,
what it prints, and scoring images from any source."""
