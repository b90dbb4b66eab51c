"""The PQI report (python -m sap_kernels.report): its numbers come from the ops it reports."""

from __future__ import annotations

import subprocess

import torch
from conftest import PYTHON, subprocess_env

import sap_kernels as sk
from sap_kernels import reference
from sap_kernels.report import demo_model, main, prunable_weights


def test_report_lists_every_layer_and_the_global_scope(capsys) -> None:
    assert main(["--backend", "torch"]) == 0
    out = capsys.readouterr().out
    for name, _ in prunable_weights(demo_model()):
        assert name in out
    assert "global" in out and "backend 'torch'" in out


def layer_rows(out: str) -> dict[str, list[str]]:
    """name -> the columns after the shape: weights, PQI, prune, neuron PQI min / median / max,
    neuron prune."""
    rows = {}
    for line in out.splitlines():
        if ".weight" in line:
            name, rest = line.split(maxsplit=1)
            rows[name] = rest.split(")", 1)[1].replace("/", " ").split()
    return rows


def test_report_layer_pqi_matches_the_reference(capsys) -> None:
    assert main(["--p", "1", "--q", "2"]) == 0
    rows = layer_rows(capsys.readouterr().out)
    weights = prunable_weights(demo_model())
    buffer = torch.cat([w.reshape(-1) for _, w in weights])
    layers = sk.Segments.for_shapes([w.shape for _, w in weights], "layer")
    want = reference.pqi(buffer, layers.offsets, 1.0, 2.0)
    prune = reference.prune_counts(want, layers.lengths(), 1.0, 2.0)
    for index, (name, weight) in enumerate(weights):
        count, pqi, pruned = rows[name][:3]
        assert int(count) == weight.numel()
        assert abs(float(pqi) - float(want[index])) <= 5e-5  # printed to 4 decimals
        assert int(pruned) == int(prune[index])


def test_bad_option_is_a_message_not_a_traceback() -> None:
    result = subprocess.run(
        [PYTHON, "-m", "sap_kernels.report", "--p", "2", "--q", "1"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
    )
    assert result.returncode == 2
    assert "segmented_pqi: needs 0 < p < q" in result.stderr
    assert "Traceback" not in result.stderr
