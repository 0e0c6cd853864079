"""Hugging Face SigLIP checkpoints (`config.json` + `model.safetensors`) <-> NNX `SiglipModel`.

    model = load_hf("path/to/siglip-base-patch16-224")   # the files HF's SiglipModel reads
    save_hf(model, "out/")                                # and writes them back, same names
    copy_hf("path/to/siglip-base-patch16-224", "out/")    # the files we read, copied as they are

Tensor names are HF's (`vision_model.encoder.layers.3.self_attn.q_proj.weight`, ...). torch
layouts are transposed to Flax ones: linear weight [out, in] -> kernel [in, out], the patch conv
[out, in, kh, kw] -> [kh, kw, in, out]; the vision head's `nn.MultiheadAttention.in_proj_weight`
[3D, D] is split into q/k/v projections (and joined again by `save_hf`). bf16/f16/f64 tensors are
cast to float32. Only the safetensors numpy API is used: no torch, and nothing is unpickled.
Any problem is one `SiglipFormatError` line naming the file and the tensor or key at fault.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from flax import nnx
from robolearn.reward_models.siglip.config import SiglipConfig, SiglipFormatError
from robolearn.reward_models.siglip.model import SiglipModel
from robolearn.reward_models.siglip.tokenizer import SPIECE_FILE, TOKENIZER_JSON

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
# Every file load_hf and load_tokenizer read (the tokenizer ones when present).
HF_FILES = (
    CONFIG_FILE,
    WEIGHTS_FILE,
    SPIECE_FILE,
    TOKENIZER_JSON,
    "tokenizer_config.json",
    "special_tokens_map.json",
)
# Non-persistent buffers some older exports still contain; they carry no weights.
_IGNORED_SUFFIXES = ("position_ids",)
_QKV = ("q_proj", "k_proj", "v_proj")


def read_config(directory: str | Path) -> SiglipConfig:
    """`directory/config.json` (HF `SiglipConfig`) -> SiglipConfig."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise SiglipFormatError(
            f"{path}: not found (a SigLIP checkpoint directory has {CONFIG_FILE})"
        )
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SiglipFormatError(f"{path}: not valid JSON ({e})") from None
    return SiglipConfig.from_hf_dict(raw, source=str(path))


def load_hf(directory: str | Path, *, strict: bool = True) -> SiglipModel:
    """Build a SiglipModel from an HF SigLIP directory. Every parameter must be in the file with
    HF's shape; with `strict`, tensors the model does not use are an error too."""
    directory = Path(directory)
    cfg = read_config(directory)
    path = directory / WEIGHTS_FILE
    tensors = _read_safetensors(path)
    model = nnx.eval_shape(lambda: SiglipModel(cfg, nnx.Rngs(0)))
    slots = _hf_slots(model)

    expected = {slot[1] for slot in slots}
    missing = sorted(expected - tensors.keys())
    if missing:
        raise SiglipFormatError(
            f"{path}: missing {len(missing)} tensor(s) {_brief(missing)} for the model in "
            f"{CONFIG_FILE}"
        )
    extra = sorted(k for k in tensors.keys() - expected if not k.endswith(_IGNORED_SUFFIXES))
    if strict and extra:
        raise SiglipFormatError(
            f"{path}: {len(extra)} unexpected tensor(s) {_brief(extra)} (not part of SiglipModel "
            f"with this {CONFIG_FILE}; pass strict=False to ignore them)"
        )

    for variable, name, kind, part in slots:
        value = tensors[name]
        want = _hf_shape(variable.get_value().shape, kind, part)
        if value.shape != want:
            raise SiglipFormatError(
                f"{path}: tensor {name!r} has shape {value.shape}, expected {want} from "
                f"{CONFIG_FILE}"
            )
        if value.dtype.kind != "f" and value.dtype.name != "bfloat16":
            raise SiglipFormatError(f"{path}: tensor {name!r} has dtype {value.dtype}, not float")
        variable.set_value(jnp.asarray(_to_flax(value.astype(np.float32), kind, part)))
    return model


def save_hf(model: SiglipModel, directory: str | Path) -> Path:
    """Write `config.json` and `model.safetensors` (float32, HF names and layouts) into
    `directory` (created if needed) so that HF's `SiglipModel.from_pretrained` or `load_hf` reads
    them. Returns the directory."""
    from safetensors.numpy import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = hf_state_dict(model)
    save_file(tensors, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})
    (directory / CONFIG_FILE).write_text(json.dumps(model.config.to_hf_dict(), indent=2) + "\n")
    return directory


def copy_hf(source: str | Path, directory: str | Path) -> Path:
    """Copy the files of HF SigLIP directory `source` that `load_hf` and `load_tokenizer` read
    (HF_FILES; README, preprocessor config, torch weights ... are left) into `directory`
    (created if needed), byte for byte. Returns the directory."""
    source, directory = Path(source), Path(directory)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (source / name).is_file():
            raise SiglipFormatError(
                f"{source / name}: not found (a SigLIP checkpoint directory has {name})"
            )
    directory.mkdir(parents=True, exist_ok=True)
    for name in HF_FILES:
        if (source / name).is_file():
            shutil.copyfile(source / name, directory / name)
    return directory


def hf_state_dict(model: SiglipModel) -> dict[str, np.ndarray]:
    """The model's parameters as HF's float32 state dict {name: array in torch layout}."""
    tensors: dict[str, np.ndarray] = {}
    pieces: dict[str, list] = {}
    for variable, name, kind, part in _hf_slots(model):
        value = _to_hf(np.asarray(variable.get_value(), np.float32), kind)
        if part is None:
            tensors[name] = value
        else:
            pieces.setdefault(name, [None] * 3)[part] = value
    for name, parts in pieces.items():
        tensors[name] = np.ascontiguousarray(np.concatenate(parts, axis=0))
    return tensors


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    if not path.is_file():
        raise SiglipFormatError(
            f"{path}: not found (a SigLIP checkpoint directory has {WEIGHTS_FILE})"
        )
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, TypeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise SiglipFormatError(f"{path}: not a readable safetensors file ({first})") from None


def _hf_slots(model: SiglipModel) -> list[tuple[nnx.Variable, str, str, int | None]]:
    """(parameter, HF tensor name, layout kind, q/k/v part of an in_proj tensor or None) for
    every parameter of the model. kind: 'copy', 'linear' ([in, out] vs [out, in]) or 'conv'."""
    slots = []
    for path, node in nnx.iter_graph(model):
        if not isinstance(node, nnx.Param):
            continue
        *module, leaf = (str(p) for p in path)
        prefix = ".".join(module)
        part = None
        if len(module) >= 3 and module[-3:-1] == ["head", "attention"] and module[-1] in _QKV:
            part = _QKV.index(module[-1])
            name = ".".join(module[:-1]) + (
                ".in_proj_weight" if leaf == "kernel" else ".in_proj_bias"
            )
        elif leaf in ("kernel", "scale", "embedding"):
            name = prefix + ".weight"
        elif leaf == "bias" and module:
            name = prefix + ".bias"
        else:
            name = ".".join([*module, leaf])
        if leaf != "kernel":
            kind = "copy"
        elif module[-1] == "patch_embedding":
            kind = "conv"
        else:
            kind = "linear"
        slots.append((node, name, kind, part))
    return slots


def _hf_shape(flax_shape: tuple[int, ...], kind: str, part: int | None) -> tuple[int, ...]:
    if kind == "conv":
        kh, kw, cin, cout = flax_shape
        shape = (cout, cin, kh, kw)
    elif kind == "linear":
        shape = tuple(reversed(flax_shape))
    else:
        shape = tuple(flax_shape)
    if part is not None:
        shape = (3 * shape[0], *shape[1:])
    return shape


def _to_flax(value: np.ndarray, kind: str, part: int | None) -> np.ndarray:
    if part is not None:
        n = value.shape[0] // 3
        value = value[part * n : (part + 1) * n]
    if kind == "conv":
        return value.transpose(2, 3, 1, 0)
    if kind == "linear":
        return value.T
    return value


def _to_hf(value: np.ndarray, kind: str) -> np.ndarray:
    if kind == "conv":
        value = value.transpose(3, 2, 0, 1)
    elif kind == "linear":
        value = value.T
    return np.ascontiguousarray(value)


def _brief(names: list[str], limit: int = 3) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
