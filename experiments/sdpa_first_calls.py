"""What the first call of PyTorch's fused attention costs at a shape not seen before, with a padding mask as the zoo
passes one (encoder self-attention, cross-attention): with PyTorch's default choice of kernels, and with the kernels
the zoo allows (zoo.models.layers.FUSED_KERNELS). Token-budget batches and decoding without a cache meet a new
shape at almost every call, so a per-shape cost is paid again and again.

    python experiments/sdpa_first_calls.py      # on a CUDA device
"""
import statistics
import time
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch.nn.attention import sdpa_kernel

from zoo.models.layers import FUSED_KERNELS


def first_and_later(T: int, S: int, choice) -> tuple[float, float]:
    """Seconds of the first forward+backward at (64, 8, T, S) with a (B, 1, 1, S) padding mask, and the median of
    five more calls at the same shape."""
    q = torch.randn(64, 8, T, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    k, v = (torch.randn(64, 8, S, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(2))
    mask = torch.ones(64, 1, 1, S, dtype=torch.bool, device="cuda")
    times = []
    for _ in range(6):
        torch.cuda.synchronize()
        start = time.perf_counter()
        with choice():
            F.scaled_dot_product_attention(q, k, v, attn_mask=mask).sum().backward()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times[0], statistics.median(times[1:])


def main() -> None:
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}")
    first_and_later(17, 19, lambda: sdpa_kernel(FUSED_KERNELS))  # CUDA context, cuBLAS handles
    choices = {"PyTorch's default": nullcontext, "the zoo's kernels": lambda: sdpa_kernel(FUSED_KERNELS)}
    for i, (name, choice) in enumerate(choices.items()):
        for T, S in [(23 + i, 29 + i), (31 + i, 37 + i), (41 + i, 43 + i), (101 + i, 97 + i)]:  # fresh shapes
            first, later = first_and_later(T, S, choice)
            print(f"{name:<18} T={T:<4} S={S:<4} first call {1e3 * first:8.1f} ms, later calls {1e3 * later:6.2f} ms")


if __name__ == "__main__":
    main()
