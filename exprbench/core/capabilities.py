"""The capability vocabulary shared by the models (each capability's contract class, ``models/contracts.py``)
and the metrics (what a protocol ``needs``): one list, in the lowest layer, so that the metric declarations and
the report read it without importing model code."""

#: capability names, in the order tables and messages list them
CAPABILITIES: tuple[str, ...] = ("sample", "conditional", "encode", "translate", "edit", "likelihood", "iw_likelihood")
