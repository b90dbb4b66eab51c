"""The main job, sap-prune / python -m sap_kernels: a tiny run writes its table, CSV and PNG
from the experiment's numbers; bad options are a message, not a traceback."""

from __future__ import annotations

import csv
import subprocess

import pytest
import torch
from conftest import PYTHON, subprocess_env

from sap_kernels import cli, experiment
from sap_kernels.datasets import load_digits, train_test_split
from sap_kernels.figure import Panel, line_chart


def test_digits_ship_with_the_package() -> None:
    images, labels = load_digits()
    assert images.shape == (1797, 64) and labels.shape == (1797,)
    assert float(images.min()) == 0.0 and float(images.max()) == 1.0
    assert torch.equal(torch.bincount(labels).clamp(max=1), torch.ones(10, dtype=torch.int64))
    train, test = train_test_split()
    assert train.labels.numel() + test.labels.numel() == 1797


def test_tiny_run_writes_table_csv_and_figure(tmp_path, capsys) -> None:
    argv = ["--iterations", "2", "--epochs", "1", "--out", str(tmp_path), "--scope", "neuron"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "SAP (p=0.5, q=1)" in out and "Lottery Ticket" in out and "One Shot" in out
    rows = list(csv.DictReader(open(tmp_path / "sap_prune.csv")))
    assert [row["method"] for row in rows] == ["sap"] * 3 + ["lottery_ticket"] * 3 + [
        "one_shot"
    ] * 3
    settings = experiment.Settings(iterations=2, epochs=1, scope="neuron")
    expected = experiment.run(settings)  # the same seeds: the same numbers
    for row in rows:
        want = expected[row["method"]][int(row["iteration"])]
        assert float(row["accuracy"]) == pytest.approx(want.accuracy, abs=1e-4)
        assert int(row["live"]) == want.live
        assert float(row["pqi_global"]) == pytest.approx(want.pqi_global, abs=1e-6)
    lottery = [row for row in rows if row["method"] == "lottery_ticket"]
    assert [round(float(row["remaining_percent"])) for row in lottery][:2] == [100, 80]
    png = (tmp_path / "sap_prune.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 2000


def test_figure_draws_every_line(tmp_path) -> None:
    panel = Panel("t", {"a": ([0, 1, 2], [0.0, 5.0, 1.0]), "b": ([0, 2], [3.0, 3.0])})
    line_chart([panel, panel], "x", str(tmp_path / "f.png"))
    data = (tmp_path / "f.png").read_bytes()
    assert data[12:16] == b"IHDR" and data[-8:-4] == b"IEND"


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--p", "2", "--q", "1"], "need 0 < p < q"),
        (["--method", "magnitude"], "unknown ['magnitude']"),
        (["--beta", "1.5"], "--beta: must be in [0, 1]"),
        (["--epochs", "0"], "--epochs: must be >= 1"),
        (["--scope", "row"], "invalid choice: 'row'"),
        (["--p", "nan"], "must be a finite number"),
        (["--device", "cuda:7", "--backend", "cpu"], "--device cuda:7"),
    ],
)
def test_bad_options_are_a_message(argv: list[str], fragment: str) -> None:
    result = subprocess.run(
        [PYTHON, "-m", "sap_kernels", *argv],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr
