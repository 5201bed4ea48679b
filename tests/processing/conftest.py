import shutil
from collections.abc import Iterator

import pytest

from marketpipe.observability import native


@pytest.fixture
def native_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Both engine paths, whatever MARKETPIPE_NATIVE says: the tests that use it compare them.
    Where cargo is, `make install` built the extension, so a missing one fails here rather
    than skipping."""
    monkeypatch.delenv(native.ENV, raising=False)
    native.reset()
    if native.extension() is None:
        if shutil.which("cargo") is None:
            pytest.skip(f"no cargo on this machine: {native.status().reason}")
        pytest.fail(f"the native path is inactive: {native.status().reason}")
    yield
    native.reset()
