"""Releases and channels: what each channel carries, and how many clusters run each
release (the same spread as the overview's chart, with links to those clusters)."""

from __future__ import annotations

from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from fleet.console.access import requires
from fleet.inventory.models import Channel, Release
from fleet.rollouts.deployed import release_spread


@requires()
def release_index(request: HttpRequest) -> HttpResponse:
    running = {release.pk if release else None: count for release, count in release_spread()}
    channels = list(Channel.objects.annotate(cluster_count=Count("clusters")).order_by("name"))
    releases: dict[int, list[Release]] = {}
    for release in Release.objects.order_by("-created_at", "-pk"):
        release.running = running.get(release.pk, 0)
        releases.setdefault(release.channel_id, []).append(release)
    for channel in channels:
        channel.release_list = releases.get(channel.pk, [])
    return render(request, "console/releases/index.html",
                  {"channels": channels, "undeployed": running.get(None, 0)})
