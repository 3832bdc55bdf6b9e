"""Finance's follow-up of money to refund: who recorded a refund as settled, and when
(orders.services.payment_refund_settle clears `needs_refund`). Two nullable columns (no rewrite)
and a CHECK that a settled refund is no longer owed (true of every existing row: both NULL)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('orders', '0018_index_budget'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='payment',
            name='refund_settled_at',
            field=models.DateTimeField(blank=True, db_comment='When Finance recorded the refund owed as settled (UTC); NULL otherwise.', null=True, verbose_name='refund settled at'),
        ),
        migrations.AddField(
            model_name='payment',
            name='refund_settled_by',
            field=models.ForeignKey(blank=True, db_comment='Finance user who recorded the refund as settled.', db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='refund settled by'),
        ),
        migrations.AddConstraint(
            model_name='payment',
            constraint=models.CheckConstraint(condition=models.Q(('refund_settled_at__isnull', True), ('needs_refund', False), _connector='OR'), name='orders_payment_settled_not_owed'),
        ),
    ]
