"""`python -m bench`: run every benchmark, write bench/results/<date>.json and BENCHMARKS.md."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench import avro_codec, drift, rest, scorer, simulator, training
from bench.harness import Figure, machine

BENCHMARKS = {
    "avro_codec": avro_codec.run,
    "simulator": simulator.run,
    "training": training.run,
    "scorer": scorer.run,
    "rest": rest.run,
    "drift": drift.run,
}
ROOT = Path(__file__).resolve().parent.parent


def _markdown(figures: list[Figure], description: dict[str, object], when: str, rerun: list[str]) -> str:
    measured = f"Measured {when} by `make bench`"
    if rerun:
        measured += f" (re-measured by `python -m bench {' '.join(rerun)}`; other rows kept from the previous run)"
    lines = [
        "# Benchmarks",
        "",
        f"{measured} on: {description['platform']}, {description['cpus']} CPUs, "
        f"Python {description['python']}, load average {description['load_average']}.",
        "Every figure has a baseline measured in the same run; the ratio is figure / baseline.",
        "",
        "| benchmark | metric | value | baseline | baseline value | ratio | target |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for f in figures:
        lines.append(
            f"| {f.benchmark} | {f.metric} | {f.value} {f.unit} | {f.baseline_name} | {f.baseline} {f.unit} "
            f"| {f.ratio:.2f} | {f.target} |"
        )
    return "\n".join(lines) + "\n"


def _with_previous(results: Path, figures: list[Figure]) -> list[Figure]:
    """A partial run's figures, in place of their benchmarks' rows in the latest full results.

    Without this, re-measuring one benchmark would leave a results file and BENCHMARKS.md holding only it.
    """
    previous = sorted(results.glob("*.json"))
    if not previous:
        return figures
    fresh = {f.benchmark for f in figures}
    merged: list[Figure] = []
    for row in json.loads(previous[-1].read_text())["figures"]:
        if row["benchmark"] in fresh:
            merged.extend(f for f in figures if f.benchmark == row["benchmark"] and f not in merged)
        else:
            merged.append(Figure(**{k: v for k, v in row.items() if k != "ratio"}))
    merged.extend(f for f in figures if f not in merged)
    return merged


def main(selected: list[str]) -> None:
    unknown = set(selected) - BENCHMARKS.keys()
    if unknown:
        sys.exit(f"unknown benchmark(s) {sorted(unknown)}; known: {sorted(BENCHMARKS)}")
    figures: list[Figure] = []
    for name, run in BENCHMARKS.items():
        if not selected or name in selected:
            figures.extend(run())
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    description = machine()
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    if selected:
        figures = _with_previous(results, figures)
    payload = {"date": when, "machine": description, "figures": [f.as_dict() for f in figures]}
    if selected:
        payload["rerun"] = selected
    (results / f"{when}.json").write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    (ROOT / "BENCHMARKS.md").write_text(_markdown(figures, description, when, selected))
    print(json.dumps(payload, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main(sys.argv[1:])
