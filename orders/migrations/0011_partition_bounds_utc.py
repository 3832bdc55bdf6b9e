"""Partition bounds are exact UTC months: re-make any partition whose bounds are not (a partition
made with date strings in a session whose TimeZone was not UTC), keeping every row. A no-op on
databases made by Django, whose sessions use UTC."""

from django.db import migrations

from okada.partitions.ddl import repair_month_bounds_operation


class Migration(migrations.Migration):
    dependencies = [("orders", "0010_order_place_v4")]

    operations = [repair_month_bounds_operation("orders_orderevent")]
