"""report.py's output: the run's header, the markdown table, the CSV and progress lines; and
write_rows, the table and CSV of the reports whose rows are plain dicts."""

from __future__ import annotations

import csv
import datetime
import hashlib
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch
from cases import IMPLEMENTATIONS, KNOWN_INACCURATE
from layouts import format_n
from timing import TOLERANCE, CaseResult, Measurement

import sap_kernels

ROOT = Path(__file__).resolve().parents[1]
TITLES = dict(IMPLEMENTATIONS)
OMP_VARIABLES = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def cpu_model() -> str:
    """'model name (family F model M)' from /proc/cpuinfo, else platform's word."""
    fields = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor() or platform.machine()
    name = fields.get("model name", platform.processor() or platform.machine())
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']} model {fields['model']})"
    return name


def git_state() -> str:
    """'<short commit>' plus '+dirty' when the working tree differs, or 'unknown'."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return "unknown"
    return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def extension_state() -> str:
    """Which compiled extension ran: file name, sha256 prefix and modification time."""
    if not sap_kernels.native_available():
        return "not built (torch backend only)"
    path = Path(sap_kernels._native._extension.__file__)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    mtime = datetime.datetime.fromtimestamp(path.stat().st_mtime).isoformat(timespec="seconds")
    copies = f"kernel copy {sap_kernels.cpu_isa()} of {', '.join(sap_kernels.cpu_isas())}"
    return f"{path.name} sha256 {digest}, built {mtime}; {copies}"


def header_lines(args) -> list[str]:
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    omp = ", ".join(f"{name}={os.environ.get(name)}" for name in OMP_VARIABLES)
    threads = f"torch.get_num_threads() = {torch.get_num_threads()}; {omp}"
    return [
        f"- date: {now}",
        f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores",
        f"- threads: {threads}",
        f"- torch {torch.__version__}, Python {platform.python_version()}",
        f"- params: {args.dtype} (standard normal values)",
        f"- sap_kernels {sap_kernels.__version__} (git {git_state()})",
        f"- extension: {extension_state()}",
        f"- command: {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}",
        f"- rounds: median of {args.rounds} after one warm-up call; slow peers (paper eager, "
        f"eager / compiled reference) at n >= {format_n(args.slow_from)}: "
        f"{args.slow_rounds} rounds, no warm-up",
    ]


def format_ms(ms: float) -> str:
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    if ms >= 1:
        return f"{ms:.2f}"
    return f"{ms:.3f}"


def time_cell(measurement: Measurement, rounds: int) -> str:
    if measurement.median_ms is None:
        return "n/a"
    cell = format_ms(measurement.median_ms)
    if measurement.rounds < rounds:
        cell += f" ({measurement.rounds}r)"
    if measurement.correct is False:
        cell += " ✗"
    return cell


def ratio_cell(result: CaseResult, measurement: Measurement) -> str:
    ratio = result.ratio(measurement)
    return "–" if ratio is None else f"{ratio:.2f}"


def table_columns(results: list[CaseResult]) -> list[str]:
    """The implementation keys present, in table order."""
    present = {m.key for result in results for m in result.measurements}
    return [key for key, _ in IMPLEMENTATIONS if key in present]


def markdown_table(results: list[CaseResult], rounds: int) -> list[str]:
    keys = table_columns(results)
    head = ["layout", "n", "S", "p", "q", "torch.sum ms"]
    for key in keys:
        head += [f"{TITLES[key]} ms", "×sum"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for result in results:
        by_key = {m.key: m for m in result.measurements}
        row = [result.layout, format_n(result.n), str(result.num_segments), f"{result.p:g}"]
        row += [f"{result.q:g}", format_ms(result.sum_ms)]
        for key in keys:
            row += [time_cell(by_key[key], rounds), ratio_cell(result, by_key[key])]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def footnotes(results: list[CaseResult]) -> list[str]:
    """Why cells are n/a (one line per reason, with where), and every result off sap_kernels
    by more than the tolerance."""
    reasons: dict[tuple[str, str], list[str]] = {}
    wrong, wrong_keys = [], set()
    for result in results:
        for m in result.measurements:
            if m.note:
                where = reasons.setdefault((m.key, m.note), [])
                place = f"{result.layout} {format_n(result.n)}"
                if place not in where:
                    where.append(place)
            if m.correct is False:
                wrong_keys.add(m.key)
                wrong.append(
                    f"- ✗ {TITLES[m.key]}, {result.layout} n={format_n(result.n)} p={result.p:g} "
                    f"q={result.q:g}: max |PQI - sap_kernels| = {m.error:.3g} > {TOLERANCE:g}"
                )
    notes = [
        f"- {TITLES[key]}: {note} at {', '.join(where)}" for (key, note), where in reasons.items()
    ]
    known = [key for key in KNOWN_INACCURATE if key in wrong_keys]
    notes += [f"- ✗ {TITLES[key]}: {KNOWN_INACCURATE[key]}" for key in known]
    return notes + wrong


def markdown_report(
    header: list[str], results: list[CaseResult], rounds: int, elapsed: float
) -> str:
    lines = ["# Per-segment PQ Index: time (ms, median) and ratio to torch.sum", ""]
    lines += header + [f"- wall time of the run: {elapsed / 60:.1f} min", ""]
    lines += markdown_table(results, rounds)
    lines += [
        "",
        "×sum: median time / median torch.sum time of the same buffer, timed in the same "
        "rounds. (Nr): only N rounds. ✗: result off sap_kernels by more than "
        f"{TOLERANCE:g}. S: segments.",
    ]
    notes = footnotes(results)
    if notes:
        lines += ["", "Notes:", ""] + notes
    return "\n".join(lines) + "\n"


CSV_FIELDS = (
    "layout", "n", "dtype", "segments", "p", "q", "implementation", "median_ms", "ratio_to_sum",
    "rounds", "sum_median_ms", "sum_rounds", "max_abs_error", "correct", "note",
)  # fmt: skip


def csv_rows(results: list[CaseResult]):
    for result in results:
        for m in result.measurements:
            ratio = result.ratio(m)
            yield {
                "layout": result.layout,
                "n": result.n,
                "dtype": result.dtype,
                "segments": result.num_segments,
                "p": result.p,
                "q": result.q,
                "implementation": m.key,
                "median_ms": "" if m.median_ms is None else f"{m.median_ms:.4f}",
                "ratio_to_sum": "" if ratio is None else f"{ratio:.4f}",
                "rounds": m.rounds,
                "sum_median_ms": f"{result.sum_ms:.4f}",
                "sum_rounds": len(result.sum_times),
                "max_abs_error": "" if m.error is None else f"{m.error:.3g}",
                "correct": "" if m.correct is None else str(m.correct),
                "note": m.note,
            }


def write_csv(path: Path, results: list[CaseResult]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(csv_rows(results))


def progress_line(result: CaseResult, seconds: float) -> str:
    parts = [f"sum {format_ms(result.sum_ms)}"]
    for m in result.measurements:
        if m.median_ms is not None:
            flag = "" if m.correct is not False else " WRONG"
            parts.append(f"{m.key} {format_ms(m.median_ms)}{flag}")
    case = f"{result.layout} n={format_n(result.n)} p={result.p:g} q={result.q:g}"
    return f"[{seconds:5.1f} s] {case}: " + ", ".join(parts) + " (ms)"


def wrong_results(results: list[CaseResult]) -> list[str]:
    """Every mismatch beyond the tolerance, but those of the known-inaccurate peers."""
    return [
        f"{m.key} {result.layout} n={format_n(result.n)} p={result.p:g} q={result.q:g}: "
        f"max abs error {m.error:.3g}"
        for result in results
        for m in result.measurements
        if m.correct is False and m.key not in KNOWN_INACCURATE
    ]


def write_rows(rows: list[dict], head: str, out: Path, stem: str) -> str:
    """Writes rows (dicts; a missing key is an empty cell) under head as out/<stem>.md and as
    out/<stem>.csv; returns the markdown."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = [head, "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in rows]
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    with open(out / f"{stem}.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return "\n".join(lines)
