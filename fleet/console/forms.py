"""The console's own inputs (search, sort, page size, the rollout and policy-check
forms) and the one way a page reads a filter's errors without running its query."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import QueryDict
from django_filters import FilterSet
from rest_framework import serializers

from fleet.inventory.models import Cluster, Release
from fleet.rollouts.models import StrategyTemplate

PER_PAGE = (25, 50, 100)
NON_FIELD = "form"  # where errors that name no field go (templates cannot read Django's "__all__")


def _by_field(errors) -> dict[str, str]:
    return {(NON_FIELD if name == "__all__" else name): " ".join(str(m) for m in messages)
            for name, messages in errors.items()}


def given(query: QueryDict) -> QueryDict:
    """The query without its empty values: a filter form sends every field, and an
    empty one means "any", not "equal to nothing"."""
    kept = QueryDict(mutable=True)
    for key, values in query.lists():
        for value in values:
            if value != "":
                kept.appendlist(key, value)
    return kept


def filter_errors(filterset: FilterSet) -> dict[str, str]:
    """The filter's errors by field, or none. Building its query parses every value (a
    label selector raises here, as it does in the API) but runs nothing, so a page with
    a malformed filter shows the error and makes no query it cannot answer."""
    if not filterset.is_valid():
        return _by_field(filterset.errors)
    try:
        filterset.qs  # noqa: B018 - built, not evaluated
    except serializers.ValidationError as exc:
        return _by_field(exc.detail if isinstance(exc.detail, dict) else {NON_FIELD: exc.detail})
    return {}


def form_errors(form: forms.Form) -> dict[str, str]:
    return _by_field(form.errors)


def paginate(queryset: QuerySet, query: QueryDict, per_page: int = 50) -> Page:
    """One page (two queries: the count and the rows); a bad page number gives the nearest."""
    return Paginator(queryset, per_page).get_page(query.get("page"))


class ListQuery(forms.Form):
    """Free text, sort and page size: what every list page takes besides its filter."""

    SORTS: dict[str, str] = {}

    q = forms.CharField(required=False, max_length=200)
    sort = forms.CharField(required=False, max_length=40)
    per_page = forms.TypedChoiceField(choices=[(n, n) for n in PER_PAGE], coerce=int, required=False,
                                      empty_value=PER_PAGE[1])

    def clean_sort(self) -> str:
        value = self.cleaned_data["sort"]
        if value and value.removeprefix("-") not in self.SORTS:
            raise forms.ValidationError(f"cannot sort by {value!r}: choose one of {', '.join(self.SORTS)}")
        return value

    def ordering(self, default: str) -> list[str]:
        value = self.cleaned_data.get("sort") or default
        field = self.SORTS[value.removeprefix("-")]
        return [f"-{field}" if value.startswith("-") else field, "pk"]


class ClusterQuery(ListQuery):
    SORTS = {"name": "name", "status": "status", "channel": "channel__name", "contact": "last_contact_at",
             "created": "created_at"}

    release = forms.CharField(required=False, max_length=20)
    contact = forms.ChoiceField(choices=[("", "any"), ("quiet", "not contacted recently")], required=False)

    def clean_release(self) -> int | str:
        value = self.cleaned_data["release"].strip()
        if value in ("", "none"):
            return value
        if not value.isdigit():
            raise forms.ValidationError(f"{value!r} is not a release id (or 'none')")
        return int(value)


class RolloutForm(forms.Form):
    """What a rollout is made of, as the API's create takes it; the service decides the rest."""

    release = forms.ModelChoiceField(Release.objects.select_related("channel").order_by("channel__name",
                                                                                         "-created_at"),
                                     empty_label="choose a release")
    selector = forms.CharField(required=False, max_length=1000)
    template = forms.ModelChoiceField(StrategyTemplate.objects.order_by("name"), required=False, to_field_name="name",
                                      empty_label="none: use the waves below")
    waves = forms.CharField(required=False, max_length=100_000, widget=forms.Textarea)
    health_timeout_seconds = forms.IntegerField(min_value=10, max_value=3600, initial=300)

    def clean_waves(self) -> list[Any] | None:
        text = self.cleaned_data["waves"].strip()
        if not text:
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not self.errors and data.get("template") is None and data.get("waves") is None:
            self.add_error("waves", "give the waves as JSON, or choose a strategy template")
        return data


class PolicyCheckForm(forms.Form):
    cluster = forms.ModelChoiceField(Cluster.objects.select_related("channel"), to_field_name="name",
                                     widget=forms.TextInput, error_messages={
                                         "invalid_choice": "no cluster of that name"})
    manifests = forms.CharField(max_length=1_000_000, widget=forms.Textarea, strip=False)
