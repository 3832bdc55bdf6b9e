"""django-celery-beat's schedules in words, in the reader's language.

beat's models name themselves in English wherever Django shows an object (the admin's titles,
breadcrumbs, the crontab picker, inline rows, delete and history pages): a crontab as
"0 3 * * * (m/h/dM/MY/d) Africa/Douala", a schedule by its stored English name. Django has no
per-ModelAdmin way to change how an object names itself, and proxy models would change the admin's
URLs and the permissions the roles are built on, so `name_beat_models()` (run by CoreConfig.ready,
in every process) replaces their `__str__`. That is safe outside the admin: beat's scheduler and
its log lines read the fields, the task names and Celery's own schedule objects, never these.
"""

from __future__ import annotations

import calendar
import re

from django.utils.translation import get_language, gettext
from django.utils.translation import gettext_lazy as _
from django_celery_beat import models as beat

# The English names of days and months, as cron_descriptor writes them.
_CALENDAR_NAMES = re.compile(r"\b({})\b".format("|".join([*calendar.day_name, *calendar.month_name[1:]])))


def cron_expression(crontab: beat.CrontabSchedule) -> str:
    """The five fields, "0 3 * * *" (beat's own string adds English: "(m/h/dM/MY/d)")."""
    fields = (crontab.minute, crontab.hour, crontab.day_of_month, crontab.month_of_year, crontab.day_of_week)
    return " ".join(beat.cronexp(f) for f in fields)


def cron_in_words(crontab: beat.CrontabSchedule) -> str:
    """A crontab in words in the active language: beat's `human_readable` is English only."""
    from cron_descriptor import ExpressionDescriptor, FormatException, MissingFieldException, Options

    options = Options()
    options.locale_code = "fr_FR" if (get_language() or "").startswith("fr") else "en_US"
    options.use_24hour_time_format = True
    expression = cron_expression(crontab)
    try:
        words = ExpressionDescriptor(expression, options).get_description()
    except (FormatException, MissingFieldException):
        return f"{expression} ({crontab.timezone})"
    # cron_descriptor names days and months from the process's locale (English), even in its
    # French sentences: Django's catalogue has them ("June" -> "juin").
    words = _CALENDAR_NAMES.sub(lambda name: gettext(name[0]), words)
    return f"{words} ({crontab.timezone})"


def _periodic_task_name(task: beat.PeriodicTask) -> str:
    return gettext("%(name)s: %(schedule)s") % {"name": gettext(task.name), "schedule": task.scheduler or "-"}


def name_beat_models() -> None:
    """A crontab in words, a schedule by its name in the reader's language (see the docstring)."""
    beat.CrontabSchedule.__str__ = cron_in_words
    beat.PeriodicTask.__str__ = _periodic_task_name
    # beat names clocked schedules "clocked" in the singular and the plural: one msgid, so no
    # catalogue can give French its plural ("horaire" / "horaires"). A plural of our own, set on
    # the model's options only (not `original_attrs`, which migrations read: no migration).
    beat.ClockedSchedule._meta.verbose_name_plural = _("clocked schedules")
