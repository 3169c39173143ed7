"""Gatekeeper, as Fleet reads it: templates and constraints (``templates``), which objects
a constraint applies to (``match``), and the documents its Rego reads (``review``)."""
