"""Bad input: every error starts with the op's name and says what was expected and what came;
a failed call leaves its inputs as they were. Also Segments' constructors, and the package
without its compiled extension."""

from __future__ import annotations

import re
import subprocess

import pytest
import torch
from conftest import BACKENDS_HERE, DTYPES, PYTHON, subprocess_env

import sap_kernels as sk
from sap_kernels import reference

SEGMENT_OPS = {"segmented_power_sums": sk.segmented_power_sums, "segmented_pqi": sk.segmented_pqi}
COUNT_OPS = {"sap_retain_bound": sk.sap_retain_bound, "sap_prune_counts": sk.sap_prune_counts}
NAN = float("nan")


def good_inputs() -> dict:
    return {
        "params": torch.arange(10, dtype=torch.float32),
        "segments": sk.Segments([0, 4, 10]),
        "p": 1.0,
        "q": 2.0,
        "mask": None,
    }


# (change to the good inputs, exception, substrings the message must hold after "op: ")
SEGMENT_CASES = {
    "int32 params": (
        {"params": torch.arange(10, dtype=torch.int32)},
        TypeError,
        ["dtype", "torch.int32"],
    ),
    "complex params": (
        {"params": torch.zeros(10, dtype=torch.complex64)},
        TypeError,
        ["torch.complex64"],
    ),
    "list params": ({"params": [0.0] * 10}, TypeError, ["torch.Tensor", "list"]),
    "strided params": (
        {"params": torch.arange(20, dtype=torch.float32)[::2]},
        ValueError,
        ["contiguous", "stride (2,)"],
    ),
    "2-D params": (
        {"params": torch.zeros(2, 5)},
        ValueError,
        ["1-D", "shape (2, 5)"],
    ),
    "mask size": (
        {"mask": torch.ones(9, dtype=torch.bool)},
        ValueError,
        ["= 10", "got 9"],
    ),
    "uint8 mask": (
        {"mask": torch.ones(10, dtype=torch.uint8)},
        TypeError,
        ["torch.bool", "torch.uint8"],
    ),
    "float mask": (
        {"mask": torch.ones(10)},
        TypeError,
        ["torch.bool", "torch.float32"],
    ),
    "offsets start": (
        {"segments": torch.tensor([1, 4, 10])},
        ValueError,
        ["start at 0", "offsets[0] = 1"],
    ),
    "offsets decrease": (
        {"segments": torch.tensor([0, 6, 4, 10])},
        ValueError,
        ["non-decreasing", "offsets[1] = 6 > offsets[2] = 4"],
    ),
    "offsets end short": (
        {"segments": torch.tensor([0, 4, 9])},
        ValueError,
        ["params.numel() = 10", "got 9"],
    ),
    "offsets end long": (
        {"segments": sk.Segments([0, 4, 11])},
        ValueError,
        ["params.numel() = 10", "got 11"],
    ),
    "float offsets": (
        {"segments": torch.tensor([0.0, 4.0, 10.0])},
        TypeError,
        ["integers", "torch.float32"],
    ),
    "2-D offsets": (
        {"segments": torch.tensor([[0, 4, 10]])},
        ValueError,
        ["1-D", "shape (1, 3)"],
    ),
    "list segments": ({"segments": [0, 4, 10]}, TypeError, ["Segments", "list"]),
    "p = q": ({"p": 2.0}, ValueError, ["0 < p < q", "p = 2.0, q = 2.0"]),
    "p > q": ({"p": 3.0}, ValueError, ["0 < p < q", "p = 3.0"]),
    "p = 0": ({"p": 0.0}, ValueError, ["> 0", "p = 0.0"]),
    "p < 0": ({"p": -1.0}, ValueError, ["> 0", "p = -1.0"]),
    "NaN p": ({"p": NAN}, ValueError, ["finite", "p = nan"]),
    "inf q": ({"q": float("inf")}, ValueError, ["finite", "q = inf"]),
    "str p": ({"p": "1"}, TypeError, ["real number", "str"]),
    "bool q": ({"q": True}, TypeError, ["real number", "bool"]),
}


def call_segment_op(op, inputs: dict, **kwargs):
    return op(
        inputs["params"], inputs["segments"], inputs["p"], inputs["q"], inputs["mask"], **kwargs
    )


def assert_message(error: BaseException, op: str, fragments: list[str]) -> None:
    message = str(error)
    assert message.startswith(f"{op}: "), message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


@pytest.mark.parametrize("case", SEGMENT_CASES, ids=str)
@pytest.mark.parametrize("op", SEGMENT_OPS)
def test_segment_op_errors(backend: str, op: str, case: str) -> None:
    change, error, fragments = SEGMENT_CASES[case]
    inputs = {**good_inputs(), **change}
    with pytest.raises(error) as info:
        call_segment_op(SEGMENT_OPS[op], inputs, backend=backend)
    assert_message(info.value, op, fragments)


@pytest.mark.parametrize(
    ("kwargs", "error", "fragments"),
    [
        ({"nan_policy": "ignore"}, ValueError, ["nan_policy", "'raise'", "'ignore'"]),
        ({"backend": "gpu"}, ValueError, ["backend must be one of", "'gpu'"]),
        ({"backend": "cuda"}, RuntimeError, ["'cuda'", "not available", "CUDA tensors"]),
    ],
    ids=["nan_policy", "unknown backend", "cuda"],
)
@pytest.mark.parametrize("op", SEGMENT_OPS)
def test_segment_op_option_errors(op: str, kwargs: dict, error, fragments) -> None:
    with pytest.raises(error) as info:
        call_segment_op(SEGMENT_OPS[op], good_inputs(), **kwargs)
    assert_message(info.value, op, fragments)


def good_counts() -> dict:
    return {"pqi": torch.tensor([0.1, 0.5]), "count": torch.tensor([10, 20]), "p": 1.0, "q": 2.0}


COUNT_CASES = {
    "int pqi": ({"pqi": torch.tensor([0, 1])}, TypeError, ["floating-point", "torch.int64"]),
    "list pqi": ({"pqi": [0.1, 0.5]}, TypeError, ["floating-point", "list"]),
    "float count": ({"count": torch.tensor([1.0, 2.0])}, TypeError, ["integer", "float32"]),
    "bool count": ({"count": torch.tensor([True, False])}, TypeError, ["integer", "torch.bool"]),
    "shape mismatch": (
        {"count": torch.tensor([1, 2, 3])},
        ValueError,
        ["same length", "(2,) and (3,)"],
    ),
    "2-D pqi": (
        {"pqi": torch.zeros(1, 2), "count": torch.zeros(1, 2, dtype=torch.int64)},
        ValueError,
        ["1-D", "(1, 2)"],
    ),
    "negative count": ({"count": torch.tensor([3, -2])}, ValueError, [">= 0", "got -2"]),
    "p = q": ({"q": 1.0}, ValueError, ["0 < p < q", "q = 1.0"]),
    "NaN q": ({"q": NAN}, ValueError, ["finite", "q = nan"]),
    "eta_r < 0": ({"eta_r": -0.5}, ValueError, ["eta_r must be >= 0", "eta_r = -0.5"]),
    "NaN eta_r": ({"eta_r": NAN}, ValueError, ["eta_r", "eta_r = nan"]),
    "str eta_r": ({"eta_r": "0"}, TypeError, ["eta_r", "real number", "str"]),
    "bad backend": ({"backend": "gpu"}, ValueError, ["backend", "'gpu'"]),
    "cuda backend": ({"backend": "cuda"}, RuntimeError, ["'cuda'", "not available"]),
}
PRUNE_ONLY_CASES = {
    "gamma < 0": ({"gamma": -1.0}, ValueError, ["gamma must be >= 0", "gamma = -1.0"]),
    "NaN gamma": ({"gamma": NAN}, ValueError, ["gamma", "gamma = nan"]),
    "beta > 1": ({"beta": 1.5}, ValueError, ["beta must be in [0.0, 1.0]", "beta = 1.5"]),
    "beta < 0": ({"beta": -0.1}, ValueError, ["beta must be in", "beta = -0.1"]),
    "bool beta": ({"beta": True}, TypeError, ["beta", "bool"]),
}


COUNT_OP_CASES = [(op, case) for op in COUNT_OPS for case in COUNT_CASES] + [
    ("sap_prune_counts", case) for case in PRUNE_ONLY_CASES
]


@pytest.mark.parametrize(("op", "case"), COUNT_OP_CASES, ids=str)
def test_count_op_errors(op: str, case: str) -> None:
    change, error, fragments = {**COUNT_CASES, **PRUNE_ONLY_CASES}[case]
    kwargs = {**good_counts(), **change}
    with pytest.raises(error) as info:
        COUNT_OPS[op](**kwargs)
    assert_message(info.value, op, fragments)


# ---- a failed call leaves its inputs as they were, bit for bit ----


def bits(tensor: torch.Tensor) -> torch.Tensor:
    """The raw bits (so that NaN compares equal to the same NaN)."""
    if not tensor.is_floating_point():
        return tensor
    return tensor.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[tensor.element_size()])


FAILING_CALLS = {
    "NaN with nan_policy raise": {},
    "bad p": {"p": 5.0},
    "bad nan_policy": {"nan_policy": "omit"},
}


@pytest.mark.parametrize("failure", FAILING_CALLS, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("op", SEGMENT_OPS)
def test_failed_call_leaves_inputs_unchanged(backend, op, dtype, failure) -> None:
    gen = torch.Generator().manual_seed(0)
    params = torch.randn(3000, generator=gen).to(dtype)
    params[[5, 2500]] = NAN
    params[17] = -float("inf")
    mask = torch.rand(3000, generator=gen) < 0.7
    mask[[5, 17]] = True
    offsets = torch.tensor([0, 10, 10, 2000, 3000])
    segments = sk.Segments(offsets.clone())
    before = [bits(t).clone() for t in (params, mask, offsets, segments.offsets)]
    kwargs = {"p": 1.0, "q": 2.0, **FAILING_CALLS[failure]}
    p, q = kwargs.pop("p"), kwargs.pop("q")
    for segs in (segments, offsets):
        with pytest.raises(ValueError, match=f"^{op}: "):
            SEGMENT_OPS[op](params, segs, p, q, mask, backend=backend, **kwargs)
    after = [bits(t) for t in (params, mask, offsets, segments.offsets)]
    for name, old, new in zip(("params", "mask", "offsets", "Segments.offsets"), before, after):
        assert torch.equal(old, new), f"{name} changed by a failed call"


def test_failed_count_call_leaves_inputs_unchanged(backend: str) -> None:
    pqi = torch.tensor([0.5, NAN, 0.25])
    count = torch.tensor([10, 5, 0])
    before = (bits(pqi).clone(), count.clone())
    for op in COUNT_OPS.values():
        with pytest.raises(ValueError):
            op(pqi, count, 2.0, 1.0, backend=backend)
    assert torch.equal(bits(pqi), before[0]) and torch.equal(count, before[1])


# ---- Segments ----


def test_from_lengths_negative() -> None:
    with pytest.raises(ValueError) as info:
        sk.Segments.from_lengths([3, 0, -1, 2])
    assert_message(info.value, "Segments.from_lengths", [">= 0", "got -1 at index 2"])


@pytest.mark.parametrize(
    ("lengths", "error", "fragments"),
    [
        ([1.5, 2.0], TypeError, ["integers", "torch.float32"]),
        (torch.tensor([True, False]), TypeError, ["integers", "torch.bool"]),
        (torch.tensor([[1, 2]]), ValueError, ["1-D", "(1, 2)"]),
    ],
    ids=["float", "bool", "2-D"],
)
def test_from_lengths_bad_type(lengths, error, fragments) -> None:
    with pytest.raises(error) as info:
        sk.Segments.from_lengths(lengths)
    assert_message(info.value, "Segments.from_lengths", fragments)


@pytest.mark.parametrize("lengths", [[], torch.zeros(0, dtype=torch.int64)], ids=["list", "tensor"])
def test_from_lengths_empty(lengths) -> None:
    """No lengths: no segments, over an empty buffer (an empty list is a valid sequence)."""
    seg = sk.Segments.from_lengths(lengths)
    assert seg.num_segments == 0 and seg.numel == 0
    assert seg.offsets.tolist() == [0]


def test_segments_offsets_errors() -> None:
    for offsets, fragment in (
        ([1, 2], "start at 0"),
        ([0, 3, 2], "non-decreasing"),
        (torch.zeros(0, dtype=torch.int64), "at least one entry"),
    ):
        with pytest.raises(ValueError, match=f"^Segments: .*{fragment}"):
            sk.Segments(offsets)


def test_for_shapes_bad_scope() -> None:
    with pytest.raises(ValueError) as info:
        sk.Segments.for_shapes([(2, 3)], "row")
    assert_message(info.value, "Segments.for_shapes", ["neuron", "layer", "global", "'row'"])


SHAPES = [(4, 3, 2, 2), torch.Size([10, 16]), (10,), ()]
EXPECTED_LENGTHS = {
    "neuron": [12] * 4 + [16] * 10 + [1] * 10 + [1],
    "layer": [48, 160, 10, 1],
    "global": [219],
}


@pytest.mark.parametrize("scope", sk.SCOPES)
def test_for_shapes(scope: str) -> None:
    seg = sk.Segments.for_shapes(SHAPES, scope)
    assert seg.lengths().tolist() == EXPECTED_LENGTHS[scope]
    assert seg.offsets.dtype == torch.int64 and seg.offsets[0] == 0
    assert seg.numel == 219 and len(seg) == len(EXPECTED_LENGTHS[scope])


@pytest.mark.parametrize("scope", sk.SCOPES)
def test_for_shapes_no_weights(scope: str) -> None:
    seg = sk.Segments.for_shapes([], scope)
    assert seg.numel == 0
    assert seg.num_segments == (1 if scope == "global" else 0)


def test_neuron_scope_is_weight_rows(backend: str) -> None:
    """PQI per neuron equals the paper's two torch.linalg.norm calls on weight.view(out, -1)."""
    gen = torch.Generator().manual_seed(2)
    weights = [torch.randn(shape, generator=gen, dtype=torch.float64) for shape in SHAPES[:3]]
    flat = torch.cat([w.reshape(-1) for w in weights])
    seg = sk.Segments.for_shapes([w.shape for w in weights], "neuron")
    p, q = 0.5, 1.0
    got = sk.segmented_pqi(flat, seg, p, q, backend=backend)
    rows = [w.view(w.shape[0], -1) for w in weights]
    want = torch.cat(
        [
            1
            - r.shape[1] ** (1 / q - 1 / p)
            * torch.linalg.norm(r, p, dim=1)
            / torch.linalg.norm(r, q, dim=1)
            for r in rows
        ]
    )
    want = torch.where(
        torch.cat([torch.full((r.shape[0],), r.shape[1]) for r in rows]) == 1, 0.0, want
    )
    assert torch.allclose(got, want, rtol=0, atol=1e-12)
    assert torch.allclose(got, reference.pqi(flat, seg.offsets, p, q), rtol=0, atol=1e-12)


# ---- without the compiled extension ----

NO_EXTENSION_SCRIPT = r"""
import sys
sys.modules["sap_kernels._C"] = None  # import sap_kernels._C now raises ImportError
import torch
import sap_kernels as sk
assert not sk.native_available()
seg = sk.Segments.from_lengths([4, 6])
params = torch.arange(10.0)
torch_pqi = sk.segmented_pqi(params, seg, 1.0, 2.0, backend="torch")
default_pqi = sk.segmented_pqi(params, seg, 1.0, 2.0)
assert torch.equal(torch_pqi, default_pqi), "backend=None falls back to torch"
print("PQI", torch_pqi.tolist())
try:
    sk.segmented_pqi(params, seg, 1.0, 2.0, backend="cpu")
except ImportError as error:
    print("IMPORTERROR", error)
"""


def test_without_extension() -> None:
    run = subprocess.run(
        [PYTHON, "-c", NO_EXTENSION_SCRIPT],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    lines = dict(line.split(" ", 1) for line in run.stdout.strip().splitlines())
    want = reference.pqi(torch.arange(10.0), torch.tensor([0, 4, 10]), 1.0, 2.0)
    assert lines["PQI"] == str(want.tolist())
    message = lines.get("IMPORTERROR", "")
    assert message.startswith("segmented_pqi: "), run.stdout
    assert re.search(r"pip install", message), message
    assert "sap_kernels._C" in message


@pytest.mark.skipif("cpu" not in BACKENDS_HERE, reason="needs the compiled extension")
def test_default_backend_is_cpu_when_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SAP_KERNELS_BACKEND", raising=False)
    params = torch.randn(1000, generator=torch.Generator().manual_seed(9))
    seg = sk.Segments.from_lengths([500, 500])
    default = sk.segmented_power_sums(params, seg, 1.0, 2.0)
    cpu = sk.segmented_power_sums(params, seg, 1.0, 2.0, backend="cpu")
    assert all(torch.equal(a, b) for a, b in zip(default, cpu))
