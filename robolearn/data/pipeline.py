"""The input pipeline every trainer reads through: Grain over episode stores, memory-bounded.

    data = EpisodeData(["data/drawer"], tasks="drawer", pipeline=PipelineConfig(memory_mb=512))
    loader = WindowLoader(data, batch_size=32, seed=0, context=4)
    batch = next(loader)                  # dict of numpy arrays, shapes below
    state = loader.state()                # JSON-able; saved with every checkpoint
    loader.restore(state)                 # continue the exact sample sequence after a resume

Batches (B = batch size, T = window length in actions, H/W image side, P proprio, A action):

    TransitionLoader              WindowLoader (T = context, default 4: T+1 frames, T actions)
    image    uint8   [B, H, W, 3]      image    uint8   [B, T+1, H, W, 3]
    proprio  float32 [B, P]            proprio  float32 [B, T+1, P]
    action   float32 [B, A]            action   float32 [B, T, A]   action[:, k] leads from
    reward   float32 [B]               reward   float32 [B, T]      frame k to frame k+1
    success  bool    [B]  (next obs)   success  bool    [B, T+1]
    episode  int32   [B]               episode  int32   [B]         index into data.paths
    step     int32   [B]               step     int32   [B]         first frame's step
                                                                    (< 0 with pad_start=True)
    next_image, next_proprio  (only with with_next=True)

Where the frames come from (`EpisodeData`, chosen automatically with mode "auto"): when every
selected episode decoded fits the memory budget (`memory_mb`), they are decoded once into RAM
(from the pack if the store has an up-to-date one, else from the store's files); otherwise the
images are read window by window (one positioned read per sample) from the store's packed form
(robolearn.data.packed), which is built or brought up to date first, and the pipeline holds only
the batches in flight, whatever the data size, plus the small arrays (proprio, action, reward,
success: ~1 % of the bytes at 64x64) when they fit a quarter of the budget (else those are read
per sample too). The whole-data-in-RAM path wins for small stores (no pack to build, no
reads); streaming is the only path for data larger than memory.

Sampling, on Grain (google/grain: deterministic, sharded, checkpointable; docs/training.md says
why it was chosen): the samples (every transition, or every window) of the selected episodes in
store order form a MapDataset that is shuffled with the seed and repeated (each epoch a different
permutation of all samples, epochs back to back, so a batch may span two), cut into global
batches of B*N samples (N processes, B samples each), of which process i takes the i-th block of B
(disjoint shards; global batch k = samples [k*B*N, (k+1)*B*N) of the sequence, in process order, so
N processes with batch B train on exactly the batches, in the same row order, of one process with
batch B*N), then batches are read by `threads` reader threads (and `workers` extra processes, if
set) ahead of training. The same data, seed and global batch give the same global batches in any
run, on any number of processes.

Labelled frames (a success classifier's training data) have their own loader, `FrameLoader`:
balanced batches of frames picked by global frame row (`EpisodeData.frames`, which also reads
any frames by row for scoring), positives and negatives each shuffled and repeated, mixed 1:1.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import hashlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from robolearn.core.errors import ConfigError
from robolearn.data.episode import EpisodeMeta
from robolearn.data.packed import (
    MANIFEST,
    PackError,
    ShardReader,
    default_pack_dir,
    missing_episodes,
    pack_store,
    read_pack,
    read_shapes,
)
from robolearn.data.store import EpisodeError, list_episodes, open_store, read_episode, read_meta

MODES = ("auto", "memory", "stream")
_KEYS = ("image", "proprio", "success", "action", "reward")
_FRAME_KEYS = ("image", "proprio", "success")  # T+1 rows per episode; the others T
# Streaming keeps the small per-step arrays (everything but images) in RAM when they take at most
# this share of the memory budget, so that a sample costs one read (its images), not five.
_SMALL_SHARE = 0.25


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """How a trainer reads its episodes (the `data.*` settings of every train command)."""

    memory_mb: float = 4096.0
    """memory budget for training data, MB: the whole decoded data is kept in RAM when it fits,
    otherwise it streams from the store's packed form and only batches in flight are held"""
    mode: str = "auto"
    """auto (RAM if it fits, else stream), memory (always RAM), stream (always the packed form)"""
    threads: int = 2
    """reader threads that prepare batches ahead of training (0: read in the training thread)"""
    workers: int = 0
    """extra reader processes (Grain multiprocessing) for streaming; 0 uses threads only"""
    pack_dir: str = ""
    """where packs are built when not inside the store (default: STORE/packed); one folder per
    store is made under it"""

    def __post_init__(self):
        if self.mode not in MODES:
            raise ConfigError(f"data mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if not self.memory_mb > 0:
            raise ConfigError(f"data memory budget must be positive MB, got {self.memory_mb}")
        if self.threads < 0 or self.workers < 0:
            raise ConfigError("data threads and workers must be >= 0")


class EpisodeData:
    """The episodes of one or more stores that match the task and source filters, in RAM or
    streamed from packs (see the module doc). Per episode e: `paths[e]`, `meta[e]`,
    `num_steps[e]`; frame rows of episode e are its T+1 observations, step rows its T actions.
    """

    def __init__(
        self,
        roots: str | Path | Sequence[str | Path],
        tasks: str | Sequence[str] | None = None,
        sources: str | Sequence[str] | None = None,
        pipeline: PipelineConfig = PipelineConfig(),
        *,
        progress: bool = True,
    ):
        self.roots = [Path(r) for r in ([roots] if isinstance(roots, (str, Path)) else roots)]
        if not self.roots:
            raise EpisodeError("no dataset directory given")
        self.where = ", ".join(map(str, self.roots))
        self.pipeline = pipeline
        self.tasks = as_set(tasks)
        self.sources = as_set(sources)
        for root in self.roots:
            open_store(root)
        selected, packs = self._select()
        if not selected:
            raise EpisodeError(empty_message(self.roots, self.tasks, self.sources))
        self.paths = [path for path, _, _ in selected]
        self.meta: list[EpisodeMeta] = [meta for _, meta, _ in selected]
        self.num_steps = np.array([steps for _, _, steps in selected], np.int64)
        self.step_start = np.concatenate([[0], np.cumsum(self.num_steps)[:-1]]).astype(np.int64)
        self.frame_start = self.step_start + np.arange(len(self.num_steps))
        decoded = self.decoded_bytes()
        mode = pipeline.mode
        if mode == "auto":
            mode = "memory" if decoded <= pipeline.memory_mb * 1e6 else "stream"
        self.in_memory = mode == "memory"
        self.arrays: dict[str, np.ndarray] = {}
        self._readers: list[ShardReader] | None = None
        if self.in_memory:
            self._load(selected, packs)
        else:
            self._stream(selected, packs, progress)

    # -- what the data is -------------------------------------------------------------------

    @property
    def task_names(self) -> list[str]:
        """Sorted task names of the selected episodes."""
        return sorted({m.task for m in self.meta})

    def decoded_bytes(self) -> int:
        """Bytes of every selected episode's arrays decoded (what RAM mode holds)."""
        frames = int(self.num_steps.sum() + len(self.num_steps))
        steps = int(self.num_steps.sum())
        per_frame = int(np.prod(self.image_shape)) + 4 * self.proprio_dim + 1
        return frames * per_frame + steps * (4 * self.action_dim + 4)

    def proprio_moments(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean, std, std of the within-episode one-step change) of proprio, float64 [P] each,
        over every frame; streamed episode by episode (bounded memory) unless in RAM."""
        if "proprio" in self.arrays:
            proprio = self.arrays["proprio"].astype(np.float64)
            deltas = np.concatenate(
                [
                    np.diff(proprio[s : s + n + 1], axis=0)
                    for s, n in zip(self.frame_start, self.num_steps, strict=True)
                ]
            )
            return proprio.mean(0), proprio.std(0), deltas.std(0)
        values, deltas = _Moments(self.proprio_dim), _Moments(self.proprio_dim)
        for e in range(len(self.num_steps)):
            rows = self.read_frames("proprio", e, 0, int(self.num_steps[e]) + 1)
            rows = rows.astype(np.float64)
            values.add(rows)
            deltas.add(np.diff(rows, axis=0))
        return values.mean, values.std, deltas.std

    # -- reading rows ------------------------------------------------------------------------

    def read_frames(self, key: str, episode: int, first: int, count: int) -> np.ndarray:
        """Rows [first, first + count) of one episode's frame array (image, proprio, success)."""
        return self._rows(key, episode, first, count, frames=True)

    def read_steps(self, key: str, episode: int, first: int, count: int) -> np.ndarray:
        """Rows [first, first + count) of one episode's step array (action, reward)."""
        return self._rows(key, episode, first, count, frames=False)

    def episode(self, e: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Episode e whole: (image [N+1, H, W, 3], action [N, A], proprio [N+1, P]), the order
        robolearn.imagination takes recorded episodes in."""
        n = int(self.num_steps[e])
        return (
            self.read_frames("image", e, 0, n + 1),
            self.read_steps("action", e, 0, n),
            self.read_frames("proprio", e, 0, n + 1),
        )

    @property
    def num_frames(self) -> int:
        """Frame rows of every selected episode together (T+1 per episode)."""
        return int(self.num_steps.sum()) + len(self.num_steps)

    def frames(self, key: str, index: np.ndarray) -> np.ndarray:
        """[N, ...] rows of a frame array (image, proprio, success) by global frame row, index
        int [N] in [0, num_frames) (episode e's frame t is row frame_start[e] + t), in the order
        given: fancy indexing in RAM, one positioned read per row when streamed."""
        if key not in _FRAME_KEYS:
            raise ValueError(f"frames() reads {', '.join(_FRAME_KEYS)}, not {key!r}")
        index = np.asarray(index, np.int64).reshape(-1)
        if len(index) and not (index.min() >= 0 and index.max() < self.num_frames):
            raise IndexError(
                f"frame rows {index.min()}..{index.max()} outside [0, {self.num_frames})"
            )
        if key in self.arrays:
            return self.arrays[key][index]
        episode = np.searchsorted(self.frame_start, index, side="right") - 1
        return self.gather(key, episode, (index - self.frame_start[episode])[:, None])[:, 0]

    def gather(self, key: str, episode: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """[B, K, ...] rows of `key` of the episodes `episode` [B]; `rows` [B, K] are row indices
        within each episode, non-decreasing along K and each row's span at most K long."""
        frames = key in _FRAME_KEYS
        start = (self.frame_start if frames else self.step_start)[episode]
        if key in self.arrays:  # every key in RAM mode; the small ones when streaming
            return self.arrays[key][start[:, None] + rows]
        shape = self._row_shape(key)
        out = np.empty((len(episode), rows.shape[1], *shape), self._dtype(key))
        shards = self._packed_shard[episode].tolist()
        first = (
            (self._packed_frame if frames else self._packed_step)[episode] + rows[:, 0]
        ).tolist()
        lo, hi = rows[:, 0], rows[:, -1] + 1
        contiguous = (hi - lo == rows.shape[1]).tolist()
        for b, (shard, row, whole) in enumerate(zip(shards, first, contiguous, strict=True)):
            reader = self._reader(shard)
            if whole:  # one positioned read per sample
                reader.read_into(key, row, out[b])
            else:  # a padded window repeats its first row
                tmp = np.empty((int(hi[b] - lo[b]), *shape), out.dtype)
                reader.read_into(key, row, tmp)
                out[b] = tmp[rows[b] - lo[b]]
        return out

    def _rows(self, key, episode, first, count, frames):
        start = (self.frame_start if frames else self.step_start)[episode] + first
        if key in self.arrays:
            return self.arrays[key][start : start + count]
        shard = int(self._packed_shard[episode])
        base = int((self._packed_frame if frames else self._packed_step)[episode])
        out = np.empty((count, *self._row_shape(key)), self._dtype(key))
        self._reader(shard).read_into(key, base + first, out)
        return out

    def _row_shape(self, key: str) -> tuple[int, ...]:
        return {
            "image": tuple(self.image_shape),
            "proprio": (self.proprio_dim,),
            "success": (),
            "action": (self.action_dim,),
            "reward": (),
        }[key]

    @staticmethod
    def _dtype(key: str):
        return {"image": np.uint8, "success": np.bool_}.get(key, np.float32)

    def _reader(self, shard: int) -> ShardReader:
        if self._readers is None or self._reader_pid != os.getpid():
            self._readers = [ShardReader(s) for s in self._shards]
            self._reader_pid = os.getpid()
        return self._readers[shard]

    def __getstate__(self):  # worker processes reopen the shard files
        state = dict(self.__dict__)
        state["_readers"] = None
        return state

    # -- building ----------------------------------------------------------------------------

    def _select(self):
        """[(path, meta, steps)] of the matching episodes in store order (their shapes checked
        alike), and {store: pack dir} for the stores whose pack is present and up to date."""
        selected, shapes, packs = [], [], {}
        self._read_packs: dict[Path, tuple] = {}  # what _stream reuses when nothing is packed
        for root in self.roots:
            pack_dir = self._pack_dir(root)
            packed, shards = {}, []
            if (pack_dir / MANIFEST).exists():
                try:
                    episodes, shards = read_pack(pack_dir)
                    self._read_packs[pack_dir] = (episodes, shards)
                    missing_episodes(root, episodes, pack_dir)  # raises if the pack is stale
                    packed = {ep.file: ep for ep in episodes}
                    packs[root] = pack_dir
                except PackError as exc:
                    print(f"warning: {exc}; reading the store instead", file=sys.stderr)
            for path in list_episodes(root):
                ep = packed.get(path.name)
                meta = ep.meta if ep is not None else read_meta(path)
                if self.tasks and meta.task not in self.tasks:
                    continue
                if self.sources and meta.source not in self.sources:
                    continue
                if ep is not None:
                    s = shards[ep.shard]
                    steps, shape = ep.steps, (tuple(s["image"]), s["proprio"], s["action"])
                else:
                    image, proprio, action = read_shapes(path)
                    steps, shape = action[0], (tuple(image[1:]), proprio[1], action[1])
                selected.append((path, meta, int(steps)))
                shapes.append(shape)
        if selected:
            first = shapes[0]
            for (path, _, _), shape in zip(selected, shapes, strict=True):
                if shape != first:
                    raise EpisodeError(
                        f"{path}: image {shape[0]}, proprio {shape[1]}, action {shape[2]} differ "
                        f"from the other episodes' {first[0]}, {first[1]}, {first[2]}; load "
                        "stores of one size together"
                    )
            self.image_shape, self.proprio_dim, self.action_dim = first
        return selected, packs

    def _pack_dir(self, root: Path) -> Path:
        if not self.pipeline.pack_dir:
            return default_pack_dir(root)
        digest = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:8]
        return Path(self.pipeline.pack_dir) / f"{root.resolve().name}-{digest}"

    def _load(self, selected, packs) -> None:
        """Decode every selected episode into one array per key (RAM mode): from the pack where
        the store has an up-to-date one (a plain read), else from the episode files."""
        packed = {}
        for root, pack_dir in packs.items():
            episodes, shards = read_pack(pack_dir)
            readers = [ShardReader(s) for s in shards]
            self._opened = getattr(self, "_opened", []) + readers
            for ep in episodes:
                packed[root / "episodes" / ep.file] = (readers[ep.shard], ep)
        parts: dict[str, list[np.ndarray]] = {key: [] for key in _KEYS}
        try:
            for path, _, steps in selected:
                if path in packed:
                    reader, ep = packed[path]
                    for key in _KEYS:
                        frames = key in _FRAME_KEYS
                        rows = np.empty((steps + frames, *self._row_shape(key)), self._dtype(key))
                        reader.read_into(key, ep.frame if frames else ep.step, rows)
                        parts[key].append(rows)
                else:
                    episode = read_episode(path)
                    for key in _KEYS:
                        parts[key].append(getattr(episode, key))
        finally:
            for reader in getattr(self, "_opened", []):
                reader.close()
            self._opened = []
        self.arrays = {key: np.concatenate(value) for key, value in parts.items()}

    def _stream(self, selected, packs, progress: bool) -> None:
        """Bring every store's pack up to date and map each episode to its shard rows."""
        from robolearn.core.progress import Progress

        self._shards: list[dict] = []
        where: dict[Path, tuple[int, int, int]] = {}
        for root in self.roots:
            pack_dir = self._pack_dir(root)
            read = self._read_packs.get(pack_dir)
            if read is None and (pack_dir / MANIFEST).exists():
                read = read_pack(pack_dir)
            todo = len(missing_episodes(root, read[0] if read else [], pack_dir))
            if todo:
                print(
                    f"packing {todo} episodes of {root} into {pack_dir} for streaming (once; "
                    "`robolearn data pack` does it ahead of time)",
                    file=sys.stderr,
                )
                bar = Progress(todo, "episode", enabled=progress)
                try:
                    pack_store(root, pack_dir, progress=lambda done, _, bar=bar: bar.update(done))
                finally:
                    bar.close()
                read = None
            episodes, shards = read if read is not None else read_pack(pack_dir)
            offset = len(self._shards)
            self._shards += shards
            for ep in episodes:
                where[root / "episodes" / ep.file] = (offset + ep.shard, ep.frame, ep.step)
        rows = np.array([where[path] for path, _, _ in selected], np.int64)
        self._packed_shard, self._packed_frame, self._packed_step = rows.T.copy()
        self._load_small()

    def _load_small(self) -> None:
        """Read the small arrays (all but images: ~1 % of the bytes at 64x64) of every selected
        episode into RAM, laid out as in RAM mode, when they fit `_SMALL_SHARE` of the budget."""
        small = [key for key in _KEYS if key != "image"]
        steps = int(self.num_steps.sum())
        rows = {key: steps + len(self.num_steps) * (key in _FRAME_KEYS) for key in small}
        size = sum(rows[key] * self._row_bytes(key) for key in small)
        if size > _SMALL_SHARE * self.pipeline.memory_mb * 1e6:
            return
        arrays = {
            key: np.empty((rows[key], *self._row_shape(key)), self._dtype(key)) for key in small
        }
        for e, steps in enumerate(self.num_steps.tolist()):
            reader = self._reader(int(self._packed_shard[e]))
            for key in small:
                frames = key in _FRAME_KEYS
                start = int((self.frame_start if frames else self.step_start)[e])
                base = int((self._packed_frame if frames else self._packed_step)[e])
                reader.read_into(key, base, arrays[key][start : start + steps + frames])
        self.arrays = arrays

    def _row_bytes(self, key: str) -> int:
        return (
            int(np.prod(self._row_shape(key), dtype=np.int64)) * np.dtype(self._dtype(key)).itemsize
        )


class _Moments:
    """Mean and std over chunks of rows, combined with Chan et al.'s parallel update (stable)."""

    def __init__(self, dim: int):
        self.n, self.mean, self.m2 = 0, np.zeros(dim), np.zeros(dim)

    def add(self, rows: np.ndarray) -> None:
        if not len(rows):
            return
        n, mean = len(rows), rows.mean(0)
        m2 = ((rows - mean) ** 2).sum(0)
        total = self.n + n
        delta = mean - self.mean
        self.mean = self.mean + delta * n / total
        self.m2 = self.m2 + m2 + delta**2 * self.n * n / total
        self.n = total

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / max(self.n, 1))


class _Loader(abc.ABC):
    """Shuffling, sharding, batching and reading on Grain, and the stream's state; subclasses
    define the samples, their order (`_sequence`) and how a batch of them is read."""

    def __init__(
        self,
        data: EpisodeData | str | Path | Sequence[str | Path],
        batch_size: int,
        seed: int = 0,
        *,
        tasks: str | Sequence[str] | None = None,
        sources: str | Sequence[str] | None = None,
        process_index: int = 0,
        process_count: int = 1,
        pipeline: PipelineConfig | None = None,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= process_index < process_count:
            raise ValueError(f"process_index {process_index} not in [0, {process_count})")
        if not 0 <= seed < 2**32:
            raise ConfigError(f"seed must be in [0, 2**32), got {seed}")
        if not isinstance(data, EpisodeData):
            data = EpisodeData(data, tasks, sources, pipeline or PipelineConfig())
        self.data = data
        self.pipeline = pipeline or data.pipeline
        self.batch_size = batch_size
        self.seed = seed
        self.process_index = process_index
        self.process_count = process_count
        self._samples = self._make_samples()
        self._check_samples()
        self._base = 0  # batches before the current iterator's first
        self._taken = 0  # batches taken from the current iterator
        self._iterator = None

    # -- the sample sequence ------------------------------------------------------------------

    @property
    def episodes(self) -> list[Path]:
        """Paths of the selected episodes; batch["episode"] indexes this list."""
        return self.data.paths

    @property
    def num_samples(self) -> int:
        """Samples in one epoch (every process together)."""
        return len(self._samples[0])

    @property
    def position(self) -> int:
        """Batches this process has taken since the first (across resumes)."""
        return self._base + self._taken

    def dataset(self, start: int = 0):
        """This process's batches from batch `start` on, as a Grain IterDataset (prefetched by
        the configured threads and worker processes)."""
        import grain

        batches = self._batches()[start:].map(self._read)
        options = grain.ReadOptions(
            num_threads=self.pipeline.threads, prefetch_buffer_size=self._prefetch()
        )
        stream = batches.to_iter_dataset(options)
        if self.pipeline.workers and not self.data.in_memory:
            from absl import flags

            if not flags.FLAGS.is_parsed():  # Grain's workers read absl flags; use defaults
                flags.FLAGS.mark_as_parsed()
            stream = stream.mp_prefetch(
                grain.MultiprocessingOptions(num_workers=self.pipeline.workers)
            )
        return stream

    def sample_ids(self, position: int, batches: int = 1) -> np.ndarray:
        """The global sample indices of this process's batches [position, position + batches)
        (what `episode`/`step` of those batches index), int64 [batches, B]; no reading."""
        mine = self._batches()
        rows = [np.asarray(mine[position + k], np.int64) for k in range(batches)]
        return np.stack(rows).reshape(batches, self.batch_size)

    def _batches(self):
        """This process's batches of sample ids in order, an endless Grain MapDataset: the
        sequence cut into global batches of batch_size x process_count, of which this process
        takes block process_index (see the module doc)."""
        size = self.batch_size
        batches = self._sequence().batch(size * self.process_count, drop_remainder=True)
        if self.process_count == 1:
            return batches
        first = self.process_index * size
        return batches.map(functools.partial(_block, start=first, stop=first + size))

    def _sequence(self):
        """Every process's sample ids in order, an endless Grain MapDataset: every sample of an
        epoch shuffled with the seed, epochs repeated."""
        import grain

        return grain.MapDataset.range(self.num_samples).shuffle(seed=self.seed).repeat()

    def _check_samples(self) -> None:
        if self.num_samples < self.batch_size * self.process_count:
            raise EpisodeError(
                f"{self.data.where}: {self.num_samples} samples are too few for batch size "
                f"{self.batch_size} on {self.process_count} process(es)"
            )

    def _prefetch(self) -> int:
        """Batches read ahead: as many as the budget allows beside the data (RAM mode) or
        alone (streaming), at least 1, at most 2 per reader thread."""
        batch = self.batch_bytes()
        budget = self.pipeline.memory_mb * 1e6
        budget -= sum(array.nbytes for array in self.data.arrays.values())
        copies = max(1, self.pipeline.workers) + 1  # each worker's buffer and the consumer's
        fits = int(budget // (batch * copies)) if budget > 0 else 0
        return int(np.clip(fits, 1, max(2, 2 * self.pipeline.threads)))

    def batch_bytes(self) -> int:
        """Bytes of one batch."""
        probe = self._read(np.zeros(min(self.batch_size, 1), np.int64))
        return self.batch_size * sum(v.nbytes for v in probe.values())

    # -- iterating -----------------------------------------------------------------------------

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        if self._iterator is None:
            self._iterator = iter(self.dataset(self._base))
            self._taken = 0
        batch = next(self._iterator)
        self._taken += 1
        return batch

    def skip(self, batches: int) -> None:
        """Continue from batch `position + batches` (resuming a run without a saved state)."""
        self.start_at(self.position + batches)

    def start_at(self, position: int) -> None:
        """Make the next batch this process's batch number `position` (O(1): no reading)."""
        self._close()
        self._base, self._taken = position, 0

    def state(self) -> dict:
        """Where the stream is, JSON-able: Grain's iterator state, the batch position, and what
        the sequence depends on (checked by `restore`)."""
        grain_state = None if self._iterator is None else self._iterator.get_state()
        return {
            "position": self.position,
            "base": self._base,
            "grain": grain_state,
            "fingerprint": self.fingerprint(),
        }

    def restore(self, state: dict) -> str:
        """Continue exactly where `state` was taken; returns how ("grain" or "position"), or
        raises ConfigError when the data or settings changed so that the sequence differs."""
        if state.get("fingerprint") != self.fingerprint():
            raise ConfigError(
                "the data or its settings changed since this checkpoint (saved "
                f"{state.get('fingerprint')}, now {self.fingerprint()}): its sample order "
                "cannot continue"
            )
        self.start_at(int(state["base"]))
        if state.get("grain") is None:
            self.start_at(int(state["position"]))
            return "position"
        self._iterator = iter(self.dataset(self._base))
        self._iterator.set_state(state["grain"])
        self._taken = int(state["position"]) - self._base
        return "grain"

    def fingerprint(self) -> dict:
        """What the sample sequence depends on."""
        return {
            "samples": self.num_samples,
            "episodes": len(self.data.paths),
            "seed": self.seed,
            "batch_size": self.batch_size,
            "process_index": self.process_index,
            "process_count": self.process_count,
            "kind": self._kind(),
        }

    def close(self) -> None:
        """Stop the reader threads and worker processes (and free their shared memory)."""
        self._close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self):  # Grain worker processes get the loader without its iterator
        state = dict(self.__dict__)
        state["_iterator"] = None
        return state

    def _close(self) -> None:
        iterator, self._iterator = self._iterator, None
        close = getattr(iterator, "close", None)
        if close is not None:
            close()

    # -- samples and rows ----------------------------------------------------------------------

    @abc.abstractmethod
    def _make_samples(self) -> tuple[np.ndarray, ...]:
        """What each sample is: arrays [N] (N samples in an epoch), kept as self._samples."""

    @abc.abstractmethod
    def _read(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        """The batch of samples `ids` int64 [B] (indices into the sample arrays)."""

    @abc.abstractmethod
    def _kind(self) -> str:
        """What kind of sample, for the fingerprint."""


class _EpisodeLoader(_Loader):
    """Samples that start at a step of an episode (transitions, windows)."""

    def _make_samples(self) -> tuple[np.ndarray, np.ndarray]:
        """(episode index, first step) of every sample, int32 [N] each, in store order."""
        counts = np.maximum(self.data.num_steps - self._span() + 1, 0)
        episode = np.repeat(np.arange(len(counts)), counts)
        first = np.concatenate([[0], np.cumsum(counts)[:-1]]) if len(counts) else counts
        step = np.arange(counts.sum()) - np.repeat(first, counts)
        return episode.astype(np.int32), step.astype(np.int32)

    def _read(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        episode, step = (samples[ids] for samples in self._samples)
        batch = self._gather(episode.astype(np.int64), step.astype(np.int64))
        batch["episode"] = episode
        batch["step"] = step
        return batch

    @abc.abstractmethod
    def _span(self) -> int:
        """Actions one sample covers (1 for a transition, T for a window)."""

    @abc.abstractmethod
    def _gather(self, episode: np.ndarray, step: np.ndarray) -> dict[str, np.ndarray]:
        """The batch arrays of samples (episode index [B], first step [B])."""


class TransitionLoader(_EpisodeLoader):
    """Batches of single transitions (obs_t, action_t, reward_t, success_{t+1}); see module doc.

    with_next=True adds next_image [B, H, W, 3] and next_proprio [B, P] (obs_{t+1}).
    """

    def __init__(self, data, batch_size: int, seed: int = 0, *, with_next: bool = False, **kw):
        self.with_next = with_next
        super().__init__(data, batch_size, seed, **kw)

    def _span(self) -> int:
        return 1

    def _kind(self) -> str:
        return f"transition(next={self.with_next})"

    def _gather(self, episode, step):
        frames = step[:, None] + np.arange(2 if self.with_next else 1)
        get = self.data.gather
        image, proprio = get("image", episode, frames), get("proprio", episode, frames)
        batch = {
            "image": image[:, 0],
            "proprio": proprio[:, 0],
            "action": get("action", episode, step[:, None])[:, 0],
            "reward": get("reward", episode, step[:, None])[:, 0],
            "success": get("success", episode, step[:, None] + 1)[:, 0],
        }
        if self.with_next:
            batch["next_image"] = image[:, 1]
            batch["next_proprio"] = proprio[:, 1]
        return batch


class WindowLoader(_EpisodeLoader):
    """Batches of T+1 consecutive frames and the T actions between them; see the module doc.

    context: T, the number of actions (and of context frames before the target frame).
    Episodes shorter than T steps contribute no samples.
    pad_start: also yield the T-1 windows that begin before an episode's first frame, padded
        the way a rollout from a single first frame is: frames and proprio before step 0 repeat
        step 0, actions before step 0 are zeros (reward 0). Then every frame after the first is
        a target once, and `step` can be negative (the first, padded, frame's step).
    """

    def __init__(
        self, data, batch_size: int, seed: int = 0, *, context: int = 4, pad_start=False, **kw
    ):
        if context < 1:
            raise ValueError(f"context must be >= 1, got {context}")
        self.context = context
        self.pad_start = pad_start
        super().__init__(data, batch_size, seed, **kw)

    def _span(self) -> int:
        return 1 if self.pad_start else self.context

    def _kind(self) -> str:
        return f"window(T={self.context}, pad_start={self.pad_start})"

    def _make_samples(self):
        episode, step = super()._make_samples()
        if self.pad_start:
            step = step - (self.context - 1)
        return episode, step

    def _gather(self, episode, step):
        get = self.data.gather
        rel = step[:, None] + np.arange(self.context + 1)  # frame within the episode, < 0 padded
        frames = np.maximum(rel, 0)
        acts = np.maximum(rel[:, :-1], 0)
        before = rel[:, :-1] < 0
        action = get("action", episode, acts)
        reward = get("reward", episode, acts)
        return {
            "image": get("image", episode, frames),
            "proprio": get("proprio", episode, frames),
            "action": np.where(before[..., None], 0.0, action).astype(np.float32),
            "reward": np.where(before, 0.0, reward).astype(np.float32),
            "success": get("success", episode, frames),
        }


class FrameImages:
    """Images by frame row: rows [0, data.num_frames) are the data's frames (EpisodeData.frames:
    from RAM or read from the pack), rows from data.num_frames on are `extra`'s (frames held in
    RAM beside the data, e.g. a world model's imagined ones, uint8 [M, H, W, 3]).
    images[index int [N]] -> uint8 [N, H, W, 3], in the order given."""

    def __init__(self, data: EpisodeData, extra: np.ndarray | None = None):
        shape = tuple(data.image_shape)
        if extra is None:
            extra = np.zeros((0, *shape), np.uint8)
        if extra.dtype != np.uint8 or extra.shape[1:] != shape:
            raise ValueError(f"extra frames must be uint8 [M, {', '.join(map(str, shape))}]")
        self.data, self.extra = data, extra

    def __len__(self) -> int:
        return self.data.num_frames + len(self.extra)

    def __getitem__(self, index: np.ndarray) -> np.ndarray:
        index = np.asarray(index, np.int64).reshape(-1)
        recorded = index < self.data.num_frames
        if recorded.all():
            return self.data.frames("image", index)
        out = np.empty((len(index), *self.data.image_shape), np.uint8)
        out[recorded] = self.data.frames("image", index[recorded])
        out[~recorded] = self.extra[index[~recorded] - self.data.num_frames]
        return out


class FrameLoader(_Loader):
    """Batches of labelled frames, balanced between the classes (a success classifier's):

        image  uint8  [B, H, W, 3]    frame  int64 [B]  (row of `images`)
        label  bool   [B]             and each of `columns` (e.g. task int32 [B])

    frame int [N] (rows of `images`, a FrameImages or EpisodeData), label bool [N] and columns
    {name: [N]} describe the N labelled frames; both classes must be present. The positives
    and the negatives are each a Grain MapDataset shuffled with the seed and repeated (epochs
    of one class back to back, independent of the other's), then mixed 1:1 (alternately) into
    the sequence that is cut into global batches and shared over the processes like the other
    loaders', so a batch holds B/2 of each (an odd B one more positive or negative,
    alternately). Deterministic by seed, checkpointable like the other loaders."""

    def __init__(
        self,
        images: FrameImages | EpisodeData,
        frame: np.ndarray,
        label: np.ndarray,
        batch_size: int,
        seed: int = 0,
        *,
        columns: dict[str, np.ndarray] | None = None,
        **kw,
    ):
        self.images = images if isinstance(images, FrameImages) else FrameImages(images)
        self._frame = np.asarray(frame, np.int64)
        self._label = np.asarray(label, bool)
        self.columns = {name: np.asarray(c) for name, c in (columns or {}).items()}
        for name, values in {"label": self._label, **self.columns}.items():
            if values.shape[:1] != self._frame.shape:
                raise ValueError(f"{name} has {len(values)} rows, frame {len(self._frame)}")
        if len(self._frame) and not 0 <= self._frame.min() <= self._frame.max() < len(self.images):
            raise IndexError(f"frames must be rows of the {len(self.images)} images")
        super().__init__(self.images.data, batch_size, seed, **kw)

    def _make_samples(self):
        return self._frame, self._label

    def _check_samples(self) -> None:
        if self._label.all() or not self._label.any():
            missing = "negative" if len(self._label) and self._label.all() else "positive"
            raise EpisodeError(
                f"{self.data.where}: no {missing} frame among the {len(self._label)} labelled "
                "ones; balanced batches need both classes"
            )

    def _sequence(self):
        import grain

        classes = []
        # Grain seeds epoch k with seed + k: the negatives' seed sits half the range away, so
        # that no epoch of theirs is shuffled like one of the positives'
        for c, ids in enumerate((np.flatnonzero(self._label), np.flatnonzero(~self._label))):
            seed = (self.seed + c * 2**31) % 2**32
            classes.append(grain.MapDataset.source(ids).shuffle(seed=seed).repeat())
        return grain.MapDataset.mix(classes)

    def _read(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        ids = np.asarray(ids, np.int64)
        frame = self._frame[ids]
        batch = {"image": self.images[frame], "frame": frame, "label": self._label[ids]}
        return batch | {name: values[ids] for name, values in self.columns.items()}

    def _kind(self) -> str:
        positives = int(self._label.sum())
        return (
            f"frames(positives={positives}, negatives={len(self._label) - positives}, "
            f"extra={len(self.images.extra)})"
        )


def _block(ids: np.ndarray, start: int, stop: int) -> np.ndarray:
    """One process's block of a global batch of sample ids."""
    return ids[start:stop]


def save_loader_state(loader: _Loader, out: str | Path, step: int, keep=None) -> Path:
    """Write the loader's state for checkpoint `step` as out/data_state/<step>/process-<i>-of-<n>
    .json (atomically); remove the states of steps not in `keep` (the checkpoints kept)."""
    import json

    folder = Path(out) / "data_state" / str(int(step))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"process-{loader.process_index}-of-{loader.process_count}.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(loader.state(), default=_plain))
    os.replace(tmp, path)
    if keep is not None:
        keep = {int(k) for k in keep} | {int(step)}
        for old in (Path(out) / "data_state").iterdir():
            if old.name.isdigit() and int(old.name) not in keep:
                for f in old.iterdir():
                    f.unlink(missing_ok=True)
                old.rmdir()
    return path


def resume_loader(loader: _Loader, out: str | Path, step: int) -> str:
    """Make `loader` continue where the checkpoint of `step` left it: its saved state when there
    is one, else batch number `step` of the sequence (one batch per step). Returns how: "grain",
    "position", "start" (step 0) or "changed" (the data changed since: the new data's sequence
    from batch `step`, with a warning)."""
    import json

    if step == 0:
        loader.start_at(0)
        return "start"
    path = (
        Path(out)
        / "data_state"
        / str(int(step))
        / f"process-{loader.process_index}-of-{loader.process_count}.json"
    )
    if not path.is_file():
        loader.start_at(step)
        return "position"
    try:
        state = json.loads(path.read_text())
        return loader.restore(state)
    except ConfigError as exc:
        print(f"warning: {path}: {exc}; continuing at batch {step}", file=sys.stderr)
        loader.start_at(step)
        return "changed"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"warning: {path}: unreadable ({exc}); continuing at batch {step}", file=sys.stderr)
        loader.start_at(step)
        return "position"


def _plain(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON-able: {type(value).__name__}")


def as_set(value: str | Sequence[str] | None) -> set[str]:
    if value is None:
        return set()
    return {value} if isinstance(value, str) else set(value)


def empty_message(roots: list[Path], tasks: set[str], sources: set[str]) -> str:
    where = ", ".join(map(str, roots))
    if not any(list_episodes(r) for r in roots):
        return f"{where}: dataset holds no complete episodes; record some with `robolearn collect`"
    filters = []
    if tasks:
        filters.append(f"task {', '.join(sorted(tasks))}")
    if sources:
        filters.append(f"source {', '.join(sorted(sources))}")
    return f"{where}: no episodes match {' and '.join(filters)}"
