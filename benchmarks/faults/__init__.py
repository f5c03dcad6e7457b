"""The fault campaign of exprbench (issue 33): damaged, edited, oversized and interrupted inputs, each run
as the user would run it (a subprocess), each expected to end in one line and a known exit code with
nothing already written lost. ``python -m exprbench.benchmarks.faults.campaign`` runs it; :mod:`.tamper`
makes the damaged inputs (also used by the tests)."""
