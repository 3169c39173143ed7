"""The one error rendering raises: refused input or a failed render, named by file."""

from __future__ import annotations


class RenderError(ValueError):
    """Rendering was refused or failed.

    ``code`` says which rule refused it (``path-escape``, ``symlink``, ``plugin``,
    ``remote-base``, ``too-large``, ``timeout``, ``kustomize``, ``invalid-object``,
    ``duplicate``, ``parse``, ``no-kustomization``), so callers and tests tell the cases apart without
    parsing messages; ``path`` is repo-relative, never an absolute host path.
    """

    def __init__(self, message: str, *, code: str, path: str = ""):
        self.code, self.path = code, path
        super().__init__(f"{path}: {message}" if path else message)
