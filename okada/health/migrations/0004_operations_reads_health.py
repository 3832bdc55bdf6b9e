# The Operations role reads the health screens and alerts and acknowledges alerts; acting on the
# database (cancel, terminate, reset statistics) stays with superusers.
from django.db import migrations

GRANTS = {
    "Operations": [
        "health.view_database_health",
        "health.view_alert",
        "health.acknowledge_alert",
        "health.view_databaseaction",
    ]
}


def _permissions(apps, names):
    from django.contrib.auth.management import create_permissions

    config = apps.get_app_config("health")
    if getattr(config, "models_module", None) is None:
        config.models_module = True  # create_permissions skips app configs without one
    create_permissions(config, apps=apps, verbosity=0)
    Permission = apps.get_model("auth", "Permission")
    found = list(
        Permission.objects.filter(content_type__app_label="health", codename__in=[n.split(".", 1)[1] for n in names])
    )
    if len(found) != len(names):
        raise LookupError(f"unknown permissions among {names}")
    return found


def grant(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for role, names in GRANTS.items():
        group, _created = Group.objects.get_or_create(name=role)
        group.permissions.add(*_permissions(apps, names))


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for role, names in GRANTS.items():
        group = Group.objects.filter(name=role).first()
        if group is not None:
            group.permissions.remove(*_permissions(apps, names))


class Migration(migrations.Migration):
    dependencies = [
        ("health", "0003_default_schedules"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
