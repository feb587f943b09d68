"""A store's data files on object storage (S3 or an S3-compatible server such as MinIO).

The catalog and the store directory (``store.json``, ``models/``, ``optuna.db``) stay where
they are; only the Parquet data files move: ``embed --store DIR --data-path s3://bucket/prefix``.
DuckDB reaches them through its ``httpfs`` extension (offline: the PyPI package
``duckdb-extension-httpfs``, loaded by ``extensions.load_extension``) and Python (the file reader
of ``load_embeddings``, the Ray engine's workers) through pyarrow's S3 filesystem.

Endpoint and credentials come from the standard AWS environment variables, on every machine
that reads or writes the files:

``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN`` (optional),
``AWS_REGION`` or ``AWS_DEFAULT_REGION`` (default ``us-east-1``), and for a server other
than AWS ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (``http://host:port``; http turns
TLS off, and such endpoints are addressed path-style: ``http://host:port/bucket/key``).

They become one DuckDB secret per connection (``CREATE SECRET ... TYPE s3``) and the
arguments of ``pyarrow.fs.S3FileSystem``. Profiles, SSO and instance roles (the AWS
credential chain) are not read: DuckDB needs its ``aws`` extension for them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping
from urllib.parse import urlparse

from .errors import InputError

S3_SCHEME = "s3://"
DEFAULT_REGION = "us-east-1"
#: The name of the secret each connection of an S3 store creates.
SECRET_NAME = "reels_store_s3"


def is_remote(path: str | os.PathLike | None) -> bool:
    """Whether ``path`` is an object-storage URL (``s3://...``) rather than a local path."""
    return path is not None and str(path).startswith(S3_SCHEME)


def normalise_data_path(url: str) -> str:
    """``s3://bucket/prefix`` -> ``s3://bucket/prefix/``; raises ValueError naming a bad URL."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise InputError(f"--data-path {url!r}: expected s3://bucket/prefix (an S3 bucket, "
                         "optionally with a key prefix)")
    if any(c in parsed.netloc for c in " _/\\") or parsed.netloc != parsed.netloc.lower():
        raise InputError(f"--data-path {url!r}: {parsed.netloc!r} is not a valid S3 bucket name "
                         "(lower-case letters, digits, dots and hyphens)")
    prefix = parsed.path.strip("/")
    return f"{S3_SCHEME}{parsed.netloc}/" + (f"{prefix}/" if prefix else "")


@dataclass(frozen=True)
class S3Settings:
    """Where the S3 server is and who we are, as the AWS environment variables say."""

    key_id: str | None
    secret: str | None
    session_token: str | None
    region: str
    endpoint: str | None      # host:port of a non-AWS server; None: AWS itself
    use_ssl: bool

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "S3Settings":
        env = os.environ if environ is None else environ
        url = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
        endpoint, use_ssl = None, True
        if url:
            parsed = urlparse(url if "://" in url else f"https://{url}")
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise InputError(f"AWS_ENDPOINT_URL {url!r}: expected http(s)://host[:port]")
            endpoint, use_ssl = parsed.netloc, parsed.scheme == "https"
        return cls(key_id=env.get("AWS_ACCESS_KEY_ID") or None,
                   secret=env.get("AWS_SECRET_ACCESS_KEY") or None,
                   session_token=env.get("AWS_SESSION_TOKEN") or None,
                   region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION,
                   endpoint=endpoint, use_ssl=use_ssl)

    def duckdb_secret_sql(self, name: str = SECRET_NAME) -> str:
        """``CREATE OR REPLACE SECRET`` for DuckDB's httpfs with these settings."""
        from .sqlfiles import sql_literal

        opts = ["TYPE s3", f"REGION {sql_literal(self.region)}"]
        if self.key_id:
            opts += [f"KEY_ID {sql_literal(self.key_id)}", f"SECRET {sql_literal(self.secret or '')}"]
        if self.session_token:
            opts.append(f"SESSION_TOKEN {sql_literal(self.session_token)}")
        if self.endpoint:
            # S3-compatible servers (MinIO, moto, Ceph) rarely have per-bucket host names.
            opts += [f"ENDPOINT {sql_literal(self.endpoint)}", "URL_STYLE 'path'",
                     f"USE_SSL {'true' if self.use_ssl else 'false'}"]
        return f"CREATE OR REPLACE SECRET {name} ({', '.join(opts)})"

    def filesystem(self):
        """A ``pyarrow.fs.S3FileSystem`` with these settings."""
        from pyarrow import fs

        kwargs = dict(region=self.region, access_key=self.key_id, secret_key=self.secret,
                      session_token=self.session_token)
        if self.endpoint:
            kwargs.update(endpoint_override=self.endpoint, scheme="https" if self.use_ssl else "http")
        if not self.key_id:
            kwargs.update(access_key=None, secret_key=None, anonymous=True)
        return fs.S3FileSystem(**{k: v for k, v in kwargs.items() if v is not None})


def filesystem_for(path: str | os.PathLike):
    """``(pyarrow filesystem, path inside it)`` for a local path or an ``s3://`` URL."""
    from pyarrow import fs

    text = str(path)
    if is_remote(text):
        return _s3_filesystem(S3Settings.from_env()), text[len(S3_SCHEME):]
    return fs.LocalFileSystem(), text


@lru_cache(maxsize=4)
def _s3_filesystem(settings: S3Settings):
    # One client per settings: making one per file costs a connection set-up each time.
    return settings.filesystem()


def configure_duckdb(con) -> None:
    """Let ``con`` read and write ``s3://`` paths: load httpfs, create the secret."""
    from .extensions import load_extension

    load_extension(con, "httpfs")
    con.execute(S3Settings.from_env().duckdb_secret_sql())
