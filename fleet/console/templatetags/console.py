"""Template helpers of the console: states shown with a word and a shape (never colour
alone), sortable column headers, navigation links that say which page is current."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.http import QueryDict
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from fleet.rollouts.progress import rollout_progress

register = template.Library()

# A state's tone (its colour, for those who see it) and its mark (for those who do not).
_TONES = {
    "ok": ("✓", {"ready", "succeeded", "allowed", "clean", "intact", "in_sync", "healed"}),
    "run": ("▶", {"running", "baking", "aborting"}),
    "wait": ("…", {"pending", "awaiting_approval", "unknown", "paused", "pending_prune"}),
    "bad": ("✗", {"failed", "error", "halted", "unreachable", "unauthorized", "blocked", "conflict", "denied",
                  "broken", "drifted", "contested", "missing", "modified"}),
    "off": ("–", {"skipped", "cancelled", "aborted", "expired"}),
}
_TONE_OF = {state: (tone, mark) for tone, (mark, states) in _TONES.items() for state in states}


@register.filter
def state(value: object) -> str:
    """``<span class="state tone-bad">✗ failed</span>``: the word is always there."""
    text = str(value or "")
    tone, mark = _TONE_OF.get(text, ("wait", "•"))
    return format_html('<span class="state tone-{}"><span aria-hidden="true">{}</span> {}</span>',
                       tone, mark, text.replace("_", " "))


@register.filter
def progress(rollout) -> dict:
    """A rollout's counts and percent, from the annotations of ``with_progress``."""
    return rollout_progress(rollout)


@register.filter
def short(value: object, length: int = 12) -> str:
    return str(value or "")[:length]


@register.filter
def seconds(value: object) -> str:
    """A duration for people: ``0.42 s``, ``12 s``, ``3 min 5 s``."""
    if value in (None, ""):
        return ""
    total = float(value)
    if total < 10:
        return f"{total:.2f} s"
    minutes, rest = divmod(round(total), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


@register.filter
def until(moment: datetime | None) -> int:
    """Whole seconds from now to ``moment`` (0 once it has passed)."""
    if moment is None:
        return 0
    return max(0, int((moment - timezone.now()).total_seconds()))


@register.simple_tag(takes_context=True)
def nav_link(context, url_name: str, label: str) -> str:
    url = reverse(url_name)
    path = context["request"].path
    current = path == url if url == "/" else path.startswith(url)
    return format_html('<a href="{}"{}>{}</a>', url, mark_safe(' aria-current="page"') if current else "", label)


@register.simple_tag(takes_context=True)
def sort_header(context, field: str, label: str) -> str:
    """A column header that sorts by ``field`` (again: the other way), keeping the filter."""
    request = context["request"]
    current = request.GET.get("sort", context.get("default_sort", ""))
    descending = current == f"-{field}"
    ascending = current == field
    query: QueryDict = request.GET.copy()
    query["sort"] = f"-{field}" if ascending else field
    query.pop("page", None)
    aria = "ascending" if ascending else "descending" if descending else "none"
    arrow = " ▲" if ascending else " ▼" if descending else ""
    return format_html('<th scope="col" aria-sort="{}"><a href="?{}">{}<span aria-hidden="true">{}</span></a></th>',
                       aria, query.urlencode(), label, arrow)


_STEP_MARKS = {"done": "✓", "failed": "✗", "running": "▶", "todo": "○"}


@register.simple_tag
def timeline(steps, cluster: str) -> str:
    """One cluster's pipeline as marked steps, with their times and errors. Drawn here
    rather than in a template loop: a live page draws it for every listed cluster
    every refresh, and the template engine took most of that page's time."""
    items = format_html_join("", '<li class="step step-{}"{}><span aria-hidden="true">{}</span> {}{}'
                                 '<span class="sr"> ({})</span></li>', (
        (step.status, format_html(' title="{}"', step.error) if step.error else "", _STEP_MARKS[step.status],
         step.name, format_html(' <span class="secs">{}</span>', seconds(step.seconds))
         if step.seconds is not None else "", step.status) for step in steps))
    return format_html('<ol class="steps" aria-label="steps of {}">{}</ol>', cluster, items)
