"""Fill ``applied_refs`` from where the apply step used to keep them: its display record
(``steps["apply"]["detail"]["refs"]``), so a deployment resumed after the upgrade still
verifies, and a baking one still rechecks, what its apply put on the cluster."""

from django.db import migrations

BATCH = 500


def _applied(apps):
    model = apps.get_model("rollouts", "ClusterDeployment")
    return model, model.objects.filter(steps__has_key="apply").only("pk", "steps", "applied_refs")


def refs_from_steps(apps, schema_editor):
    model, rows = _applied(apps)
    changed = []
    for deployment in rows.iterator(chunk_size=BATCH):
        refs = (deployment.steps["apply"].get("detail") or {}).get("refs")
        if refs and not deployment.applied_refs:
            deployment.applied_refs = refs
            changed.append(deployment)
    model.objects.bulk_update(changed, ["applied_refs"], batch_size=BATCH)


def refs_into_steps(apps, schema_editor):
    """Back to the old place, for the code before this migration to find them there."""
    model, rows = _applied(apps)
    changed = []
    for deployment in rows.iterator(chunk_size=BATCH):
        record = deployment.steps["apply"]
        if deployment.applied_refs and not (record.get("detail") or {}).get("refs"):
            record["detail"] = {**(record.get("detail") or {}), "refs": deployment.applied_refs}
            changed.append(deployment)
    model.objects.bulk_update(changed, ["steps"], batch_size=BATCH)


class Migration(migrations.Migration):
    dependencies = [("rollouts", "0002_deployment_applied_refs")]

    operations = [migrations.RunPython(refs_from_steps, refs_into_steps)]
