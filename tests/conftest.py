import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if not SHARED_DATA.is_dir():
    SHARED_DATA = Path(os.environ.get("MPISIM_SHARED_DATA", "/nonexistent"))


def require_gpu():
    """Skip visibly without a GPU; fail instead when MPISIM_REQUIRE_GPU=1."""
    from mpisim.backend import gpu_available

    if not gpu_available():
        msg = "no CUDA GPU / cupy available"
        if os.environ.get("MPISIM_REQUIRE_GPU") == "1":
            pytest.fail(msg + " but MPISIM_REQUIRE_GPU=1")
        pytest.skip(msg)


@pytest.fixture
def gpu():
    require_gpu()
    import cupy

    return cupy


@pytest.fixture
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder not found ({SHARED_DATA}); set MPISIM_SHARED_DATA")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MPISIM_CACHE_DIR", str(tmp_path / "cache"))
