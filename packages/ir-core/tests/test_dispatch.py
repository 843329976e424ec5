"""Eager dispatch: priority order, declines, caching, isolation, explain and priority_hash.

Every test here runs twice, on the compiled hit path (``ir_core._fastpath``) and on the pure
Python one (the ``hit_path`` fixture): both must decide exactly alike.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading

import pytest
import torch

import ir_core
from ir_core import dispatch, fastpath, priority

NATIVE = ir_core.get_op("rms_norm").native
X, W = torch.randn(4, 16), torch.randn(16)


#: every test on both hit paths (the conftest's ``hit_path`` fixture)
pytestmark = pytest.mark.usefixtures("hit_path")


def rms_norm_paths():
    """The two hit paths of rms_norm: the compiled Dispatcher (or None) and the Python cache."""
    paths = next(p for p in dispatch._hit_paths if p.namespace["op"].name == "rms_norm")
    return paths.compiled, paths.cache


class Provider:
    """A real provider whose kernel is native scaled by a marker, so the output tells who ran."""

    def __init__(self, name: str, marker: float, *, accepts=True, devices=("cpu",), available=True):
        self.name, self.marker, self.accepts = name, marker, accepts
        self.devices, self.available = devices, available
        self.kernel_calls = 0
        self.predicate_calls = 0

    def kernel(
        self,
        x: torch.Tensor,
        weight: torch.Tensor | None,
        epsilon: float,
        weight_bias: float = 0.0,
        variance_size: int | None = None,
    ) -> torch.Tensor:
        self.kernel_calls += 1
        return NATIVE(x, weight, epsilon, weight_bias, variance_size) * self.marker

    def supports(self, x, weight, epsilon, weight_bias=0.0, variance_size=None) -> bool:
        self.predicate_calls += 1
        return self.accepts(x) if callable(self.accepts) else self.accepts

    def hooks(self):
        def register_impls(registry):
            registry.register_impl(
                "rms_norm",
                self.name,
                self.kernel,
                device_types=self.devices,
                supports_args=self.supports,
                available=self.available,
            )

        return {"register_impls": register_impls}


@pytest.fixture
def providers(plugin):
    made = {
        "alpha": Provider("alpha", 2.0),
        "beta": Provider("beta", 3.0, accepts=lambda x: x.dtype == torch.float32),
        "gamma": Provider("gamma", 5.0, devices=("cuda",)),
        "delta": Provider("delta", 7.0, available=lambda: (False, "libdelta missing")),
        "decline": Provider("decline", 11.0, accepts=False),
    }
    for p in made.values():
        plugin(**p.hooks())
    return made


def who_ran(out: torch.Tensor, x=X, w=W) -> float:
    return float((out / NATIVE(x, w, 1e-6)).flatten()[0].round())


def test_native_is_the_default():
    assert ir_core.explain("rms_norm", X, W, 1e-6).provider == "native"
    torch.testing.assert_close(ir_core.ops.rms_norm(X, W, 1e-6), NATIVE(X, W, 1e-6))


def test_first_provider_that_accepts_wins(providers):
    with ir_core.set_priority(rms_norm=["decline", "gamma", "delta", "beta", "alpha"]):
        assert who_ran(ir_core.ops.rms_norm(X, W, 1e-6)) == 3.0
        info = ir_core.explain("rms_norm", X, W, 1e-6)
    assert info.provider == "beta"
    reasons = dict(info.skipped)
    assert reasons["decline"] == "supports_args declined these arguments"
    assert reasons["gamma"] == "runs on cuda, not cpu"
    assert reasons["delta"] == "unavailable: libdelta missing"


def test_unsupported_args_fall_through_to_the_next(providers):
    xb = X.to(torch.bfloat16)
    with ir_core.set_priority(rms_norm=["beta", "alpha"]):
        assert who_ran(ir_core.ops.rms_norm(xb, W, 1e-6).float(), xb) == 2.0


def test_decision_is_cached_per_key(providers):
    beta = providers["beta"]
    with ir_core.set_priority(rms_norm=["decline", "beta"]):
        for _ in range(5):
            ir_core.ops.rms_norm(X, W, 1e-6)
        assert beta.kernel_calls == 5
        assert beta.predicate_calls == 1
        assert providers["decline"].predicate_calls == 1
        ir_core.ops.rms_norm(torch.randn(9, 16), W, 1e-6)  # another shape: a new key
        assert beta.predicate_calls == 2


@pytest.fixture
def picky(plugin):
    """A cpu provider that takes only a contiguous x with an fp32 weight."""
    made = Provider(
        "picky",
        19.0,
        accepts=lambda x, weight: (
            x.is_contiguous() and weight is not None and weight.dtype == torch.float32
        ),
    )
    made.supports = lambda x, weight, epsilon, weight_bias=0.0, variance_size=None: (
        setattr(made, "predicate_calls", made.predicate_calls + 1) or made.accepts(x, weight)
    )
    plugin(**made.hooks())
    return made


def test_the_compiled_hit_path_is_active_unless_turned_off():
    """CI builds the extension; a build that silently failed would leave the slow path on."""
    status = fastpath.status()
    if os.environ.get(fastpath.ENV_COMPILED) == "0":
        assert not status.active and "turned off" in status.reason
    else:
        assert status.active, status.reason


def test_calls_take_the_hit_path_in_use(hit_path):
    """Which implementation answered: the compiled one counts its hits, the Python one fills
    its own cache; the other stays untouched."""
    compiled, cache = rms_norm_paths()
    before = compiled.stats()["hits"] if compiled is not None else 0
    for _ in range(3):
        torch.testing.assert_close(ir_core.ops.rms_norm(X, W, 1e-6), NATIVE(X, W, 1e-6))
    if hit_path == "compiled":
        assert compiled.stats()["hits"] >= before + 2
        assert not cache
    else:
        assert len(cache) == 1
        assert compiled is None or compiled.stats()["hits"] == before


def test_the_environment_turns_the_compiled_path_off():
    code = (
        "import torch, ir_core; from ir_core import dispatch, fastpath\n"
        "x, w = torch.randn(2, 8), torch.randn(8)\n"
        "assert torch.equal(ir_core.ops.rms_norm(x, w, 1e-6), ir_core.get_op('rms_norm').native(x, w, 1e-6))\n"
        "print(dispatch.hit_path(), fastpath.status())"
    )
    env = {**os.environ, fastpath.ENV_COMPILED: "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("python pure Python (turned off by IR_CORE_COMPILED_DISPATCH=0)")


def test_without_the_extension_the_status_says_why(monkeypatch):
    """A wheel built without a compiler, or a platform with no binary: import works, the
    Python path runs, and doctor's line says why."""
    real = fastpath.importlib.import_module

    def import_module(name, *args):
        if name == "ir_core._fastpath":
            raise ImportError("no module named ir_core._fastpath")
        return real(name, *args)

    monkeypatch.setattr(fastpath.importlib, "import_module", import_module)
    module, status = fastpath._load()
    assert module is None and not status.active
    assert (
        status.reason == "extension ir_core._fastpath not loaded: no module named ir_core._fastpath"
    )
    monkeypatch.setenv(fastpath.ENV_COMPILED, "off")
    assert fastpath._load()[1].reason == "turned off by IR_CORE_COMPILED_DISPATCH=off"


def test_the_extension_reads_what_python_reads():
    """The compiled key's tensor metadata, read through torch's stable C shim, against torch's
    Python bindings; what it cannot key (sparse, subclasses) it leaves to the Python path."""
    if not fastpath.status().active:
        pytest.skip(fastpath.status().reason)
    from ir_core import _fastpath

    cases = [*fastpath._samples(), torch.randn(3, 4, 5).permute(2, 0, 1)[1:], X.t()]
    for t in cases:
        dim, sizes, strides, _, _, index, grad = fastpath._python_metadata(t)
        got = _fastpath.metadata(t)
        assert got[:3] == (dim, sizes, strides) and got[5:] == (index, grad), (t.shape, got)
    codes = {
        _fastpath.metadata(torch.empty(1, dtype=d))[3]
        for d in (torch.float32, torch.bfloat16, torch.float16)
    }
    assert len(codes) == 3
    assert (
        _fastpath.metadata(torch.empty(1))[4]
        != _fastpath.metadata(torch.empty(1, device="meta"))[4]
    )
    assert _fastpath.metadata(torch.eye(3).to_sparse()) is None

    class Marked(torch.Tensor):
        pass

    assert _fastpath.metadata(X.as_subclass(Marked)) is None
    assert _fastpath.metadata(1.0) is None


def test_a_torch_whose_readings_differ_turns_the_extension_off(monkeypatch):
    """The load-time check: a reading that disagrees with Python's is a reason to stay off."""
    if not fastpath.status().active:
        pytest.skip(fastpath.status().reason)
    from ir_core import _fastpath

    lib = fastpath._libtorch()
    assert fastpath._check(_fastpath, lib) is None
    real = fastpath._python_metadata
    monkeypatch.setattr(
        fastpath,
        "_python_metadata",
        lambda t: (*real(t)[:2], tuple(reversed(real(t)[2])), *real(t)[3:]),
    )
    assert "reads" in fastpath._check(_fastpath, lib)


def test_a_remembered_decision_follows_every_tensors_metadata(picky):
    """Calls that share x's shape and every scalar differ in what the key leaves out: the
    weight's dtype or absence, x's strides, the device. Each gets its own decision, and each
    decision is reused, not re-derived, when the same metadata comes back."""
    transposed = torch.randn(16, 4).t()  # X's shape, other strides
    cases = [
        (X, W, 19.0),
        (X, W.to(torch.bfloat16), 1.0),
        (transposed, W, 1.0),
        (X, None, 1.0),
    ]
    with ir_core.set_priority(rms_norm=["picky"]):
        for _ in range(3):
            for x, w, expected in cases:
                out = ir_core.ops.rms_norm(x, w, 1e-6)
                torch.testing.assert_close(out, NATIVE(x, w, 1e-6) * expected)
        assert picky.predicate_calls == len(cases)
        assert picky.kernel_calls == 3

        meta_out = ir_core.ops.rms_norm(X.to("meta"), W.to("meta"), 1e-6)  # cpu-only provider
        assert meta_out.device.type == "meta"
        assert picky.kernel_calls == 3


def test_a_weight_whose_data_is_swapped_is_decided_again(picky):
    weight = W.clone()
    with ir_core.set_priority(rms_norm=["picky"]):
        assert who_ran(ir_core.ops.rms_norm(X, weight, 1e-6), w=weight) == 19.0
        weight.data = weight.data.to(torch.bfloat16)  # the same object, another dtype
        assert who_ran(ir_core.ops.rms_norm(X, weight, 1e-6), w=weight) == 1.0
    assert picky.predicate_calls == 2


def test_remembered_decisions_are_bounded(hit_path):
    """Past CACHE_LIMIT keys the cache starts over instead of growing with every shape."""
    compiled, cache = rms_norm_paths()
    w = torch.randn(2)
    ir_core.ops.rms_norm(torch.randn(1, 2), w, 1e-6)  # plugins loaded: nothing forgotten below
    for n in range(1, dispatch.CACHE_LIMIT + 10):
        ir_core.ops.rms_norm(torch.empty(n, 2), w, 1e-6)
    held = compiled.stats()["entries"] if hit_path == "compiled" else len(cache)
    assert 0 < held <= dispatch.CACHE_LIMIT


def test_bad_arguments_are_refused_after_a_cached_call():
    ir_core.ops.rms_norm(X, W, 1e-6)
    with pytest.raises(ValueError, match="weight"):
        ir_core.ops.rms_norm(X, torch.randn(8), 1e-6)
    with pytest.raises(TypeError, match="'x'"):
        ir_core.ops.rms_norm(X.tolist(), W, 1e-6)
    with pytest.raises(TypeError, match="'weight'"):  # X's key, but no tensor to match
        ir_core.ops.rms_norm(X, W.tolist(), 1e-6)


def test_priority_change_invalidates_the_cache(providers):
    with ir_core.set_priority(rms_norm=["alpha"]):
        assert who_ran(ir_core.ops.rms_norm(X, W, 1e-6)) == 2.0
    ir_core.configure({"rms_norm": ["beta"]})
    assert who_ran(ir_core.ops.rms_norm(X, W, 1e-6)) == 3.0
    ir_core.configure({"rms_norm": ["alpha"]})
    assert who_ran(ir_core.ops.rms_norm(X, W, 1e-6)) == 2.0
    ir_core.configure(None)
    assert who_ran(ir_core.ops.rms_norm(X, W, 1e-6)) == 1.0


def test_plugin_change_invalidates_the_cache(plugin):
    late = Provider("late", 13.0)
    assert who_ran(ir_core.ops.rms_norm(X, W, 1e-6)) == 1.0
    plugin(platform_priority=lambda platform: {"rms_norm": ["late"]}, **late.hooks())
    assert who_ran(ir_core.ops.rms_norm(X, W, 1e-6)) == 13.0


def test_sources_in_order_of_strength(providers, monkeypatch):
    monkeypatch.setenv("IR_CORE_OP_PRIORITY", "rms_norm=alpha")
    assert who_ran(ir_core.ops.rms_norm(X, W, 1e-6)) == 2.0
    ir_core.configure({"rms_norm": ["beta"]})
    assert who_ran(ir_core.ops.rms_norm(X, W, 1e-6)) == 3.0
    with ir_core.set_priority(rms_norm=["alpha"]):
        assert who_ran(ir_core.ops.rms_norm(X, W, 1e-6)) == 2.0
        with ir_core.set_priority(fused_add_rms_norm=["native"]):  # inherits rms_norm
            assert who_ran(ir_core.ops.rms_norm(X, W, 1e-6)) == 2.0
    assert who_ran(ir_core.ops.rms_norm(X, W, 1e-6)) == 3.0


def test_plugin_defaults_follow_user_entries_without_duplicates(plugin, providers):
    plugin(platform_priority=lambda platform: {"rms_norm": ["beta", "alpha"]})
    assert priority.resolve("rms_norm") == ("beta", "alpha", "native")
    ir_core.configure({"rms_norm": ["alpha", "decline"]})
    assert priority.resolve("rms_norm") == ("alpha", "decline", "beta", "native")
    ir_core.configure({"rms_norm": ["decline", "native"]})
    assert priority.resolve("rms_norm") == ("decline", "native")


def test_env_json_form(providers, monkeypatch):
    monkeypatch.setenv("IR_CORE_OP_PRIORITY", json.dumps({"rms_norm": ["gamma", "beta"]}))
    assert priority.resolve("rms_norm")[:2] == ("gamma", "beta")
    assert who_ran(ir_core.ops.rms_norm(X, W, 1e-6)) == 3.0


@pytest.mark.parametrize(
    "text, words",
    [
        ("rms_norm=nosuch", ["unknown provider 'nosuch'", "known providers:", "native"]),
        ("layer_norm=native", ["unknown op 'layer_norm'", "known ops:", "rms_norm"]),
        ('{"rms_norm": "native"}', ["JSON must map op names to lists"]),
        ("rms_norm", ["expected 'op=provider"]),
    ],
)
def test_bad_env_priority_is_a_clear_error(monkeypatch, text, words):
    monkeypatch.setenv("IR_CORE_OP_PRIORITY", text)
    with pytest.raises(ir_core.PriorityError) as info:
        ir_core.ops.rms_norm(torch.randn(2, 3), None, 1e-6)
    for word in words:
        assert word in str(info.value)
    assert "IR_CORE_OP_PRIORITY" in str(info.value)


def test_set_priority_and_configure_reject_unknown_names():
    with pytest.raises(ir_core.PriorityError, match="known providers"):
        with ir_core.set_priority(rms_norm=["nosuch"]):
            pass
    with pytest.raises(ir_core.PriorityError, match="known ops"):
        ir_core.configure({"nosuch_op": ["native"]})


def test_set_priority_is_thread_local(providers):
    results = {}
    inside, release = threading.Event(), threading.Event()

    def worker():
        inside.wait()
        results["thread"] = who_ran(ir_core.ops.rms_norm(X, W, 1e-6))
        release.set()

    t = threading.Thread(target=worker)
    t.start()
    with ir_core.set_priority(rms_norm=["alpha"]):
        inside.set()
        release.wait()
        results["main"] = who_ran(ir_core.ops.rms_norm(X, W, 1e-6))
    t.join()
    assert results == {"thread": 1.0, "main": 2.0}


def test_set_priority_is_task_local(providers):
    async def run(name, order, started, other_started):
        with ir_core.set_priority(rms_norm=order):
            started.set()
            await other_started.wait()  # both blocks are open at once
            return name, who_ran(ir_core.ops.rms_norm(X, W, 1e-6))

    async def main():
        a, b = asyncio.Event(), asyncio.Event()
        return dict(await asyncio.gather(run("a", ["alpha"], a, b), run("b", ["beta"], b, a)))

    assert asyncio.run(main()) == {"a": 2.0, "b": 3.0}


def test_explain_lists_impls_outside_the_priority(providers):
    info = ir_core.explain("rms_norm", X, W, 1e-6)
    assert info.provider == "native"
    assert ("alpha", "not in this op's priority") in info.skipped
    assert "rms_norm -> native" in str(info)
    assert info.to_dict()["provider"] == "native"


def test_a_raising_predicate_declines_without_breaking_the_call(plugin):
    def boom(x, weight, epsilon, weight_bias=0.0, variance_size=None):
        raise RuntimeError("predicate bug")

    bad = Provider("faulty", 17.0)
    bad.supports = boom
    plugin(**bad.hooks())
    with ir_core.set_priority(rms_norm=["faulty"]):
        assert who_ran(ir_core.ops.rms_norm(X, W, 1e-6)) == 1.0
        reason = dict(ir_core.explain("rms_norm", X, W, 1e-6).skipped)["faulty"]
    assert "supports_args raised RuntimeError: predicate bug" == reason


def test_priority_hash_follows_priority_and_sources(providers):
    base = ir_core.priority_hash()
    assert base == ir_core.priority_hash()
    ir_core.configure({"rms_norm": ["alpha"]})
    with_alpha = ir_core.priority_hash()
    assert with_alpha != base
    ir_core.configure({"rms_norm": ["delta"]})  # unavailable: it cannot be selected
    assert ir_core.priority_hash() == base
    ir_core.configure(None)
    assert ir_core.priority_hash() == base


def test_dispatch_under_torch_compile_uses_the_priority(providers):
    def f(x, w):
        return ir_core.ops.rms_norm(x, w, 1e-6)

    compiled = torch.compile(f, backend="eager", fullgraph=True)
    with ir_core.set_priority(rms_norm=["alpha"]):
        assert who_ran(compiled(X, W)) == 2.0


def test_rejection_is_the_one_reason_for_dispatch_and_bench(providers):
    """``Impl.rejection`` says why an impl cannot run; dispatch's reasons are its answers."""
    op = ir_core.get_op("rms_norm")
    args = op.bind((X, W, 1e-6), {})
    with ir_core.set_priority(rms_norm=["gamma", "delta", "decline", "alpha"]):
        skipped = dict(ir_core.explain("rms_norm", X, W, 1e-6).skipped)
    for name in ("gamma", "delta", "decline"):
        assert op.impls[name].rejection("cpu", args) == skipped[name]
    assert skipped["gamma"] == "runs on cuda, not cpu"
    assert skipped["delta"] == "unavailable: libdelta missing"
    assert op.impls["alpha"].rejection("cpu", args) is None
    assert op.impls["alpha"].rejection("xpu", args) == "runs on cpu, not xpu"


def test_tracebacks_show_the_generated_dispatcher_lines(failing):
    """The dispatcher's source is registered with linecache, as attrs does for its classes."""
    import traceback

    with ir_core.set_priority(rms_norm=["crashing"]):
        with pytest.raises(RuntimeError, match="illegal memory access") as info:
            ir_core.ops.rms_norm(X, W, 1e-6)
    frames = [f for f in traceback.extract_tb(info.tb) if f.filename == "<ir_core.ops.rms_norm>"]
    assert frames and all(f.line for f in frames)
    assert any("return hit(" in f.line for f in frames)


# -- hardening: what a predicate answers, exact keys, a kernel's error, compiled frames --------


@pytest.mark.parametrize(
    "answer, shown",
    [
        (lambda x: x > 0, "Tensor"),  # many elements: its truth is ambiguous
        (lambda x: torch.tensor(True), "Tensor"),  # one element: true, but still not a bool
        (lambda x: None, "NoneType"),
        (lambda x: 1, "int"),
        (lambda x: "yes", "str"),
    ],
)
def test_a_predicate_answering_anything_but_a_bool_declines(plugin, answer, shown):
    odd = Provider("odd_answer", 23.0, accepts=answer)
    plugin(**odd.hooks())
    with ir_core.set_priority(rms_norm=["odd_answer"]):
        assert who_ran(ir_core.ops.rms_norm(X, W, 1e-6)) == 1.0
        reason = dict(ir_core.explain("rms_norm", X, W, 1e-6).skipped)["odd_answer"]
    assert reason == f"supports_args returned {shown}, not a bool: declined"
    assert odd.kernel_calls == 0


@pytest.mark.parametrize(
    "first, second, argument",
    [
        ({"epsilon": 1}, {"epsilon": True}, "epsilon"),
        ({"weight_bias": 0.0}, {"weight_bias": False}, "weight_bias"),
        ({"variance_size": 32}, {"variance_size": 32.0}, "variance_size"),
    ],
)
def test_an_equal_argument_of_another_type_is_validated_again(first, second, argument):
    """``True == 1`` and ``32.0 == 32``: a key of values alone would reuse the decision and
    skip validation; the type is part of the key."""
    x, w = torch.randn(2, 64), torch.randn(64)
    for _ in range(2):  # the second call is a hit
        ir_core.ops.rms_norm(x, w, **{"epsilon": 1e-6, **first})
    with pytest.raises(TypeError, match=f"ir_core.ops.rms_norm: argument '{argument}'"):
        ir_core.ops.rms_norm(x, w, **{"epsilon": 1e-6, **second})


def test_a_predicate_reading_an_arguments_type_is_asked_again(plugin):
    """``weight_bias=1`` and ``1.0`` are both valid and equal; a provider may take one only."""
    floats_only = Provider("floats_only", 29.0)
    floats_only.supports = lambda x, weight, epsilon, weight_bias=0.0, variance_size=None: (
        type(weight_bias) is float
    )
    plugin(**floats_only.hooks())
    w = W - 1.0
    with ir_core.set_priority(rms_norm=["floats_only"]):
        for _ in range(2):
            out = ir_core.ops.rms_norm(X, w, 1e-6, weight_bias=1.0)
            torch.testing.assert_close(out, NATIVE(X, w, 1e-6, 1.0) * 29.0)
        out = ir_core.ops.rms_norm(X, w, 1e-6, weight_bias=1)
    torch.testing.assert_close(out, NATIVE(X, w, 1e-6, 1.0))


@pytest.fixture
def failing(plugin):
    def kernel(
        x: torch.Tensor,
        weight: torch.Tensor | None,
        epsilon: float,
        weight_bias: float = 0.0,
        variance_size: int | None = None,
    ) -> torch.Tensor:
        raise RuntimeError("illegal memory access")

    def register_impls(registry):
        registry.register_impl("rms_norm", "crashing", kernel, device_types=("cpu",))

    return plugin(name="crashing_plugin", register_impls=register_impls)


def _assert_names_the_culprit(exc: BaseException) -> None:
    (note,) = exc.__notes__  # once, however many layers it crossed
    for words in ("rms_norm", "'crashing'", "'crashing_plugin'", "IR_CORE_OP_PRIORITY="):
        assert words in note, note
    assert "IR_CORE_DISABLE_PLUGINS=crashing_plugin" in note


def test_a_kernel_that_raises_keeps_raising_with_a_note_naming_it(failing):
    """No silent fallback (a broken kernel would go unnoticed), but the error says where it
    comes from and how to run without it; on a miss and on a hit alike."""
    with ir_core.set_priority(rms_norm=["crashing"]):
        for _ in range(2):
            with pytest.raises(RuntimeError, match="illegal memory access") as info:
                ir_core.ops.rms_norm(X, W, 1e-6)
            _assert_names_the_culprit(info.value)
        with pytest.raises(RuntimeError, match="illegal memory access") as info:
            torch.ops.ir_core.rms_norm(X, W, 1e-6)
        _assert_names_the_culprit(info.value)
        bound = ir_core.bind("rms_norm", X, W, 1e-6)
        for _ in range(2):
            with pytest.raises(RuntimeError, match="illegal memory access") as info:
                bound(X, W, 1e-6)
            _assert_names_the_culprit(info.value)


def test_a_sparse_argument_is_a_clear_error():
    sparse = X.to_sparse()
    with pytest.raises(TypeError) as info:
        ir_core.ops.rms_norm(sparse, W, 1e-6)
    assert str(info.value) == (
        "ir_core.ops.rms_norm: argument 'x' must be a dense (strided) tensor, "
        "got layout torch.sparse_coo"
    )
    with pytest.raises(TypeError, match="argument 'weight' must be a dense"):
        ir_core.ops.rms_norm(X, W.to_sparse(), 1e-6)


_COMPILE_THEN_EAGER = """
import torch, ir_core
torch._dynamo.config.error_on_recompile = False
def f(x, w):
    return ir_core.ops.rms_norm(x, w, 1e-6) * 2
compiled = torch.compile(f, backend="eager", fullgraph=True)
x, w = torch.randn(4, 16), torch.randn(16)
compiled(x, w)
eager = ir_core.ops.rms_norm(x, w, 1e-6)  # the process's first eager call of the op
torch._dynamo.config.error_on_recompile = True
torch.testing.assert_close(compiled(x, w), eager * 2)
print("no recompile")
"""


def test_an_eager_call_after_compiling_leaves_compiled_frames_valid(hit_path):
    """Engines compile, then run eager warm-ups, some with error_on_recompile: Dynamo guards
    on the dispatcher's code, which no call may change. A fresh process, for a first call."""
    env = {**os.environ, fastpath.ENV_COMPILED: "1" if hit_path == "compiled" else "0"}
    out = subprocess.run(
        [sys.executable, "-c", _COMPILE_THEN_EAGER], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "no recompile"


# -- bound call sites --------------------------------------------------------------------------


def test_a_bound_call_runs_what_dispatch_selects(providers):
    with ir_core.set_priority(rms_norm=["decline", "beta", "alpha"]):
        bound = ir_core.bind(ir_core.ops.rms_norm, X, W, 1e-6)
        assert bound.provider == "beta" and bound.kernel == providers["beta"].kernel
        for _ in range(3):
            assert who_ran(bound(X, W, 1e-6)) == 3.0
        assert who_ran(bound(x=X, weight=W, epsilon=1e-6)) == 3.0
        assert providers["beta"].predicate_calls == 1  # bound once, never asked again
        assert bound.matches(X.clone(), W, 1e-6)
        assert not bound.matches(X.double(), W, 1e-6)
        assert not bound.matches(torch.randn(5, 16), W, 1e-6)
        assert not bound.matches(X, W, 1)  # an int epsilon: another key
    assert not bound.matches(X, W, 1e-6)  # outside the scope it was bound in
    assert bound.__name__ == "rms_norm" and bound.op == "rms_norm"


def test_a_bound_call_selects_again_when_priorities_change(providers):
    bound = ir_core.bind("rms_norm", X, W, 1e-6)
    assert bound.provider == "native"
    ir_core.configure({"rms_norm": ["alpha"]})
    assert who_ran(bound(X, W, 1e-6)) == 2.0
    assert bound.provider == "alpha"
    with ir_core.set_priority(rms_norm=["beta"]):  # another scope
        assert who_ran(bound(X, W, 1e-6)) == 3.0
    assert who_ran(bound(X, W, 1e-6)) == 2.0
    ir_core.configure(None)
    assert who_ran(bound(X, W, 1e-6)) == 1.0


def test_a_bound_call_sees_plugins_come_and_go(plugin):
    bound = ir_core.bind("rms_norm", X, W, 1e-6)
    late = Provider("late_bound", 31.0)
    record = plugin(platform_priority=lambda platform: {"rms_norm": ["late_bound"]}, **late.hooks())
    assert who_ran(bound(X, W, 1e-6)) == 31.0
    ir_core.unregister_plugin(record.name)
    assert who_ran(bound(X, W, 1e-6)) == 1.0


def test_bind_validates_its_example():
    with pytest.raises(ValueError, match=r"ir_core\.ops\.rms_norm: argument 'weight'"):
        ir_core.bind("rms_norm", X, torch.randn(8), 1e-6)
    with pytest.raises(TypeError, match="not an op"):
        ir_core.bind(len, X, W, 1e-6)


def test_a_bound_call_records_the_ir_op_under_compile(providers):
    bound = ir_core.bind("rms_norm", X, W, 1e-6)
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    compiled = torch.compile(lambda x, w: bound(x, w, 1e-6), backend=backend, fullgraph=True)
    with ir_core.set_priority(rms_norm=["alpha"]):
        assert who_ran(compiled(X, W)) == 2.0  # the torch op dispatches eagerly in the graph
    targets = [n.target for n in graphs[-1].graph.nodes if n.op == "call_function"]
    assert torch.ops.ir_core.rms_norm.default in targets


def scaled(x: torch.Tensor, mode: str, factor: int, dtype: torch.dtype) -> torch.Tensor:
    """A test op whose scalars are a str, an int and a dtype."""
    return (x * float(factor)).to(dtype)


def test_every_scalar_kind_is_keyed_exactly(plugin, hit_path):
    """Interned strings and dtypes are keyed by identity, ints by value; an equal string built
    at run time, or an int beyond 64 bits, goes to the Python path: the same decision."""
    asked = []

    def fast_only(x, mode, factor, dtype):
        asked.append((mode, factor, dtype))
        return mode == "fast" and factor < 2**62

    def doubled(x: torch.Tensor, mode: str, factor: int, dtype: torch.dtype) -> torch.Tensor:
        return scaled(x, mode, factor, dtype) * 2

    def register_ops(registry):
        registry.register_op(scaled, name="test_scaled")

    def register_impls(registry):
        registry.register_impl(
            "test_scaled", "doubler", doubled, device_types=("cpu",), supports_args=fast_only
        )

    plugin(register_ops=register_ops, register_impls=register_impls)
    op = ir_core.ops.test_scaled
    x = torch.ones(3)
    built = "".join(["fa", "st"])  # equal to "fast", not the interned object
    with ir_core.set_priority(test_scaled=["doubler"]):
        cases = [
            ("fast", 3, torch.float32, 6.0),
            ("slow", 3, torch.float32, 3.0),
            (built, 3, torch.float32, 6.0),
            ("fast", 3, torch.float16, 6.0),
            ("fast", 2**70, torch.float64, float(2**70)),
        ]
        for _ in range(2):
            for mode, factor, dtype, expected in cases:
                out = op(x, mode, factor, dtype)
                assert out.dtype == dtype and out[0].item() == expected, (mode, factor, dtype)
    kept = [c for c in asked if c[1] < 2**62 and c[0] is not built]
    assert len(kept) == 3  # "fast"/fp32, "slow", "fast"/fp16: each asked once
    if hit_path == "compiled":
        compiled = next(p for p in dispatch._hit_paths if p.namespace["op"].name == "test_scaled")
        stats = compiled.compiled.stats()
        assert stats["fallbacks"] == 4 and stats["hits"] == 3
