"""The one error rendering raises: refused input or a failed render, named by file."""

from __future__ import annotations

from fleet.core.errors import FleetError


class RenderError(FleetError):
    """Rendering was refused or failed.

    ``code`` says which rule refused it (``path-escape``, ``symlink``, ``plugin``,
    ``remote-base``, ``too-large``, ``timeout``, ``kustomize``, ``invalid-object``,
    ``duplicate``, ``parse``, ``no-kustomization``, ``missing``), so callers and tests
    tell the cases apart without parsing messages; ``path`` is repo-relative, never an
    absolute host path.
    """

    domain = "render"

    def __init__(self, message: str, *, code: str, path: str = ""):
        self.path = path
        super().__init__(message, code=code, detail={"path": path} if path else None)

    def where(self) -> str:
        return self.path
