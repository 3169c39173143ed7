"""Desired sets encrypted at rest: the cache is emptied (it refills on the next scans)."""

from django.db import migrations, models


def empty_the_cache(apps, schema_editor):
    apps.get_model("drift", "DesiredSet").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("drift", "0002_watch_trigger")]

    operations = [
        migrations.RunPython(empty_the_cache, migrations.RunPython.noop),
        migrations.RemoveField(model_name="desiredset", name="manifests"),
        migrations.AddField(model_name="desiredset", name="manifests_encrypted", field=models.TextField(default=""),
                            preserve_default=False),
    ]
