"""SigLIP tokenizers from a Hugging Face checkpoint directory, with no `transformers` import.

    tokenizer = load_tokenizer("path/to/siglip-base-patch16-224")
    ids = tokenizer.tokenize(["open the drawer"])    # int32 [B, L], L = max_length (64)

- SigLIP v1 ships a SentencePiece `spiece.model` (+ `tokenizer_config.json`,
  `special_tokens_map.json`): `SentencePieceTokenizer` reproduces HF's `SiglipTokenizer` called
  with padding="max_length", truncation=True: lowercase (do_lower_case), drop ASCII punctuation,
  collapse whitespace, encode with SentencePiece's dummy prefix turned off and a leading "▁"
  (HF's `<unk>`-prefix trick, done the same way), truncate to max_length - 1, append eos, pad
  with the pad token (`</s>` by default, so pad id == eos id).
- SigLIP 2 ships a `tokenizer.json` (Gemma): `JsonTokenizer` runs it with the `tokenizers`
  library as HF's fast tokenizer would: its own normalizer and post-processor, truncation and
  right padding to max_length with the configured pad token. HF does not lowercase here; SigLIP 2
  was trained on lowercased text, so pass lowercase=True for it.

Departures from HF: special-token strings written inside the text (e.g. "</s>") are not split
out as special tokens (instructions do not contain them); `spiece.model` wins when both files
are present (SigLIP v1 has no fast tokenizer, so HF reads the same file).
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from robolearn.reward_models.siglip.config import SiglipFormatError

SPIECE_FILE = "spiece.model"
TOKENIZER_JSON = "tokenizer.json"
DEFAULT_MAX_LENGTH = 64
_UNDERLINE = "\u2581"
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def canonicalize_text(text: str) -> str:
    """big_vision's / HF SiglipTokenizer's canonicalization: drop ASCII punctuation, collapse
    runs of whitespace to one space, strip the ends."""
    return re.sub(r"\s+", " ", text.translate(_PUNCTUATION)).strip()


class _Tokenizer:
    """Common front: `tokenize(texts) -> int32 [B, max_length]` for a str or a list of str."""

    max_length: int
    pad_id: int

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def tokenize(self, texts: str | Sequence[str]) -> np.ndarray:
        """Token ids int32 [B, max_length], right-padded with pad_id (B = 1 for a str)."""
        if isinstance(texts, str):
            texts = [texts]
        out = np.full((len(texts), self.max_length), self.pad_id, np.int32)
        for i, text in enumerate(texts):
            ids = self.encode(text)[: self.max_length]
            out[i, : len(ids)] = ids
        return out

    def __call__(self, texts: str | Sequence[str]) -> np.ndarray:
        return self.tokenize(texts)


class SentencePieceTokenizer(_Tokenizer):
    """HF `SiglipTokenizer` behaviour over a SentencePiece model file (see module docstring)."""

    def __init__(
        self,
        model_file: str | Path,
        *,
        eos_token: str = "</s>",
        unk_token: str = "<unk>",
        pad_token: str = "</s>",
        lowercase: bool = True,
        max_length: int = DEFAULT_MAX_LENGTH,
    ):
        import sentencepiece as spm
        from google.protobuf.message import DecodeError
        from sentencepiece import sentencepiece_model_pb2

        model_file = Path(model_file)
        try:
            proto = sentencepiece_model_pb2.ModelProto.FromString(model_file.read_bytes())
        except DecodeError:
            raise SiglipFormatError(f"{model_file}: not a SentencePiece model") from None
        # As HF: no dummy prefix; tokenize() supplies the leading "▁" itself.
        proto.normalizer_spec.add_dummy_prefix = False
        self._sp = spm.SentencePieceProcessor()
        self._sp.LoadFromSerializedProto(proto.SerializeToString())
        self.unk_token, self.lowercase, self.max_length = unk_token, lowercase, max_length
        self._unk_len = len(self._sp.encode(unk_token))
        self.eos_id = self._piece_id(eos_token, model_file)
        self.pad_id = self._piece_id(pad_token, model_file)
        if max_length < 1:
            raise SiglipFormatError(f"max_length must be >= 1, got {max_length}")

    def _piece_id(self, token: str, model_file: Path) -> int:
        piece_id = self._sp.piece_to_id(token)
        if piece_id == self._sp.unk_id() and token != self.unk_token:
            raise SiglipFormatError(
                f"{model_file}: special token {token!r} is not in the vocabulary"
            )
        return piece_id

    def encode(self, text: str) -> list[int]:
        """One text -> ids ending in eos, at most max_length long (no padding)."""
        text = _UNDERLINE + text.replace(_UNDERLINE, " ")
        if self.lowercase:
            text = text.lower()
        text = canonicalize_text(text)
        ids = self._sp.encode(self.unk_token + text)
        if len(ids) >= self._unk_len:
            ids = ids[self._unk_len :]
        if ids and ids[-1] == self.eos_id:
            ids = ids[:-1]
        return [*ids[: self.max_length - 1], self.eos_id]


class JsonTokenizer(_Tokenizer):
    """A `tokenizers` `tokenizer.json` (SigLIP 2's Gemma tokenizer), truncated and right-padded to
    max_length with `pad_token`. Optional lowercasing before encoding."""

    def __init__(
        self,
        tokenizer_file: str | Path,
        *,
        pad_token: str | None = None,
        lowercase: bool = False,
        max_length: int = DEFAULT_MAX_LENGTH,
    ):
        from tokenizers import Tokenizer

        tokenizer_file = Path(tokenizer_file)
        try:
            self._tok = Tokenizer.from_file(str(tokenizer_file))
        except Exception as e:  # the Rust side raises a bare Exception for any parse error
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise SiglipFormatError(
                f"{tokenizer_file}: not a readable tokenizer.json ({first})"
            ) from None
        if pad_token is None and self._tok.padding is not None:
            pad_token = self._tok.padding["pad_token"]
        if pad_token is None:
            raise SiglipFormatError(
                f"{tokenizer_file}: no pad token (set pad_token in tokenizer_config.json)"
            )
        pad_id = self._tok.token_to_id(pad_token)
        if pad_id is None:
            raise SiglipFormatError(
                f"{tokenizer_file}: pad token {pad_token!r} is not in the vocabulary"
            )
        if max_length < 1:
            raise SiglipFormatError(f"max_length must be >= 1, got {max_length}")
        self.pad_id, self.lowercase, self.max_length = pad_id, lowercase, max_length
        self._tok.no_padding()
        self._tok.enable_truncation(max_length)

    def encode(self, text: str) -> list[int]:
        """One text -> ids with the tokenizer's special tokens, at most max_length long."""
        return self._tok.encode(text.lower() if self.lowercase else text).ids


def load_tokenizer(
    directory: str | Path,
    *,
    max_length: int | None = None,
    lowercase: bool | None = None,
) -> SentencePieceTokenizer | JsonTokenizer:
    """The tokenizer of an HF SigLIP directory: `spiece.model` (SigLIP) or `tokenizer.json`
    (SigLIP 2), with special tokens, `do_lower_case` and `model_max_length` from
    `tokenizer_config.json` / `special_tokens_map.json` when present. max_length defaults to
    model_max_length, else 64; lowercase defaults to do_lower_case (HF: True for SigLIP,
    False for a tokenizer.json)."""
    directory = Path(directory)
    settings = _read_json(directory / "tokenizer_config.json")
    settings.update(_read_json(directory / "special_tokens_map.json"))
    if max_length is None:
        configured = settings.get("model_max_length")
        ok = isinstance(configured, int) and 0 < configured <= 100_000
        max_length = configured if ok else DEFAULT_MAX_LENGTH
    if (directory / SPIECE_FILE).is_file():
        if lowercase is None:
            lowercase = bool(settings.get("do_lower_case", True))
        return SentencePieceTokenizer(
            directory / SPIECE_FILE,
            eos_token=_token(settings, "eos_token", "</s>"),
            unk_token=_token(settings, "unk_token", "<unk>"),
            pad_token=_token(settings, "pad_token", "</s>"),
            lowercase=lowercase,
            max_length=max_length,
        )
    if (directory / TOKENIZER_JSON).is_file():
        if lowercase is None:
            lowercase = bool(settings.get("do_lower_case", False))
        return JsonTokenizer(
            directory / TOKENIZER_JSON,
            pad_token=_token(settings, "pad_token", None),
            lowercase=lowercase,
            max_length=max_length,
        )
    raise SiglipFormatError(
        f"{directory}: no tokenizer found (expected {SPIECE_FILE} for SigLIP or "
        f"{TOKENIZER_JSON} for SigLIP 2)"
    )


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SiglipFormatError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise SiglipFormatError(f"{path}: expected a JSON object")
    return data


def _token(settings: dict[str, Any], key: str, default: str | None) -> str | None:
    """A special token as HF writes it: a string or {"content": str, ...}."""
    value = settings.get(key, default)
    if isinstance(value, dict):
        value = value.get("content")
    if value is not None and not isinstance(value, str):
        raise SiglipFormatError(f"tokenizer config: {key} is {value!r}, expected a string")
    return value
