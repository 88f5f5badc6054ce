"""Memory guards count what the kernel can give (issue 22, item 6): MemAvailable (free memory plus the
reclaimable page cache) and a control group's limit where one is set; a real over-allocation is still
refused in one line."""

import os

import pytest

from mpisim import resources
from mpisim.errors import MPISimError


def test_cgroup_v2_limit_counts_reclaimable_cache(tmp_path):
    (tmp_path / "cgroup").write_text("0::/job.slice/run-1\n")
    d = tmp_path / "fs" / "job.slice" / "run-1"
    d.mkdir(parents=True)
    (d / "memory.max").write_text(f"{4 << 30}\n")
    (d / "memory.current").write_text(f"{3 << 30}\n")                 # 3 GiB used, of which 2 GiB is cache
    (d / "memory.stat").write_text(f"anon {1 << 30}\nfile {2 << 30}\ninactive_file {2 << 30}\n")
    assert resources.cgroup_available(tmp_path / "fs", tmp_path / "cgroup") == 3 << 30
    (d / "memory.max").write_text("max\n")                            # no limit
    assert resources.cgroup_available(tmp_path / "fs", tmp_path / "cgroup") is None
    parent = d.parent                                                  # a limit on the job's slice, above
    (parent / "memory.max").write_text(f"{8 << 30}\n")
    (parent / "memory.current").write_text(f"{7 << 30}\n")
    (parent / "memory.stat").write_text("inactive_file 0\n")
    assert resources.cgroup_available(tmp_path / "fs", tmp_path / "cgroup") == 1 << 30


def test_cgroup_v1_memory_controller_wins_on_hybrid_systems(tmp_path):
    (tmp_path / "cgroup").write_text("4:memory:/docker/abc\n1:cpu:/\n0::/\n")
    d = tmp_path / "fs" / "memory" / "docker" / "abc"
    d.mkdir(parents=True)
    (d / "memory.limit_in_bytes").write_text(f"{2 << 30}\n")
    (d / "memory.usage_in_bytes").write_text(f"{2 << 30}\n")           # full, but half of it inactive cache
    (d / "memory.stat").write_text(f"cache {1 << 30}\ntotal_inactive_file {1 << 30}\n")
    assert resources.cgroup_available(tmp_path / "fs", tmp_path / "cgroup") == 1 << 30
    (d / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # v1's "no limit"
    assert resources.cgroup_available(tmp_path / "fs", tmp_path / "cgroup") is None


def test_the_guard_takes_the_smaller_of_machine_and_group(monkeypatch):
    monkeypatch.setattr(resources, "cgroup_available", lambda: 1 << 30)
    assert resources.available_memory() <= 1 << 30
    with pytest.raises(MPISimError, match="only 1.0 GiB of memory is available"):
        resources.check_memory(2 << 30, "a test allocation")


@pytest.mark.skipif(not os.path.exists("/proc/meminfo"), reason="Linux /proc/meminfo")
def test_a_full_page_cache_is_available_and_a_real_over_allocation_is_refused(tmp_path):
    """Right after a large write (and reading it back), the written pages sit in the page cache: not free,
    but available. The guard counts them; an allocation beyond the machine's memory is still refused."""
    size = min(1 << 30, resources.meminfo()["MemAvailable"] // 8)
    block = os.urandom(1 << 20)
    with open(tmp_path / "big.bin", "wb") as f:
        for _ in range(size >> 20):
            f.write(block)
    with open(tmp_path / "big.bin", "rb") as f:
        while f.read(8 << 20):
            pass
    info = resources.meminfo()
    avail = resources.available_memory()
    assert avail >= 0.8 * info["MemAvailable"]                       # the cache counts as available
    assert avail > info["MemFree"] or info["Cached"] < size // 2     # (free pages alone would be less)
    resources.check_memory(int(0.5 * avail), "half of what is available")          # passes
    with pytest.raises(MPISimError, match="would need"):
        resources.check_memory(2 * info["MemTotal"], "twice the machine's memory")


def test_an_address_space_limit_counts(tmp_path):
    """Under ``ulimit -v`` (RLIMIT_AS, what the hostile-file tests use) the guard sees the limit, so a
    read that the limit cannot hold is refused in one line instead of ending in a MemoryError."""
    import subprocess
    import sys

    code = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30)); "
            "from mpisim import resources as r; a = r.available_memory(); print(a); "
            "r.check_memory(2 << 30, 'two GiB')")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert int(p.stdout.split()[0]) < 1 << 30
    assert "NotEnoughMemory" in p.stderr and "two GiB would need 2.0 GiB" in p.stderr
