"""factory_boy factories for test data; writes go straight to the database (no audit)."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from fleet.inventory.models import Channel, Cluster, Release


class ChannelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Channel
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"channel-{n}")
    repo_url = "https://git.example.com/vendor/platform.git"
    branch = "release-1.1"


class ReleaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Release

    channel = factory.SubFactory(ChannelFactory)
    version = factory.Sequence(lambda n: f"1.1.{n}")
    upstream_sha = factory.Sequence(lambda n: f"{n:040x}")


class ClusterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Cluster

    name = factory.Sequence(lambda n: f"cluster-{n}")
    labels = factory.LazyFunction(lambda: {"env": "dev"})
    api_server_url = factory.Sequence(lambda n: f"https://10.0.{n // 250}.{n % 250}:6443")
    internal_repo_url = factory.LazyAttribute(lambda o: f"https://git.example.com/clusters/{o.name}.git")
    channel = factory.SubFactory(ChannelFactory)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
