"""Rows written before query values were kept out (long-query alerts, the action log's targets, the
Queries screen's texts) still held them: the same scrub (pg.without_literals) applied to them."""

from django.db import migrations

from okada.health.pg import without_literals

BATCH = 500


def _scrub(model, field, rows):
    changed = []
    for row in rows:
        text = getattr(row, field)
        scrubbed = without_literals(text)
        if scrubbed != text:
            setattr(row, field, scrubbed)
            changed.append(row)
        if len(changed) >= BATCH:
            model.objects.bulk_update(changed, [field])
            changed = []
    model.objects.bulk_update(changed, [field])


def scrub(apps, schema_editor):
    QueryText = apps.get_model("health", "QueryText")
    DatabaseAction = apps.get_model("health", "DatabaseAction")
    Alert = apps.get_model("health", "Alert")
    _scrub(QueryText, "text", QueryText.objects.filter(text__contains="'").iterator(chunk_size=BATCH))
    _scrub(DatabaseAction, "target", DatabaseAction.objects.filter(target__contains="'").iterator())
    for alert in Alert.objects.filter(kind="long_query", data__params__query__icontains="'").iterator():
        query = alert.data["params"]["query"]
        scrubbed = without_literals(query)
        if scrubbed != query:
            alert.data["params"]["query"] = scrubbed
            alert.message = alert.message.replace(query, scrubbed)
            alert.save(update_fields=["data", "message"])


class Migration(migrations.Migration):
    dependencies = [("health", "0006_more_verbose_names")]

    operations = [migrations.RunPython(scrub, migrations.RunPython.noop, elidable=True)]
