"""The compiled decode step (engine/compiled.py): compiled in the background when the engine
starts, the same logits as the eager lean step, and no compile after its warm-up: the layouts
it warmed run compiled graphs for new prompt lengths and batches (a recompile would raise
under the `fail_on_recompile` stance), other layouts run eagerly with the same results."""

from __future__ import annotations

import pytest
import torch

from lora_land.config import Settings
from lora_land.engine import compiled
from lora_land.engine.decoder import LeanDecoder, lean_decoder, use_step
from lora_land.engine.engine import Engine
from lora_land.errors import ConfigError
from tests.engine.engine_helpers import deployment_for, engine_settings
from tests.engine.test_decoder import same_decode

WARMED = [  # the warm-up's layouts: one row on the first adapter, then a base row joins
    ("Once upon a time, in a village by the sea, there lived", "tiny/a"),
    ("Say hi", None),
]
OTHERS = [  # a second adapter's layout, then three rows: not warmed (eager)
    ("Q: What is 12 plus 30?\nA:", "tiny/b"),
    ("List three colours of the rainbow:", "tiny/a"),
    ("Say hi", None),
]


def _same_as_eager(engine: Engine, step: compiled.CompiledDecoder, prompts: list) -> int:
    return same_decode(engine, prompts, use_step(engine.model, step.lean), steps=5, tol=1e-4)


def test_the_compiled_step_matches_the_eager_one_and_compiles_nothing_after_warm_up(
    tmp_path, tiny_base_dir, tiny_adapters
):
    settings = engine_settings(tmp_path, cpu_linear="aten", compile="auto")
    engine = Engine.from_settings(settings, deployment_for(tiny_base_dir, tiny_adapters))
    engine.eos_ids = frozenset()
    try:
        assert engine.wait_compiled(timeout=600) == "compiled"  # compiled in the background
        step = lean_decoder(engine.model)
        assert isinstance(step, compiled.CompiledDecoder)
        graphs = step.compiles()
        assert graphs >= 3  # one per warmed layout at least
        with torch.compiler.set_stance("fail_on_recompile"):  # raises if a step is not covered
            assert _same_as_eager(engine, step, WARMED) >= 2 * 5
            assert _same_as_eager(engine, step, [(p + " and more", a) for p, a in WARMED]) >= 10
        assert _same_as_eager(engine, step, OTHERS) >= 3 * 5  # eagerly: no compile meanwhile
        assert step.compiles() == graphs
    finally:
        engine.close()


def test_engines_compile_only_when_asked(tmp_path, tiny_base_dir, tiny_adapters, monkeypatch):
    engine = Engine.from_settings(
        engine_settings(tmp_path), deployment_for(tiny_base_dir, tiny_adapters)
    )
    try:
        assert engine.settings.compile == "off"  # Settings(): nothing compiles unless asked
        assert engine.wait_compiled() == "eager"
        assert type(lean_decoder(engine.model)) is LeanDecoder
    finally:
        engine.close()
    monkeypatch.delenv("LORA_LAND_COMPILE", raising=False)
    assert Settings.from_env().compile == "auto"  # the app's default
    monkeypatch.setenv("LORA_LAND_COMPILE", "sometimes")
    with pytest.raises(ConfigError, match="LORA_LAND_COMPILE must be auto or off"):
        Settings.from_env()


def test_packed_projections_keep_the_eager_step(tmp_path, tiny_base_dir, tiny_adapters):
    settings = engine_settings(tmp_path, cpu_linear="onednn")
    engine = Engine.from_settings(settings, deployment_for(tiny_base_dir, tiny_adapters))
    try:
        assert not compiled.supported(lean_decoder(engine.model))
        assert engine.warm_up_compiled() is False
        assert type(lean_decoder(engine.model)) is LeanDecoder
    finally:
        engine.close()


def test_without_a_cxx_compiler_the_eager_step_serves(
    tmp_path, tiny_base_dir, tiny_adapters, monkeypatch
):
    settings = engine_settings(tmp_path, cpu_linear="aten")
    engine = Engine.from_settings(settings, deployment_for(tiny_base_dir, tiny_adapters))
    try:
        assert compiled.cxx_available()  # this machine has one (the suite compiles)
        monkeypatch.setenv("PATH", str(tmp_path))  # a slim container: no g++, c++, clang++
        monkeypatch.delenv("CXX", raising=False)
        assert not compiled.cxx_available()
        assert engine.warm_up_compiled() is False
        assert type(lean_decoder(engine.model)) is LeanDecoder
    finally:
        engine.close()


def test_a_warm_up_stops_when_the_engine_closes(tmp_path, tiny_base_dir, tiny_adapters):
    settings = engine_settings(tmp_path, cpu_linear="aten")
    engine = Engine.from_settings(settings, deployment_for(tiny_base_dir, tiny_adapters))
    lean = lean_decoder(engine.model)
    assert compiled.supported(lean)
    engine.model.config.hidden_act = "gelu"  # the compiled MLP is SwiGLU: not this model's
    assert not compiled.supported(lean)
    engine.model.config.hidden_act = "silu"
    engine.close()  # the warm-up waits for idleness before each graph, and finds it closed
    assert engine.warm_up_compiled() is False
    assert engine.decode_step == "eager"
    assert type(lean_decoder(engine.model)) is LeanDecoder
    assert not engine.store.device.is_pinned("tiny/a")  # the warm-up's adapter is released


def test_each_warm_up_graph_compiles_holding_the_model_lock(
    tmp_path, tiny_base_dir, tiny_adapters, monkeypatch
):
    """Tracing patches `nn.Module.__call__` process-wide: a request's eager forward beside it
    failed ("NameError: module is not installed as a submodule"). Each graph must compile
    while the engine's model lock is held, so no forward runs meanwhile."""
    from lora_land.engine import decoder

    settings = engine_settings(tmp_path, cpu_linear="aten")
    engine = Engine.from_settings(settings, deployment_for(tiny_base_dir, tiny_adapters))
    held: list[tuple[int, bool]] = []

    def warm_step(self, layout, width, cut):  # records instead of compiling
        held.append((len(layout), engine._model_lock.locked()))

    monkeypatch.setattr(compiled.CompiledDecoder, "_warm_step", warm_step)
    monkeypatch.setattr(compiled, "cxx_available", lambda: True)
    monkeypatch.setattr(compiled, "settle", lambda: None)  # no process-wide compiler stance
    monkeypatch.setattr(decoder, "install_step", lambda model, step: None)
    try:
        assert engine.warm_up_compiled() is True
        assert held == [(1, True), (1, True), (1, True), (1, True), (2, True), (2, True)]
        assert not engine._model_lock.locked()  # released after each graph
    finally:
        engine.close()
