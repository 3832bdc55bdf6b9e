"""Rows written before query values were kept out (long-query alerts, the action log's targets, the
Queries screen's texts) still held them: the same scrub (pg.without_literals) applied to them."""

import re

from django.db import migrations
from django.db.models import Q

BATCH = 500

# okada.health.pg.without_literals as it was when this migration was written (a migration keeps
# doing what it did, whatever that function becomes).
_TOKENS = re.compile(
    r"""(?P<keep>"(?:[^"]|"")*"?|--[^\n]*|/\*.*?(?:\*/|$))"""
    r"""|\$(?P<tag>[A-Za-z_][A-Za-z_0-9]*|)\$.*?(?:\$(?P=tag)\$|$)"""  # $$...$$, $x$...$x$
    r"""|[Ee]'(?:[^'\\]|''|\\.)*(?:'|$)"""  # E'...': backslash escapes
    r"""|[BbXxNn]?'(?:[^']|'')*(?:'|$)""",  # '...': a backslash is itself
    re.DOTALL,
)


def without_literals(sql):
    return _TOKENS.sub(lambda m: m.group("keep") or "'…'", sql or "")


def _quoting(field, lookup="contains"):
    """Rows whose `field` may hold a literal: a quote or a dollar quote (`icontains` for a JSON
    key: its `contains` is JSON containment, not text)."""
    return Q(**{f"{field}__{lookup}": "'"}) | Q(**{f"{field}__{lookup}": "$"})


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
    _scrub(QueryText, "text", QueryText.objects.filter(_quoting("text")).iterator(chunk_size=BATCH))
    _scrub(DatabaseAction, "target", DatabaseAction.objects.filter(_quoting("target")).iterator())
    for alert in Alert.objects.filter(
        _quoting("data__params__query", "icontains"), kind="long_query"
    ).iterator():
        query = alert.data["params"]["query"]
        scrubbed = without_literals(query)
        if scrubbed != query:
            alert.data["params"]["query"] = scrubbed
            alert.message = alert.message.replace(query, scrubbed)
            alert.save(update_fields=["data", "message"])


class Migration(migrations.Migration):
    dependencies = [("health", "0006_more_verbose_names")]

    operations = [migrations.RunPython(scrub, migrations.RunPython.noop, elidable=True)]
