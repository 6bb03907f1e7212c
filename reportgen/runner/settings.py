"""Runtime settings of the case-running commands: where a model runs and in which number format.

Three sources, most specific wins: an explicit command-line flag (``--device``, ``--dtype``,
``--4bit``), then the project file's ``[models.NAME]`` table, then the defaults (``auto`` = CUDA
when available, float32, no quantisation). Everything here that changes the numbers (device
*type*, dtype, quantisation) goes into the result-cache key; the CUDA index does not (the same
GPU model on cuda:0 and cuda:1 computes the same numbers, so a site does not depend on which
worker ran a case)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ReportgenError
from ..project import DEVICES_HELP, DTYPES, Project, is_device_spec

DEFAULT_DTYPE = "float32"


@dataclass(frozen=True)
class RuntimeOptions:
    """What the command line asked for; ``None`` = not given (the project file or default)."""

    device: str | None = None
    dtype: str | None = None
    quantization: str | None = None  # "4bit" or None

    def __post_init__(self) -> None:
        if self.device is not None and not is_device_spec(self.device):
            raise ReportgenError(f"--device: {self.device!r} is not one of {DEVICES_HELP}")
        if self.dtype is not None and self.dtype not in DTYPES:
            raise ReportgenError(f"--dtype: {self.dtype!r} is not one of {', '.join(DTYPES)}")


DEFAULT_OPTIONS = RuntimeOptions()


@dataclass(frozen=True)
class ModelRuntime:
    """The resolved settings of one model: a concrete device (``cpu``, ``cuda``, ``cuda:N``)."""

    device: str
    dtype: str = DEFAULT_DTYPE
    quantization: str | None = None

    @property
    def device_type(self) -> str:
        return self.device.split(":", 1)[0]

    def key(self) -> dict[str, str]:
        """The part of the result-cache key (and of the environment block) these settings set."""
        return {
            "device": self.device_type,
            "dtype": self.dtype,
            "quantization": self.quantization or "none",
        }

    def on_device(self, device: str) -> ModelRuntime:
        return ModelRuntime(device, self.dtype, self.quantization)


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def resolve_runtime(
    model: str,
    options: RuntimeOptions = DEFAULT_OPTIONS,
    project: Project | None = None,
    *,
    has_cuda: bool | None = None,
    case_path: str | None = None,
) -> ModelRuntime:
    """Settings for ``model``: the flag, else the project file's ``[models.NAME]``, else default.
    ``case_path``: the case naming ``model`` (a NAME may be written as that case writes it).

    ``has_cuda`` says whether ``auto`` means CUDA (the driver of a Ray cluster asks the cluster,
    not its own machine); ``None`` asks torch here."""
    found = project.model_settings(model, case_path) if project is not None else None
    key, override = found if found is not None else (model, None)
    where = project.path if project is not None and project.path else "project file"
    device = options.device or (override.device if override else None) or "auto"
    dtype = options.dtype or (override.dtype if override else None) or DEFAULT_DTYPE
    quantization = options.quantization
    if (
        quantization is None
        and override is not None
        and override.quantization not in (None, "none")
    ):
        quantization = override.quantization
    cuda = cuda_available() if has_cuda is None else has_cuda
    if device == "auto":
        device = "cuda" if cuda else "cpu"
    if device.startswith("cuda") and not cuda:
        where_cuda = "here" if has_cuda is None else "on the Ray cluster (no GPU resources)"
        raise ReportgenError(
            f"{model}: device {device} requested but CUDA is not available {where_cuda}"
        )
    if quantization == "4bit" and not device.startswith("cuda"):
        source = "--4bit" if options.quantization else f"{where}: models.{key}.quantization"
        raise ReportgenError(
            f"{source}: 4-bit runs only on CUDA (bitsandbytes' 4-bit backward on the CPU gives "
            f"wrong gradients); {model} would run on {device}"
        )
    return ModelRuntime(device=device, dtype=dtype, quantization=quantization)
