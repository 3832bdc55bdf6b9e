"""`manage.py maintain_partitions [--dry-run]`: run partition maintenance now, or print its plan.

Like every command of ours it prints English whatever LANGUAGE_CODE says (`no_translations`):
operators and cron read one language, the one the README quotes. The admin shows the same plan
in each user's language.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, no_translations

from okada.core.jobs import JobSkipped
from okada.core.texts import english
from okada.partitions.services import MaintenanceFailed, Plan, maintenance_plan


def render_plan(plan: Plan) -> str:
    lines = [f"Partition maintenance plan at {plan.now:%Y-%m-%d %H:%M} UTC:"]
    if plan.is_empty:
        lines.append("  nothing to do.")
    for step in plan.steps:
        bounds = ""
        if step.starts_at and step.ends_at:
            bounds = f"  [{step.starts_at:%Y-%m-%d} .. {step.ends_at:%Y-%m-%d})"
        lines.append(f"  {step.table}: {step.describe()}{bounds}")
    for warning in plan.warnings:
        lines.append(f"  warning: {warning}")
    return "\n".join(lines)


class Command(BaseCommand):
    help = "Run partition maintenance now (single-flight, logged), or print what it would do (--dry-run)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")

    @no_translations
    def handle(self, *args: Any, dry_run: bool = False, **options: Any) -> None:
        if dry_run:
            self.stdout.write(render_plan(maintenance_plan()))
            return
        from okada.partitions.tasks import maintain_partitions

        try:
            summary = maintain_partitions()  # in this process, through job(): a JobRun, the same lock
        except JobSkipped:
            raise CommandError("Another maintenance run is in progress: nothing done.") from None
        except MaintenanceFailed as exc:
            raise CommandError(str(exc)) from None
        for label in summary["done"]:
            self.stdout.write(f"done: {label}")
        for label in summary["deferred"]:
            self.stdout.write(f"deferred (next run retries): {english(label)}")
        for warning in summary["warnings"]:
            self.stdout.write(f"warning: {english(warning)}")
        if not summary["done"] and not summary["deferred"]:
            self.stdout.write("Nothing to do.")
