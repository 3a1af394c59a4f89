"""The A/B mode of the benchmarks: worktrees of the two revisions, and the summary over the rounds."""

from __future__ import annotations

from pathlib import Path

from bench.ab import Revision, checkouts, git, markdown_table, summarise

ROOT = Path(__file__).resolve().parents[1]


def revision(label: str, commit: str) -> Revision:
    return Revision(label, f"rev-{label}", commit, f"subject {label}", Path("/nowhere"))


def test_summary_gives_median_and_range_per_revision_and_the_ratio_of_medians() -> None:
    rounds = [
        ("A", {"cpu": 2.0}),
        ("B", {"cpu": 1.0}),
        ("A", {"cpu": 4.0}),
        ("B", {"cpu": 1.5}),
        ("A", {"cpu": 3.0}),
        ("B", {"cpu": 9.0}),
    ]

    summary = summarise(rounds, ["A", "B"])

    assert summary["cpu"]["A"] == {"median": 3.0, "min": 2.0, "max": 4.0, "n": 3}
    assert summary["cpu"]["B"] == {"median": 1.5, "min": 1.0, "max": 9.0, "n": 3}
    assert summary["cpu"]["B/A"] == 0.5


def test_summary_has_no_ratio_where_a_is_zero_or_negative() -> None:
    summary = summarise([("A", {"zero": 0.0, "negative": -0.5}), ("B", {"zero": 1.0, "negative": 1.0})], ["A", "B"])

    assert "B/A" not in summary["zero"]
    assert "B/A" not in summary["negative"]


def test_markdown_table_has_a_row_per_figure_with_median_range_and_ratio() -> None:
    summary = summarise([("A", {"req/s": 700.0}), ("B", {"req/s": 1400.0}), ("A", {"req/s": 710.0})], ["A", "B"])

    table = markdown_table(summary, [revision("A", "a" * 40), revision("B", "b" * 40)])

    header, rule, row = table.splitlines()
    assert header == "|  | A `aaaaaaa` | B `bbbbbbb` | B/A |"
    assert rule == "| --- | --- | --- | --- |"
    assert row == "| req/s | 705 [700..710] | 1400 [1400..1400] | 1.99 |"


def test_checkouts_are_detached_worktrees_of_each_revision_removed_afterwards() -> None:
    head = git(ROOT, "rev-parse", "HEAD")
    parent = git(ROOT, "rev-parse", "HEAD~1")

    with checkouts(ROOT, ["HEAD~1", "HEAD"]) as (a, b):
        assert (a.label, a.commit, b.label, b.commit) == ("A", parent, "B", head)
        assert git(a.tree, "rev-parse", "HEAD") == parent
        assert git(b.tree, "rev-parse", "HEAD") == head
        assert git(b.tree, "branch", "--show-current") == ""  # detached: no branch is moved
        assert (b.tree / "bench" / "bench_relay.py").is_file()
        trees = [a.tree, b.tree]

    assert not any(tree.exists() for tree in trees)
    assert not any(str(tree) in git(ROOT, "worktree", "list") for tree in trees)
