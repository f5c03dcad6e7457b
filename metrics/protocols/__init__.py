"""Metric declarations: the registry (:mod:`.spec`), how a protocol is shown (:mod:`.presentation`) and the
built-in protocols (:mod:`.builtin`, :mod:`.evidence`), each one declaration whose name is its definition."""
