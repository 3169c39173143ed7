"""The audit log's formats, and the verifier an auditor runs with the public key alone.

This package is what Fleet and an auditor must agree on: how an event is hashed
(``canonical``), how checkpoints and manifests are signed (``signing``) and what an
export bundle holds (``bundle``). It imports only the standard library and
``cryptography``, never Django nor the ``fleet`` package (whose ``__init__`` starts
Celery), so ``fleet-audit-verify`` runs in a bare virtual environment on a machine
that has no access to Fleet's database or settings. Fleet imports it, never the
other way round.
"""
