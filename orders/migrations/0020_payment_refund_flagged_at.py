"""Since when a refund is owed: Finance counts the days waiting from the flag, not from the
payment's creation (a mobile-money request may be paid days after it was made, after its order
expired). One nullable column (no rewrite), filled for the payments flagged so far from the note
event the flag wrote on their order's timeline (failing that, from when the money arrived: the
flag is set as it arrives), then a CHECK that a refund owed says since when. No index: the lists
read the flagged payments from the partial index orders_payment_needs_refund."""

from django.conf import settings
from django.db import migrations, models

# The flag's note event: kind note, {"needs_refund": true, "payment_id": ...} (orders.services._settle),
# found through the timeline's index on (order_id, created_at). Settled refunds were flagged too.
BACKFILL = """
UPDATE orders_payment p
   SET refund_flagged_at = coalesce(
           (SELECT min(e.created_at)
              FROM orders_orderevent e
             WHERE e.order_id = p.order_id
               AND e.kind = 'note'
               AND e.data ->> 'payment_id' = p.id::text
               AND e.data ->> 'needs_refund' = 'true'),
           p.paid_at,
           p.created_at)
 WHERE p.needs_refund OR p.refund_settled_at IS NOT NULL
"""


class Migration(migrations.Migration):

    dependencies = [
        ('orders', '0019_payment_refund_settled'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='payment',
            name='refund_flagged_at',
            field=models.DateTimeField(blank=True, db_comment='When the payment was flagged needs_refund (UTC; kept once settled); NULL if never.', null=True, verbose_name='refund owed since'),
        ),
        migrations.RunSQL(BACKFILL, migrations.RunSQL.noop),
        migrations.AddConstraint(
            model_name='payment',
            constraint=models.CheckConstraint(condition=models.Q(('needs_refund', False), ('refund_flagged_at__isnull', False), _connector='OR'), name='orders_payment_owed_since'),
        ),
    ]
