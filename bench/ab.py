"""Two git revisions measured in turn on one machine, for a benchmark's A/B mode.

``checkouts`` makes a detached worktree of each revision under a temporary
directory (removed afterwards); the benchmark runs its own measuring code
against each tree, alternately, round after round, so that the machine's noise
falls on both alike. ``summarise`` gives each figure's median and range per
revision and the B/A ratio of the medians; ``markdown_table`` prints them for
docs/benchmarks.md.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Revision:
    label: str  # "A" or "B"
    rev: str  # as given on the command line, e.g. main~1
    commit: str
    subject: str
    tree: Path

    @property
    def short(self) -> str:
        return self.commit[:7]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


@contextmanager
def checkouts(repo: Path, revs: Sequence[str]) -> Iterator[list[Revision]]:
    """A detached worktree of each of the two ``revs`` (labelled A and B), removed on the way out."""
    base = Path(tempfile.mkdtemp(prefix="gemproxy-ab-"))
    made: list[Path] = []
    try:
        revisions = []
        for label, rev in zip("AB", revs, strict=True):
            commit = git(repo, "rev-parse", "--verify", f"{rev}^{{commit}}")
            tree = base / label
            git(repo, "worktree", "add", "--detach", "--quiet", str(tree), commit)
            made.append(tree)
            subject = git(tree, "log", "-1", "--format=%s")
            revisions.append(Revision(label, rev, commit, subject, tree))
        yield revisions
    finally:
        for tree in made:
            git(repo, "worktree", "remove", "--force", str(tree))
        shutil.rmtree(base, ignore_errors=True)


def summarise(rounds: Sequence[tuple[str, dict[str, float]]], labels: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per figure: each label's median, min, max and count over its rounds, and each later label's ratio to the first's.

    ``rounds`` is (label, figures) per round; a figure missing from some rounds is summarised over the others.
    """
    names = list(dict.fromkeys(name for _, figures in rounds for name in figures))
    summary: dict[str, dict[str, Any]] = {}
    for name in names:
        row: dict[str, Any] = {}
        for label in labels:
            values = [figures[name] for got, figures in rounds if got == label and name in figures]
            if values:
                row[label] = {
                    "median": statistics.median(values),
                    "min": min(values),
                    "max": max(values),
                    "n": len(values),
                }
        first = row.get(labels[0], {}).get("median")
        for label in labels[1:]:
            if label in row and first and first > 0:  # a ratio to a noisy zero or a negative figure says nothing
                row[f"{label}/{labels[0]}"] = round(row[label]["median"] / first, 3)
        summary[name] = row
    return summary


def _number(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def markdown_table(summary: dict[str, dict[str, Any]], revisions: Sequence[Revision]) -> str:
    """One row per figure: median [min..max] for each revision, then B/A."""
    first = revisions[0].label
    header = ["", *(f"{r.label} `{r.short}`" for r in revisions), *(f"{r.label}/{first}" for r in revisions[1:])]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for name, row in summary.items():
        cells = [name]
        for revision in revisions:
            stats = row.get(revision.label)
            cells.append(
                f"{_number(stats['median'])} [{_number(stats['min'])}..{_number(stats['max'])}]" if stats else "-"
            )
        for revision in revisions[1:]:
            ratio = row.get(f"{revision.label}/{first}")
            cells.append(f"{ratio:.2f}" if ratio is not None else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
