"""The cluster audit's tables; the event table by fleet.clusteraudit.partitions."""

import django.db.models.deletion
from django.db import migrations, models

from fleet.clusteraudit import partitions


def _create_event_table(apps, schema_editor):
    partitions.create_table(schema_editor, apps.get_model("clusteraudit", "ClusterAuditEvent"))
    if schema_editor.connection.vendor == "postgresql":
        partitions.ensure()


def _drop_event_table(apps, schema_editor):
    partitions.drop_table(schema_editor, apps.get_model("clusteraudit", "ClusterAuditEvent"))


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('inventory', '0001_initial'),
    ]

    operations = [
        migrations.CreateModel(
            name='AuditSource',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('key', models.CharField(editable=False, max_length=16, unique=True)),
                ('secret_hash', models.CharField(editable=False, max_length=64)),
                ('previous_secret_hash', models.CharField(blank=True, editable=False, max_length=64)),
                ('previous_valid_until', models.DateTimeField(blank=True, null=True)),
                ('rotated_at', models.DateTimeField()),
                ('fleet_username', models.CharField(blank=True, max_length=255)),
                ('fleet_username_source', models.CharField(blank=True, max_length=32)),
                ('last_ingest_at', models.DateTimeField(blank=True, editable=False, null=True)),
                ('cluster', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='audit_source', to='inventory.cluster')),
            ],
            options={
                'ordering': ['cluster__name'],
            },
        ),
        migrations.CreateModel(
            name='IngestRefusal',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('key', models.CharField(max_length=320)),
                ('window_start', models.DateTimeField()),
                ('count', models.PositiveIntegerField(default=1)),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('key', 'window_start'), name='clusteraudit_refusal_once')],
            },
        ),
        # PostgreSQL: a table partitioned by day (fleet/clusteraudit/partitions.py); elsewhere a plain one.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='ClusterAuditEvent',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('audit_id', models.CharField(max_length=128)),
                        ('stage', models.CharField(max_length=24)),
                        ('level', models.CharField(max_length=24)),
                        ('request_received_at', models.DateTimeField()),
                        ('stage_at', models.DateTimeField()),
                        ('username', models.CharField(blank=True, max_length=255)),
                        ('groups', models.JSONField(blank=True, default=list)),
                        ('impersonated_user', models.CharField(blank=True, max_length=255)),
                        ('impersonated_groups', models.JSONField(blank=True, default=list)),
                        ('verb', models.CharField(max_length=32)),
                        ('api_group', models.CharField(blank=True, max_length=253)),
                        ('api_version', models.CharField(blank=True, max_length=64)),
                        ('resource', models.CharField(blank=True, max_length=253)),
                        ('subresource', models.CharField(blank=True, max_length=64)),
                        ('namespace', models.CharField(blank=True, max_length=253)),
                        ('name', models.CharField(blank=True, max_length=253)),
                        ('request_uri', models.CharField(blank=True, max_length=1024)),
                        ('response_code', models.IntegerField(blank=True, null=True)),
                        ('source_ips', models.JSONField(blank=True, default=list)),
                        ('user_agent', models.CharField(blank=True, max_length=512)),
                        ('field_manager', models.CharField(blank=True, max_length=128)),
                        ('request_object', models.JSONField(blank=True, null=True)),
                        ('actor', models.CharField(choices=[('fleet', 'Fleet'), ('system', 'Kubernetes component'), ('other', 'someone else')], max_length=8)),
                        ('outside_gitops', models.BooleanField(default=False)),
                        ('cluster', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='audit_events', to='inventory.cluster')),
                    ],
                    options={
                        'ordering': ['-request_received_at', '-id'],
                        'indexes': [models.Index(fields=['cluster', 'resource', 'namespace', 'name', 'request_received_at'], name='clusteraudit_object'), models.Index(fields=['cluster', 'request_received_at'], name='clusteraudit_cluster_time'), models.Index(fields=['username', 'request_received_at'], name='clusteraudit_user_time'), models.Index(condition=models.Q(('outside_gitops', True)), fields=['request_received_at'], name='clusteraudit_outside_time'), models.Index(condition=models.Q(('outside_gitops', True)), fields=['cluster', 'request_received_at'], name='clusteraudit_outside_cluster')],
                        'constraints': [models.UniqueConstraint(fields=('cluster', 'audit_id', 'stage', 'request_received_at'), name='clusteraudit_event_once')],
                    },
                ),
            ],
        ),
        migrations.RunPython(_create_event_table, _drop_event_table),
    ]
