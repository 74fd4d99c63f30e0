"""The register benchmark's one table: medians over pairs, ratios per pair."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
from dataclasses import dataclass, field
from datetime import date

from bench.population import Plan


@dataclass
class Comparison:
    figure: str
    baseline: str
    target_ratio: float | None = None
    higher_is_better: bool = True
    unit: str = "/s"
    # An absolute bound on Herald's own figure (figure 3's p99).
    limit: float | None = None
    baseline_values: list[float] = field(default_factory=list)
    herald_values: list[float] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        # Pair i holds the i-th value of each side: A and B ran back to back.
        return [h / b for b, h in zip(self.baseline_values, self.herald_values, strict=False) if b]

    def target(self) -> str:
        parts = []
        if self.target_ratio is not None:
            sign = "≥" if self.higher_is_better else "≤"
            parts.append(f"ratio {sign} {self.target_ratio:g}")
        if self.limit is not None:
            parts.append(f"Herald < {self.limit:g} {self.unit}")
        return ", ".join(parts) or "—"

    def verdict(self) -> str:
        if not self.ratios:
            return "no data"
        checks = []
        ratio = statistics.median(self.ratios)
        if self.target_ratio is not None:
            checks.append(
                ratio >= self.target_ratio if self.higher_is_better else ratio <= self.target_ratio
            )
        if self.limit is not None:
            checks.append(statistics.median(self.herald_values) < self.limit)
        if not checks:
            return "—"
        return "met" if all(checks) else "**missed**"

    def row(self) -> str:
        if not self.ratios:
            return f"| {self.figure} | {self.baseline} | - | - | - | {self.target()} | no data |"
        base = statistics.median(self.baseline_values)
        herald = statistics.median(self.herald_values)
        ratios = self.ratios
        spread = f"{min(ratios):.2f} to {max(ratios):.2f}"
        return (
            f"| {self.figure} | {self.baseline} | {base:.1f} | {herald:.1f} | "
            f"**{statistics.median(ratios):.2f}** ({spread}) | {self.target()} | {self.verdict()} |"
        )


@dataclass
class Table:
    pairs: int
    rows: list[Comparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    plans: list[Plan] = field(default_factory=list)
    plans_scale: str = ""

    def add(self, comparison: Comparison) -> Comparison:
        self.rows.append(comparison)
        return comparison

    def render(self, args: argparse.Namespace) -> str:
        lines = [
            "",
            f"Register path, {date.today().isoformat()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}; {self.pairs} alternating A/B pairs per figure"
            f"{' (--quick)' if args.quick else ''}. Baseline and Herald are medians over "
            "pairs; the ratio (Herald / baseline) is the median of the per-pair ratios, "
            "with their range.",
            "",
            "| figure | baseline | baseline value | Herald | ratio (range) | target | |",
            "|---|---|---|---|---|---|---|",
            *(row.row() for row in self.rows),
        ]
        if self.notes or self.problems:
            lines.append("")
        lines += [f"- {note}" for note in self.notes]
        lines += [f"- **problem**: {problem}" for problem in self.problems]
        if self.plans:
            seq = sum(plan.seq_scans for plan in self.plans)
            lines += [
                "",
                f"Plans of the hot statements at {self.plans_scale} existing users "
                f"(EXPLAIN (ANALYZE, BUFFERS), rolled back): "
                f"{'no sequential scan' if seq == 0 else f'**{seq} sequential scans**'}.",
            ]
            for plan in self.plans:
                lines += [
                    "",
                    f"{plan.name}: {plan.sql}",
                    "```",
                    plan.text,
                    "```",
                ]
        return "\n".join(lines)
