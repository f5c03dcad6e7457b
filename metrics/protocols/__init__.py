"""Metric declarations: the registry (:mod:`.spec`) and the built-in protocols (:mod:`.builtin`,
:mod:`.evidence`), each one registered function whose name is its definition."""
