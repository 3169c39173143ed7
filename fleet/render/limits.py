"""How much a render may read, produce and take: each limit from a FLEET_RENDER_* setting."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class RenderLimits:
    max_file_bytes: int
    max_total_bytes: int
    max_files: int
    max_output_bytes: int
    max_objects: int
    timeout_seconds: int
    allow_remote_bases: bool = False

    @classmethod
    def from_settings(cls) -> RenderLimits:
        return cls(
            max_file_bytes=settings.FLEET_RENDER_MAX_FILE_BYTES,
            max_total_bytes=settings.FLEET_RENDER_MAX_TOTAL_BYTES,
            max_files=settings.FLEET_RENDER_MAX_FILES,
            max_output_bytes=settings.FLEET_RENDER_MAX_OUTPUT_BYTES,
            max_objects=settings.FLEET_RENDER_MAX_OBJECTS,
            timeout_seconds=settings.FLEET_RENDER_TIMEOUT,
            allow_remote_bases=settings.FLEET_RENDER_ALLOW_REMOTE_BASES,
        )
