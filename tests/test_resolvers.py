"""The config tree's interpolations that read the machine."""
import pytest

from zoo.resolvers import cpu_precision


@pytest.mark.parametrize("line, precision", [
    ("flags\t\t: fpu sse avx2 avx512f avx512bw avx512_vnni", "32-true"),  # Cascade Lake: bf16 emulated
    ("flags\t\t: fpu avx2 avx512f avx512_vnni avx512_bf16", "bf16-mixed"),  # Zen 4, Cooper Lake
    ("flags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile", "32-true"),  # Sapphire Rapids: a kernel a shape
    ("Features\t: fp asimd sve bf16 i8mm", "bf16-mixed"),  # Graviton 3
    ("Features\t: fp asimd", "32-true"),
])
def test_bf16_only_where_the_cpu_multiplies_it_in_hardware_without_amx(tmp_path, line, precision):
    (tmp_path / "cpuinfo").write_text(f"processor\t: 0\nmodel name\t: some CPU\n{line}\n\nprocessor\t: 1\n{line}\n")
    assert cpu_precision(str(tmp_path / "cpuinfo")) == precision


def test_without_cpuinfo_fp32(tmp_path):
    assert cpu_precision(str(tmp_path / "missing")) == "32-true"
