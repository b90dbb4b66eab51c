"""Bad input to segmented_topk_mask, sap_step and apply_mask: every error starts with the op's
name and says what was expected and what came; a failed call leaves its inputs (and out=) as
they were; NaN or inf in a dead entry is no error."""

from __future__ import annotations

import pytest
import torch
from conftest import DTYPES

import sap_kernels as sk

NAN, INF = float("nan"), float("inf")
ANY_ERROR = (TypeError, ValueError)


def dtype_id(dtype: torch.dtype) -> str:
    """A short test id ("float32"), so that -k torch selects the torch backend alone."""
    return str(dtype).split(".")[-1]


def good_topk_inputs() -> dict:
    return {
        "params": torch.arange(10, dtype=torch.float32),
        "segments": sk.Segments([0, 4, 10]),
        "k": 2,
        "mask": None,
        "out": None,
    }


def with_entry(index: int, value: float) -> torch.Tensor:
    params = torch.arange(10, dtype=torch.float32)
    params[index] = value
    return params


# change to the good inputs -> (exception, substrings the message must hold after "op: ")
INPUT_CASES = {
    "int32 params": ({"params": torch.arange(10, dtype=torch.int32)}, TypeError, ["torch.int32"]),
    "list params": ({"params": [0.0] * 10}, TypeError, ["torch.Tensor", "list"]),
    "2-D params": ({"params": torch.zeros(2, 5)}, ValueError, ["1-D", "(2, 5)"]),
    "strided params": (
        {"params": torch.arange(20, dtype=torch.float32)[::2]},
        ValueError,
        ["contiguous", "(2,)"],
    ),
    "mask size": ({"mask": torch.ones(9, dtype=torch.bool)}, ValueError, ["= 10", "got 9"]),
    "uint8 mask": (
        {"mask": torch.ones(10, dtype=torch.uint8)},
        TypeError,
        ["torch.bool", "torch.uint8"],
    ),
    "float mask": ({"mask": torch.ones(10)}, TypeError, ["torch.bool", "torch.float32"]),
    "offsets end short": (
        {"segments": torch.tensor([0, 4, 9])},
        ValueError,
        ["params.numel() = 10", "got 9"],
    ),
    "offsets decrease": (
        {"segments": torch.tensor([0, 6, 4, 10])},
        ValueError,
        ["non-decreasing", "offsets[1] = 6 > offsets[2] = 4"],
    ),
    "float offsets": (
        {"segments": torch.tensor([0.0, 4.0, 10.0])},
        TypeError,
        ["integers", "torch.float32"],
    ),
    "NaN live": ({"params": with_entry(6, NAN)}, ValueError, ["finite", "1 NaN or inf", "[1]"]),
    "inf live": ({"params": with_entry(2, INF)}, ValueError, ["finite", "1 NaN or inf", "[0]"]),
    "-inf live": ({"params": with_entry(9, -INF)}, ValueError, ["finite", "1 NaN or inf", "[1]"]),
    "unknown backend": ({"backend": "gpu"}, ValueError, ["backend must be one of", "'gpu'"]),
    "cuda backend": ({"backend": "cuda"}, RuntimeError, ["'cuda'", "not available"]),
}

TOPK_CASES = {
    **INPUT_CASES,
    "bool k": ({"k": True}, TypeError, ["int64 tensor", "bool"]),
    "float k": ({"k": 2.0}, TypeError, ["int64 tensor", "float"]),
    "list k": ({"k": [2, 2]}, TypeError, ["int64 tensor", "list"]),
    "negative k": ({"k": -1}, ValueError, [">= 0", "k = -1"]),
    "negative k entry": ({"k": torch.tensor([2, -3])}, ValueError, [">= 0", "k[1] = -3"]),
    "short k": ({"k": torch.tensor([2])}, ValueError, ["[2]", "got shape [1]"]),
    "2-D k": ({"k": torch.tensor([[2, 2]])}, ValueError, ["[2]", "got shape [1, 2]"]),
    "0-d k": ({"k": torch.tensor(2)}, ValueError, ["[2]", "got shape []"]),
    "int32 k": (
        {"k": torch.tensor([2, 2], dtype=torch.int32)},
        TypeError,
        ["torch.int64", "torch.int32"],
    ),
    "float k tensor": ({"k": torch.tensor([2.0, 2.0])}, TypeError, ["torch.int64", "float32"]),
    "float out": ({"out": torch.zeros(10)}, ANY_ERROR, ["bool", "torch.float32"]),
    "short out": ({"out": torch.zeros(9, dtype=torch.bool)}, ValueError, ["10", "(9,)"]),
    "2-D out": ({"out": torch.zeros(2, 5, dtype=torch.bool)}, ValueError, ["1-D", "(2, 5)"]),
    "strided out": (
        {"out": torch.zeros(20, dtype=torch.bool)[::2]},
        ValueError,
        ["contiguous", "(2,)"],
    ),
    "list out": ({"out": [False] * 10}, TypeError, ["out", "list"]),
}

SAP_STEP_CASES = {
    **INPUT_CASES,
    "p = q": ({"p": 2.0}, ValueError, ["0 < p < q", "p = 2.0, q = 2.0"]),
    "p < 0": ({"p": -1.0}, ValueError, ["> 0", "p = -1.0"]),
    "NaN q": ({"q": NAN}, ValueError, ["finite", "q = nan"]),
    "bool p": ({"p": True}, TypeError, ["real number", "bool"]),
    "eta_r < 0": ({"eta_r": -0.5}, ValueError, ["eta_r must be >= 0", "eta_r = -0.5"]),
    "gamma < 0": ({"gamma": -1.0}, ValueError, ["gamma must be >= 0", "gamma = -1.0"]),
    "NaN gamma": ({"gamma": NAN}, ValueError, ["gamma", "gamma = nan"]),
    "beta > 1": ({"beta": 1.5}, ValueError, ["beta must be in [0.0, 1.0]", "beta = 1.5"]),
    "bool beta": ({"beta": True}, TypeError, ["beta", "bool"]),
}


def assert_message(error: BaseException, op: str, fragments: list[str]) -> None:
    message = str(error)
    assert message.startswith(f"{op}: "), message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


@pytest.mark.parametrize("case", TOPK_CASES, ids=str)
def test_topk_mask_errors(backend: str, case: str) -> None:
    """Each bad input raises an error naming segmented_topk_mask, what it expected and got."""
    change, error, fragments = TOPK_CASES[case]
    inputs = {**good_topk_inputs(), "backend": backend, **change}
    segments, k = inputs.pop("segments"), inputs.pop("k")
    with pytest.raises(error, match="^segmented_topk_mask: ") as info:
        sk.segmented_topk_mask(inputs.pop("params"), segments, k, **inputs)
    assert_message(info.value, "segmented_topk_mask", fragments)


def test_topk_mask_k_past_int64(backend: str) -> None:
    """k = 2^63 cannot be an int64 count: the error names the op and k."""
    inputs = good_topk_inputs()
    with pytest.raises(ValueError, match="^segmented_topk_mask: ") as info:
        sk.segmented_topk_mask(inputs["params"], inputs["segments"], 2**63, backend=backend)
    assert_message(info.value, "segmented_topk_mask", ["int64", f"k = {2**63}"])


@pytest.mark.parametrize("case", list(SAP_STEP_CASES))
def test_sap_step_errors(backend: str, case: str) -> None:
    """Each bad input raises an error naming sap_step, what it expected and what came."""
    change, error, fragments = SAP_STEP_CASES[case]
    inputs = {**good_topk_inputs(), "p": 1.0, "q": 2.0, "backend": backend, **change}
    del inputs["k"], inputs["out"]
    params, segments, p, q = (inputs.pop(name) for name in ("params", "segments", "p", "q"))
    with pytest.raises(error, match="^sap_step: ") as info:
        sk.sap_step(params, segments, p, q, **inputs)
    assert_message(info.value, "sap_step", fragments)


APPLY_MASK_CASES = {
    "float mask": ({"mask": torch.ones(10)}, TypeError, ["torch.bool", "torch.float32"]),
    "uint8 mask": ({"mask": torch.ones(10, dtype=torch.uint8)}, TypeError, ["torch.uint8"]),
    "list mask": ({"mask": [True] * 10}, TypeError, ["bool", "list"]),
    "short mask": ({"mask": torch.ones(9, dtype=torch.bool)}, ValueError, ["= 10", "got 9"]),
    "long mask": ({"mask": torch.ones(2, 6, dtype=torch.bool)}, ValueError, ["= 10", "got 12"]),
    "int params": ({"params": torch.arange(10)}, TypeError, ["floating-point"]),
    "list params": ({"params": [0.0] * 10}, TypeError, ["floating-point"]),
    "strided params": (
        {"params": torch.zeros(4, 5).t()[:, :2]},
        ValueError,
        ["contiguous", "stride"],
    ),
}


@pytest.mark.parametrize("case", APPLY_MASK_CASES, ids=str)
def test_apply_mask_errors(case: str) -> None:
    """Bad params or mask raise an error naming apply_mask; params stays as it was."""
    change, error, fragments = APPLY_MASK_CASES[case]
    inputs = {"params": torch.arange(10, dtype=torch.float32), "mask": None, **change}
    if inputs["mask"] is None:
        inputs["mask"] = torch.zeros(10, dtype=torch.bool)
    before = inputs["params"].clone() if isinstance(inputs["params"], torch.Tensor) else None
    with pytest.raises(error, match="^apply_mask: ") as info:
        sk.apply_mask(inputs["params"], inputs["mask"])
    assert_message(info.value, "apply_mask", fragments)
    if before is not None:
        assert torch.equal(inputs["params"], before), "apply_mask changed params and failed"


# ---- a failed call leaves its inputs as they were, bit for bit ----


def bits(tensor: torch.Tensor) -> torch.Tensor:
    """The raw bits (so that NaN compares equal to the same NaN)."""
    if not tensor.is_floating_point():
        return tensor
    return tensor.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[tensor.element_size()])


def failing_inputs(dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """3000 entries in 4 segments with NaN and inf live entries, a mask and an out buffer."""
    gen = torch.Generator().manual_seed(30)
    params = torch.randn(3000, generator=gen).to(dtype)
    params[[5, 2500]] = NAN
    params[17] = -INF
    mask = torch.rand(3000, generator=gen) < 0.7
    mask[[5, 17]] = True
    out = torch.rand(3000, generator=gen) < 0.5
    return {"params": params, "mask": mask, "offsets": torch.tensor([0, 10, 10, 2000, 3000]),
            "k": torch.tensor([3, 0, 700, 2000]), "out": out}  # fmt: skip


TOPK_FAILURES = {
    "NaN live": {},
    "negative k": {"k": torch.tensor([3, 0, -1, 2000])},
    "short out": {"out": torch.zeros(2999, dtype=torch.bool)},
}


@pytest.mark.parametrize("failure", TOPK_FAILURES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_failed_topk_leaves_inputs_unchanged(
    backend: str, dtype: torch.dtype, failure: str
) -> None:
    """params, mask, offsets, k and out= are bit for bit as before a failed call."""
    inputs = {**failing_inputs(dtype), **TOPK_FAILURES[failure]}
    segments = sk.Segments(inputs["offsets"].clone())
    inputs["Segments.offsets"] = segments.offsets
    before = {name: bits(tensor).clone() for name, tensor in inputs.items()}
    for segs in (segments, inputs["offsets"]):
        with pytest.raises(ValueError, match="^segmented_topk_mask: "):
            sk.segmented_topk_mask(
                inputs["params"], segs, inputs["k"], inputs["mask"], inputs["out"], backend=backend
            )
    for name, tensor in inputs.items():
        assert torch.equal(bits(tensor), before[name]), f"{name} changed by a failed call"


def test_out_sharing_memory_with_an_input_is_clear_error(backend: str) -> None:
    """The kernels read params and mask while they write out: out may not overlap them (the
    CPU kernels would otherwise return a wrong mask). Nothing is written."""
    gen = torch.Generator().manual_seed(31)
    params = torch.randint(0, 4, (3000,), generator=gen).float()  # tie-rich
    shared = torch.rand(3001, generator=gen) < 0.9
    segments, k = sk.Segments([0, 1000, 3000]), torch.tensor([300, 1500])
    cases = {  # name of the input overlapped -> (live mask, out)
        "the same tensor": ("mask", shared[:3000], shared[:3000]),
        "shifted by one": ("mask", shared[:3000], shared[1:]),
        "params' bytes": ("params", shared[:3000], params.view(torch.bool)[:3000]),
    }
    for what, (name, live, out) in cases.items():
        shared_before, params_before = shared.clone(), params.clone()
        expected = f"out must not share memory with {name}"
        with pytest.raises(ValueError, match=f"^segmented_topk_mask: {expected}"):
            sk.segmented_topk_mask(params, segments, k, live, out, backend=backend)
        with pytest.raises(ValueError, match=f"^sap_step: {expected}"):
            sk.sap_step(params, segments, 0.5, 1.0, live, out=out, backend=backend)
        assert torch.equal(shared, shared_before), f"{what}: mask changed"
        assert torch.equal(params, params_before), f"{what}: params changed"


SAP_STEP_FAILURES = {"NaN live": {}, "bad p": {"p": 5.0}, "bad beta": {"beta": 2.0}}


@pytest.mark.parametrize("failure", SAP_STEP_FAILURES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_failed_sap_step_leaves_inputs_unchanged(
    backend: str, dtype: torch.dtype, failure: str
) -> None:
    """params, mask and offsets are bit for bit as before a failed sap_step."""
    inputs = failing_inputs(dtype)
    del inputs["k"], inputs["out"]
    segments = sk.Segments(inputs["offsets"].clone())
    inputs["Segments.offsets"] = segments.offsets
    before = {name: bits(tensor).clone() for name, tensor in inputs.items()}
    kwargs = {"p": 1.0, "q": 2.0, **SAP_STEP_FAILURES[failure]}
    for segs in (segments, inputs["offsets"]):
        with pytest.raises(ValueError):
            sk.sap_step(inputs["params"], segs, mask=inputs["mask"], backend=backend, **kwargs)
    for name, tensor in inputs.items():
        assert torch.equal(bits(tensor), before[name]), f"{name} changed by a failed call"


# ---- NaN or inf found where the kernel reads it: in a short or a long segment ----

# Segments of 7, 0, 3000 (selected in cache), 40000 (by all threads) and 5 entries.
NONFINITE_LENGTHS = [7, 0, 3000, 40_000, 5]
# where -> (flat positions made non-finite, the segments the error must name)
NONFINITE_PLACES = {
    "first short": ([3], [0]),
    "short, last entry": ([3006], [2]),
    "long, middle": ([3007 + 20_000], [3]),
    "long, last entry": ([43_006], [3]),
    "last segment": ([43_011], [4]),
    "short and long": ([3, 3007, 43_010], [0, 3, 4]),
}


@pytest.mark.parametrize("place", NONFINITE_PLACES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_nonfinite_found_in_any_segment(backend: str, dtype: torch.dtype, place: str) -> None:
    """A NaN or inf live entry anywhere, the rest finite, a fresh mask or out=, masked or not:
    the error counts them and names their segments; the same entries dead are no error."""
    positions, bad_segments = NONFINITE_PLACES[place]
    gen = torch.Generator().manual_seed(37)
    n = sum(NONFINITE_LENGTHS)
    params = torch.randn(n, generator=gen).to(dtype)
    values = [NAN, INF, -INF]
    for i, position in enumerate(positions):
        params[position] = values[i % 3]
    segments = sk.Segments.from_lengths(NONFINITE_LENGTHS)
    k = torch.tensor([3, 0, 1000, 17_000, 2])
    live = torch.rand(n, generator=gen) < 0.9
    live[positions] = True
    fragments = [f"{len(positions)} NaN or inf", f"segment(s) {bad_segments}"]
    for mask in (None, live):
        for out in (None, torch.zeros(n, dtype=torch.bool)):
            with pytest.raises(ValueError, match="^segmented_topk_mask: ") as info:
                sk.segmented_topk_mask(params, segments, k, mask, out, backend=backend)
            assert_message(info.value, "segmented_topk_mask", fragments)
    dead = live.clone()
    dead[positions] = False
    got = sk.segmented_topk_mask(params, segments, k, dead, backend=backend)
    assert not bool(got[positions].any())


# ---- NaN or inf in a dead entry takes no part ----


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_nonfinite_dead_entries_are_ignored(backend: str, dtype: torch.dtype) -> None:
    """A dead NaN / inf changes neither the top-k mask nor the SAP step: both equal the results
    with those entries set to a huge finite value."""
    gen = torch.Generator().manual_seed(31)
    params = torch.randn(500, generator=gen).to(dtype)
    mask = torch.rand(500, generator=gen) < 0.6
    dead = (~mask).nonzero().view(-1)[:3]
    params[dead] = torch.tensor([NAN, INF, -INF], dtype=dtype)
    finite = params.clone()
    finite[dead] = 1e4
    seg = sk.Segments.from_lengths([100, 0, 400])
    for values in (params, finite):
        assert not bool(
            sk.segmented_topk_mask(values, seg, 1000, mask, backend=backend)[dead].any()
        )
    got = sk.segmented_topk_mask(params, seg, torch.tensor([10, 0, 50]), mask, backend=backend)
    want = sk.segmented_topk_mask(finite, seg, torch.tensor([10, 0, 50]), mask, backend=backend)
    assert torch.equal(got, want)
    step = sk.sap_step(params, seg, 0.5, 1.0, mask, backend=backend)
    step_finite = sk.sap_step(finite, seg, 0.5, 1.0, mask, backend=backend)
    assert torch.equal(step.mask, step_finite.mask)
    assert torch.equal(step.n_prune, step_finite.n_prune) and int(step.n_prune.sum()) > 0
    assert torch.allclose(step.pqi, step_finite.pqi, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("op", ["sap_step", "segmented_topk_mask"])
def test_nonfinite_error_offers_no_nan_policy(backend: str, op: str) -> None:
    """Ops without a nan_policy do not suggest one in their NaN / inf error."""
    params = torch.randn(10)
    params[3] = float("nan")
    offsets = torch.tensor([0, 10])
    call = {
        "sap_step": lambda: sk.sap_step(params, offsets, 0.5, 1.0, backend=backend),
        "segmented_topk_mask": lambda: sk.segmented_topk_mask(params, offsets, 5, backend=backend),
    }[op]
    with pytest.raises(ValueError, match=f"^{op}: params must be finite") as info:
        call()
    assert "nan_policy" not in str(info.value)
