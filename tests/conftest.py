import os

# JAX must be told before it is imported: the suite checks float64, int64 and
# complex128 on JAX too. The x64-off refusal is tested in a subprocess.
os.environ.setdefault("JAX_ENABLE_X64", "1")
