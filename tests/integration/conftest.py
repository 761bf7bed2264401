"""Fixtures for integration tests: the COS + CI stand-in on a free port, spoken to by the real SDK."""

from __future__ import annotations

import io
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from superres.sr import load_engine
from superres.stack import LocalStack, StackOptions
from superres.standin import Credential, ObjectCreated, StandIn, StandinSettings
from superres.standin.settings import DEMO_SECRET_ID, DEMO_SECRET_KEY
from tests.conftest import register_secret

TEMP_SECRET_ID = "AKIDsuperresTEMPORARYkey000000000000"
TEMP_SECRET_KEY = "superresTEMPORARYsecretKey000000"
TEMP_TOKEN = "superres-session-token-0001"


class EventRecorder:
    """Collects ObjectCreated events from the stand-in's server thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[ObjectCreated] = []

    def __call__(self, event: ObjectCreated) -> None:
        with self._lock:
            self._events.append(event)

    def for_bucket(self, bucket: str) -> list[ObjectCreated]:
        with self._lock:
            return [e for e in self._events if e.bucket == bucket]


def image_bytes(width: int = 64, height: int = 48, fmt: str = "JPEG", mode: str = "RGB") -> bytes:
    """A small gradient image (not flat, so encoders and SR have something to do)."""
    image = Image.linear_gradient("L").resize((width, height)).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def solid_png(seed: int, size: tuple[int, int] = (24, 16)) -> bytes:
    """A one-colour PNG whose bytes (and so ETag) differ by `seed`: a version of an upload, cheap to tell apart."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (seed * 40 % 256, 90, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def standin_events() -> EventRecorder:
    return EventRecorder()


@pytest.fixture(scope="session")
def standin(tmp_path_factory: pytest.TempPathFactory, standin_events: EventRecorder) -> Iterator[StandIn]:
    settings = StandinSettings(
        data_dir=Path(tmp_path_factory.mktemp("standin-data")),
        credentials=(
            Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY),
            Credential(TEMP_SECRET_ID, TEMP_SECRET_KEY, token=TEMP_TOKEN),
        ),
    )
    with StandIn(settings, engine=load_engine("bicubic"), on_object_created=standin_events) as server:
        yield server


@pytest.fixture
def cos(standin: StandIn):  # type: ignore[no-untyped-def]
    """A CosS3Client with the demo keys, configured the way a user would (IP/Port mode)."""
    return standin.client()


@pytest.fixture
def bucket(standin: StandIn) -> str:
    """A fresh bucket per test, so 'nothing was stored' is a plain listing comparison."""
    return standin.create_bucket(f"t{uuid.uuid4().hex[:12]}")


register_secret(TEMP_SECRET_KEY, TEMP_TOKEN)  # the session's log scan (tests/conftest.py) looks for these too


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The whole local stack (stand-in + serverless.yml's function) with the fast bicubic engine, trigger off."""
    options = StackOptions(data_dir=tmp_path_factory.mktemp("standin"), engine=load_engine("bicubic"), trigger=False)
    with LocalStack(options) as running:
        yield running
