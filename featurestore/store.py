"""The feature store: immutable Parquet parts + a DuckDB catalog of views.

Layout of a store directory::

    parts/videos/*.parquet                      per-video rows (status, label, split...)
    parts/windows/*.parquet                     window rows (times, transcript)
    parts/embeddings/encoder_id=<id>/*.parquet  one folder per encoder configuration
    parts/encoders/*.parquet                    encoder lineage
    parts/models/*.parquet                      fitted fusion models + lineage
    parts/window_predictions/*.parquet          per-window class probabilities
    models/<model_id>/                          fitted model files
    catalog.duckdb                              views over the parts (plain duckdb opens it)

Parts are written to a temporary name and renamed into place, so readers never
see half a file and any number of writer processes (embed shards) can add parts
at once. Nothing is ever rewritten: views keep the newest row per key.
"""
from __future__ import annotations

import json
import os
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.parquet as pq

from .schema import AGGREGATIONS, CLASSES, DEFAULT_DIMS, MODALITIES, PART_SCHEMAS, embedding_schema
from .sqlfiles import read_sql, sql_literal

CATALOG = "catalog.duckdb"
COMPACT_ROW_GROUP = 4096
_KINDS = tuple(PART_SCHEMAS)
# Views the catalog defines, in dependency order.
_VIEW_KINDS = ("videos", "windows", "segments", "encoders", "models", "window_predictions")


class StoreError(RuntimeError):
    """The store cannot do what was asked (wrong path, locked catalog...)."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _part_name() -> str:
    # Sortable by time, unique across processes and machines.
    return f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"


def _with_written_at(table: pa.Table, schema: pa.Schema) -> pa.Table:
    if "written_at" in schema.names and "written_at" not in table.column_names:
        ts = pa.array([utcnow()] * table.num_rows, type=schema.field("written_at").type)
        table = table.append_column("written_at", ts)
    missing = [f for f in schema if f.name not in table.column_names]
    for f in missing:
        table = table.append_column(f.name, pa.nulls(table.num_rows, f.type))
    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as exc:
        raise StoreError(f"part does not match the schema {schema}: {exc}") from exc


class FeatureStore:
    """A directory of Parquet parts with a DuckDB catalog of views.

    ``FeatureStore(path)`` opens (and, with ``create=True``, makes) a store.
    Public views, readable by plain duckdb: ``videos``, ``windows``, ``segments``,
    ``encoders``, ``embeddings``, ``fusion_vectors``, ``models``,
    ``window_predictions`` and ``video_predictions``.
    """

    def __init__(self, root: str | Path, create: bool = True):
        self.root = Path(root).resolve()
        if not (self.root / "parts").is_dir():
            if not create:
                raise StoreError(
                    f"{self.root} is not a feature store (no parts/ folder); "
                    "create one with `cli.py embed --store PATH ...`")
            for kind in _KINDS:
                self._seed_empty(kind)
            (self.root / "parts" / "embeddings").mkdir(parents=True, exist_ok=True)
        else:
            for kind in _KINDS:  # kinds added after this store was made
                if not self.part_dir(kind).is_dir():
                    try:
                        self._seed_empty(kind)
                    except OSError:  # a read-only store: that view is left out
                        pass
        self.models_dir.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ layout
    @property
    def parts_dir(self) -> Path:
        return self.root / "parts"

    @property
    def catalog_path(self) -> Path:
        return self.root / CATALOG

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    def part_dir(self, kind: str) -> Path:
        return self.parts_dir / kind

    def embedding_dir(self, encoder_id: str) -> Path:
        return self.parts_dir / "embeddings" / f"encoder_id={encoder_id}"

    def _seed_empty(self, kind: str) -> None:
        # An empty part gives every view its column types before any data exists.
        d = self.part_dir(kind)
        d.mkdir(parents=True, exist_ok=True)
        target = d / "00000000000000000000-empty.parquet"
        if not target.exists():
            self._atomic_write(PART_SCHEMAS[kind].empty_table(), target)

    # ------------------------------------------------------------------ writing
    @staticmethod
    def _atomic_write(table: pa.Table, target: Path, row_group_size: int | None = None) -> Path:
        tmp = target.with_name(target.name + f".{uuid.uuid4().hex[:6]}.tmp")
        # LZ4 decodes fastest; a dictionary of float vectors only grows the file.
        plain = {"embedding", "embedding_f32", "probs"}
        pq.write_table(table, tmp, compression="lz4", row_group_size=row_group_size,
                       use_dictionary=[c for c in table.column_names if c not in plain])
        os.replace(tmp, target)
        return target

    def write_part(self, kind: str, table: pa.Table | dict | list[dict]) -> Path:
        """Append an immutable part of ``kind`` (a key of ``schema.PART_SCHEMAS``).

        ``table`` may omit ``written_at`` (stamped now) and nullable columns.
        Returns the part's path.
        """
        if kind not in PART_SCHEMAS:
            raise StoreError(f"unknown part kind {kind!r}; one of {', '.join(_KINDS)}")
        table = _as_table(table)
        table = _with_written_at(table, PART_SCHEMAS[kind])
        d = self.part_dir(kind)
        d.mkdir(parents=True, exist_ok=True)
        return self._atomic_write(table, d / _part_name())

    def write_embeddings(self, encoder_id: str, dim: int, video_id: Iterable[str],
                         window_idx: Iterable[int], matrix: np.ndarray,
                         missing_reason: Iterable[str | None] | None = None) -> Path:
        """Append window embeddings of one encoder configuration.

        ``matrix`` is float32 ``(n_windows, dim)``; a row whose ``missing_reason``
        is set (or that is all NaN) is stored as a NULL embedding, never zeros.
        """
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[1] != dim:
            raise StoreError(f"encoder {encoder_id}: expected (n, {dim}) embeddings, got {matrix.shape}")
        n = matrix.shape[0]
        reasons = list(missing_reason) if missing_reason is not None else [None] * n
        nan_rows = np.isnan(matrix).all(axis=1) if n else np.zeros(0, bool)
        reasons = [r if r is not None or not nan_rows[i] else "missing" for i, r in enumerate(reasons)]
        valid = np.array([r is None for r in reasons], dtype=bool)
        values = pa.array(matrix.reshape(-1), type=pa.float32())
        emb = pa.FixedSizeListArray.from_arrays(values, dim, mask=pa.array(~valid))
        schema = embedding_schema(dim)
        # The same floats again as one fixed-width blob per row: Parquet decodes a
        # list with two levels per float, a blob with one level per row, so the
        # full-matrix loader reads 5x faster from it (SQL keeps the list column).
        blob = pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(4 * dim), n, [pa.array(valid, pa.bool_()).buffers()[1] if not valid.all() else None,
                                    pa.py_buffer(matrix.astype("<f4", copy=False).tobytes())],
            null_count=int((~valid).sum()))
        table = pa.table({
            "video_id": pa.array(list(video_id), pa.string()),
            "window_idx": pa.array(np.asarray(list(window_idx), dtype=np.int32)),
            "embedding": emb,
            "missing_reason": pa.array(reasons, pa.string()),
            "embedding_f32": blob,
        })
        table = _with_written_at(table, schema)
        d = self.embedding_dir(encoder_id)
        d.mkdir(parents=True, exist_ok=True)
        return self._atomic_write(table, d / _part_name())

    def register_encoder(self, name: str, modality: str, dim: int, version: str, config: dict,
                         weights_sha256: str | None, packages: dict | None, encoder_id: str) -> str:
        """Record (again) that an encoder configuration is in use; returns its id."""
        if modality not in MODALITIES:
            raise StoreError(f"unknown modality {modality!r}")
        self.write_part("encoders", [{
            "encoder_id": encoder_id, "name": name, "modality": modality, "dim": int(dim),
            "version": version, "config": json.dumps(config, sort_keys=True),
            "weights_sha256": weights_sha256, "packages": json.dumps(packages or {}, sort_keys=True),
        }])
        return encoder_id

    # ------------------------------------------------------------------ reading
    def _glob(self, kind: str) -> str:
        return sql_literal(str(self.part_dir(kind) / "*.parquet"))

    def chosen_encoders(self) -> dict[str, dict]:
        """The encoder per modality that ``fusion_vectors`` uses: the one used most recently.

        Returns ``{modality: {"encoder_id", "name", "dim"}}`` for modalities that have one.
        """
        tbl = pq.read_table(self.part_dir("encoders"), schema=PART_SCHEMAS["encoders"]) \
            if any(self.part_dir("encoders").glob("*.parquet")) else PART_SCHEMAS["encoders"].empty_table()
        rows = tbl.select(["encoder_id", "name", "modality", "dim", "written_at"]).to_pylist()
        out: dict[str, dict] = {}
        for r in sorted(rows, key=lambda r: r["written_at"]):
            if any(self.embedding_dir(r["encoder_id"]).glob("*.parquet")):
                out[r["modality"]] = {"encoder_id": r["encoder_id"], "name": r["name"], "dim": r["dim"]}
        return out

    def choose_encoder(self, encoder_id: str) -> None:
        """Make ``encoder_id`` the one ``fusion_vectors`` uses for its modality."""
        tbl = pq.read_table(self.part_dir("encoders"))
        rows = [r for r in tbl.to_pylist() if r["encoder_id"] == encoder_id]
        if not rows:
            raise StoreError(f"no encoder {encoder_id!r} in {self.root}; see the `encoders` view")
        row = dict(rows[-1])
        row.pop("written_at")
        self.write_part("encoders", [row])

    def _create_views(self, con: duckdb.DuckDBPyConnection) -> None:
        for kind in _VIEW_KINDS:
            if self.part_dir(kind).is_dir():
                con.execute(read_sql(f"view_{kind}").format(glob=self._glob(kind)))
        emb_glob = str(self.parts_dir / "embeddings" / "*" / "*.parquet")
        if any(self.parts_dir.glob("embeddings/*/*.parquet")):
            con.execute(read_sql("view_embeddings").format(glob=sql_literal(emb_glob)))
        else:
            con.execute(read_sql("view_embeddings_empty"))
        chosen = self.chosen_encoders()
        fmt = {}
        for m in MODALITIES:
            c = chosen.get(m)
            fmt[f"{m}_dim"] = int(c["dim"]) if c else DEFAULT_DIMS[m]
            fmt[f"{m}_source"] = read_sql("encoder_vectors").format(
                glob=sql_literal(str(self.embedding_dir(c["encoder_id"]) / "*.parquet"))) \
                if c else read_sql("encoder_vectors_empty")
        con.execute(read_sql("view_fusion_vectors").format(**fmt))
        con.execute(read_sql("view_video_predictions").format(union=aggregation_union()))

    def connect(self, read_only: bool = False, timeout_s: float = 60.0) -> duckdb.DuckDBPyConnection:
        """Open ``catalog.duckdb`` with its views refreshed over the current parts.

        Retries while another process holds the catalog's lock (DuckDB allows
        one writer process); parts can be written meanwhile without the catalog.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                con = duckdb.connect(str(self.catalog_path), read_only=read_only)
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise StoreError(f"cannot open {self.catalog_path}: {exc}") from exc
                time.sleep(0.2)
        if not read_only:
            self._create_views(con)
        return con

    def connect_memory(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with the same views: no lock, any number of processes."""
        con = duckdb.connect()
        self._create_views(con)
        return con

    def query(self, sql: str, params: list | None = None) -> pa.Table:
        """Run ``sql`` against the store's views and return an Arrow table."""
        con = self.connect_memory()
        try:
            # A relation, not a DB-API result: Arrow from execute() makes an extra copy (and warns).
            return con.sql(sql, params=params or None).to_arrow_table()
        finally:
            con.close()

    def refresh_catalog(self) -> None:
        """Rewrite the catalog's views so plain duckdb sees every part written so far."""
        self.connect().close()

    def load_embeddings(self, encoder_id: str) -> tuple[pa.Table, np.ndarray]:
        """Fast full-matrix read of one encoder: (keys table, float32 (n, dim) with NaN rows).

        Reads every part of the encoder in one threaded pyarrow call, taking the
        fixed-width ``embedding_f32`` blobs straight into one array; no per-row
        Python. Where a window was written twice the newest part wins.
        """
        files = sorted(self.embedding_dir(encoder_id).glob("*.parquet"))
        if not files:
            raise StoreError(f"no embeddings for encoder {encoder_id!r} in {self.root}")
        cols = ["video_id", "window_idx", "missing_reason"]
        with_blob = ["embedding_f32" in pq.read_schema(f).names for f in files]
        if all(with_blob):
            tbl = pq.read_table(files, columns=cols + ["embedding_f32"])
            matrix = _blobs_to_numpy(tbl.column("embedding_f32"))
        else:
            # Parts written before the blob column existed: decode their FLOAT[] lists.
            tbls = [pq.read_table(f, columns=cols + ["embedding_f32" if b else "embedding"])
                    for f, b in zip(files, with_blob)]
            matrix = np.concatenate([_blobs_to_numpy(t.column("embedding_f32")) if b
                                     else _lists_to_numpy(t.column("embedding"))
                                     for t, b in zip(tbls, with_blob)])
            tbl = pa.concat_tables([t.select(cols) for t in tbls])
        keys = tbl.select(cols)
        keep = _newest_rows(keys, files)
        if keep is not None:
            matrix, keys = matrix[keep], keys.take(pa.array(keep))
        return keys, matrix

    def compact(self) -> dict[str, int]:
        """Merge each folder's parts into one part, newest-wins applied; returns parts merged.

        Many small parts (``embed`` writes a few per chunk of videos) cost a
        full-matrix load a fixed time per file. Compaction is maintenance: run it
        when no process is writing or querying the store. The merged part takes
        the newest input's name (with a suffix), so parts written later still win.
        """
        merged: dict[str, int] = {}
        folders = [self.part_dir(k) for k in _KINDS] + sorted(self.parts_dir.glob("embeddings/encoder_id=*"))
        for folder in folders:
            files = sorted(f for f in folder.glob("*.parquet") if not f.name.endswith("-empty.parquet"))
            if len(files) < 2:
                continue
            tables = [pq.read_table(f) for f in files]
            keys = _FILE_KEYS.get(folder.name, ["video_id"] if folder.parent.name == "embeddings" else None)
            if keys:
                # A key's rows all come from its newest part (the views' rule).
                key_str = [_key_strings(t, keys) for t in tables]
                newest: dict[str, int] = {}
                for i, ks in enumerate(key_str):
                    newest.update(dict.fromkeys(pa.compute.unique(ks).to_pylist(), i))
                tables = [t.filter(pa.compute.is_in(ks, value_set=pa.array(
                              [k for k, j in newest.items() if j == i], pa.string())))
                          for i, (t, ks) in enumerate(zip(tables, key_str))]
            table = pa.concat_tables(tables)
            # Row groups of a few thousand rows keep the threaded reader busy on every core.
            self._atomic_write(table, folder / (files[-1].stem + "-compact.parquet"),
                               row_group_size=COMPACT_ROW_GROUP)
            for f in files:
                f.unlink()
            merged[str(folder.relative_to(self.parts_dir))] = len(files)
        return merged

    def snapshot(self) -> dict:
        """Counts and newest write time of every part kind: identifies the store's state."""
        out = {}
        for kind in _KINDS:
            files = list(self.part_dir(kind).glob("*.parquet"))
            out[kind] = {"parts": len(files) - 1, "rows": sum(pq.ParquetFile(f).metadata.num_rows for f in files)}
        emb = list(self.parts_dir.glob("embeddings/*/*.parquet"))
        out["embeddings"] = {"parts": len(emb), "rows": sum(pq.ParquetFile(f).metadata.num_rows for f in emb)}
        return out


def classes_literal(classes: tuple[str, ...] = CLASSES) -> str:
    """SQL list literal of the class names, e.g. ``['Anger', 'Fear', ...]``."""
    return "[" + ", ".join(sql_literal(c) for c in classes) + "]"


def aggregation_sql(method: str) -> str:
    """The SELECT of ``sql/aggregate_<method>.sql`` with the class list filled in.

    Reads a relation ``window_predictions(model_id, video_id, window_idx, probs)``;
    returns ``(model_id, video_id, method, emotion, confidence, probs)``.
    """
    if method not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation method {method!r}; one of {', '.join(AGGREGATIONS)}")
    return read_sql(f"aggregate_{method}").format(classes=classes_literal()).strip().rstrip(";")


def aggregation_union() -> str:
    """Every aggregation method's rows, as one SELECT."""
    return "\nUNION ALL\n".join(
        f"SELECT model_id, video_id, method, emotion, confidence FROM (\n{aggregation_sql(m)}\n) AS agg_{m}"
        for m in AGGREGATIONS)


def _as_table(table: pa.Table | dict | list[dict]) -> pa.Table:
    if isinstance(table, pa.Table):
        return table
    if isinstance(table, list):
        return pa.Table.from_pylist(table)
    if isinstance(table, dict):
        return pa.table(table)
    import pandas as pd
    if isinstance(table, pd.DataFrame):
        return pa.Table.from_pandas(table, preserve_index=False)
    raise TypeError(f"cannot make a part from {type(table).__name__}")


#: Part folders whose views decide "newest wins" per key on file names.
_FILE_KEYS = {"windows": ["video_id"], "segments": ["video_id"],
              "window_predictions": ["model_id", "video_id"]}


def _key_strings(table: pa.Table, keys: list[str]) -> pa.Array:
    cols = [table.column(c).cast(pa.string()) for c in keys]
    return cols[0] if len(cols) == 1 else pa.compute.binary_join_element_wise(*cols, "\x1f")


def _lists_to_numpy(col: pa.ChunkedArray) -> np.ndarray:
    """(n, dim) float32 from a ``fixed_size_list<float>[dim]`` column; NULL rows -> NaN."""
    dim = col.type.list_size
    arr = col.combine_chunks()
    out = np.full((len(arr), dim), np.nan, dtype=np.float32)
    valid = np.asarray(arr.is_valid()) if arr.null_count else np.ones(len(arr), bool)
    if valid.any():
        values = arr.filter(pa.array(valid)).flatten().to_numpy(zero_copy_only=False)
        out[valid] = values.reshape(-1, dim)
    return out


def _blobs_to_numpy(col: pa.ChunkedArray) -> np.ndarray:
    """(n, dim) float32 from a column of ``4 * dim``-byte float32 blobs; NULL rows -> NaN."""
    dim = col.type.byte_width // 4
    out = np.empty((len(col), dim), dtype=np.float32)
    row = 0
    for ch in col.chunks:
        n = len(ch)
        block = out[row:row + n]
        data = np.frombuffer(ch.buffers()[1], dtype="<f4")
        block[:] = data[ch.offset * dim:(ch.offset + n) * dim].reshape(n, dim)
        if ch.null_count:
            block[~np.asarray(ch.is_valid())] = np.nan
        row += n
    return out


def _newest_rows(keys: pa.Table, files: list[Path]) -> np.ndarray | None:
    """Rows to keep under the views' rule: each video's rows come from the newest
    part holding it (``files`` in write order, the rows of ``keys`` concatenated
    in that order); None when no (video, window) appears twice."""
    codes = pa.compute.dictionary_encode(keys.column("video_id").combine_chunks()).indices.to_numpy()
    key = (codes.astype(np.int64) << 32) | keys.column("window_idx").to_numpy().astype(np.int64)
    if len(np.unique(key)) == len(key):
        return None
    file_idx = np.repeat(np.arange(len(files)), [pq.ParquetFile(f).metadata.num_rows for f in files])
    newest = np.full(codes.max() + 1, -1)
    np.maximum.at(newest, codes, file_idx)
    return np.flatnonzero(file_idx == newest[codes])