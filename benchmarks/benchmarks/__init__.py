"""The asv suite of xbackend: ``bench_mul_sum`` times and tracks every (adapter, device, shape class, dtype) cell."""
