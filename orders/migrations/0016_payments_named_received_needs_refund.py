"""Payments counted once: named by the caller, received amount kept apart, needs_refund a column.

- `idempotency_key` (unique when given) names a write whose payment has no provider reference
  (cash): a retried entry finds the first payment instead of recording a second one. The
  provider reference may now be blank (unique per provider when given); one of the two names
  is required (CHECK orders_payment_named). Existing rows all have a reference.
- `received_xaf`: what arrived, set when a payment succeeds; `amount_xaf` stays what was asked
  for. Existing successful payments received their amount (a callback used to overwrite it).
- `needs_refund`, with a partial index for Finance's list. Existing successful payments of
  expired or cancelled orders are the ones the code flagged with a note event until now.
"""

from django.db import migrations, models

# One UPDATE: a second write of a row in the same transaction would queue its (deferred) foreign
# key check, and ALTER TABLE refuses a table with pending trigger events.
BACKFILL = """
UPDATE orders_payment p
   SET received_xaf = p.amount_xaf,
       needs_refund = EXISTS (SELECT FROM orders_order o
                               WHERE o.id = p.order_id AND o.status IN ('expired', 'cancelled'))
 WHERE p.status = 'succeeded';
"""


class Migration(migrations.Migration):

    dependencies = [
        ('orders', '0015_order_place_v5'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='payment',
            name='orders_payment_provider_ref_uniq',
        ),
        migrations.AddField(
            model_name='payment',
            name='idempotency_key',
            field=models.CharField(blank=True, db_comment="The caller's name for this payment write (e.g. Idempotency-Key); unique when given.", db_default='', default='', max_length=255, verbose_name='idempotency key'),
        ),
        migrations.AddField(
            model_name='payment',
            name='needs_refund',
            field=models.BooleanField(db_comment='Money received that does not fit the order (after expiry or cancel, more than the total, not the amount requested): Finance refunds it.', db_default=False, default=False, verbose_name='needs refund'),
        ),
        migrations.AddField(
            model_name='payment',
            name='received_xaf',
            field=models.BigIntegerField(blank=True, db_comment='Amount that arrived, set when the payment succeeded; NULL otherwise (integer XAF).', null=True, verbose_name='received (XAF)'),
        ),
        migrations.RunSQL(BACKFILL, migrations.RunSQL.noop),
        migrations.AlterField(
            model_name='payment',
            name='amount_xaf',
            field=models.BigIntegerField(db_comment='Amount asked for (mobile-money request) or recorded (cash) (integer XAF).', verbose_name='amount (XAF)'),
        ),
        migrations.AlterField(
            model_name='payment',
            name='provider_reference',
            field=models.CharField(blank=True, db_comment='Transaction id at the provider; unique per provider when given.', db_default='', default='', max_length=100, verbose_name='provider reference'),
        ),
        migrations.AddIndex(
            model_name='payment',
            index=models.Index(condition=models.Q(('needs_refund', True)), fields=['-created_at'], name='orders_payment_needs_refund'),
        ),
        migrations.AddConstraint(
            model_name='payment',
            constraint=models.UniqueConstraint(condition=models.Q(('provider_reference', ''), _negated=True), fields=('provider', 'provider_reference'), name='orders_payment_provider_ref_uniq'),
        ),
        migrations.AddConstraint(
            model_name='payment',
            constraint=models.UniqueConstraint(condition=models.Q(('idempotency_key', ''), _negated=True), fields=('idempotency_key',), name='orders_payment_idempotency_key_uniq'),
        ),
        migrations.AddConstraint(
            model_name='payment',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('provider_reference', ''), _negated=True), models.Q(('idempotency_key', ''), _negated=True), _connector='OR'), name='orders_payment_named'),
        ),
        migrations.AddConstraint(
            model_name='payment',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('received_xaf__gt', 0), ('received_xaf__isnull', False), ('status', 'succeeded')), models.Q(models.Q(('status', 'succeeded'), _negated=True), ('received_xaf__isnull', True)), _connector='OR'), name='orders_payment_received_iff_succeeded'),
        ),
    ]
