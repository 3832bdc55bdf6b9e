"""One table for every figure: what was measured, against which baseline, and whether it met its goal."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    baseline: str = ""  # what the value is compared with, measured in the same run
    baseline_value: float | None = None
    goal: str = ""  # human-readable, e.g. ">= 0.40 x baseline"
    check: Callable[[Figure], bool] | None = None  # None: reported, not judged

    @property
    def ratio(self) -> float | None:
        if self.baseline_value:
            return self.value / self.baseline_value
        return None

    @property
    def verdict(self) -> str:
        if self.check is None:
            return "-"
        return "PASS" if self.check(self) else "FAIL"


def at_least(minimum: float) -> Callable[[Figure], bool]:
    return lambda f: f.value >= minimum


def at_most(maximum: float) -> Callable[[Figure], bool]:
    return lambda f: f.value <= maximum


def _number(value: float | None) -> str:
    if value is None:
        return ""
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"


def render(figures: Sequence[Figure]) -> str:
    header = ("figure", "value", "unit", "baseline", "baseline value", "ratio", "goal", "result")
    lines = [
        (
            f.name,
            _number(f.value),
            f.unit,
            f.baseline,
            _number(f.baseline_value),
            f"{f.ratio:.2f}" if f.ratio is not None else "",
            f.goal,
            f.verdict,
        )
        for f in figures
    ]
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    right = {1, 4, 5}  # numbers

    def fmt(row: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(header), rule, *(fmt(row) for row in lines)])
