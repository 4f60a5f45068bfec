"""Produce scores: data, models, the shared training and evaluation loops, EL2N/GraNd/forgetting, the multi-seed
engine (``python -m datadiet_hub.scoring``, ``datadiet score``). Needs the ``[torch]`` extra; ``datadiet_hub`` does not."""

try:
    import torch  # noqa: F401 -- the check; every module of the package needs it
except ImportError as err:
    raise ImportError(
        f"scoring needs torch, accelerate and safetensors ({err}). Install them with "
        "pip install 'datadiet-hub[torch]' (on a CPU-only machine: pip install torch==2.13.0 first)."
    ) from err
