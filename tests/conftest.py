"""Shared fixtures: throw-away servers (PostgreSQL, S3 through moto) and a local Ray instance for the tests that need real ones."""
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest


def require(what: str, how: str) -> None:
    """Skip for lack of a system service, or fail where CI sets REELS_REQUIRE_SERVICES=1:
    a missing server must not pass CI silently."""
    message = f"{what} not available: {how}"
    if os.environ.get("REELS_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def espeak_ng() -> None:
    """The espeak-ng binary that the tests' speech (reels_demo.corpus.speak) runs; a test or
    module needing it says ``pytest.mark.usefixtures("espeak_ng")``, never a bare skip."""
    if shutil.which("espeak-ng") is None:
        require("espeak-ng", "apt-get install espeak-ng")


def _pg_bin() -> Path | None:
    for version in ("15", "16", "17", "14"):
        b = Path(f"/usr/lib/postgresql/{version}/bin")
        if (b / "initdb").exists() and (b / "pg_ctl").exists():
            return b
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres():
    """A throw-away PostgreSQL server on a free localhost port; yields its SQLAlchemy URL."""
    bindir = _pg_bin()
    if bindir is None:
        require("PostgreSQL server binaries (initdb, pg_ctl)", "apt-get install postgresql")
    import tempfile
    # Not under pytest's tmp_path: that is private to root, and the server may run as 'postgres'.
    base = Path(tempfile.mkdtemp(prefix="fusion-pg-"))
    data, sock = base / "data", base / "sock"
    data.mkdir()
    sock.mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        import pwd
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(base, ignore_errors=True)
            require("a 'postgres' user to run the server as (running as root)", "apt-get install postgresql")
        base.chmod(0o755)
        for p in (base, data, sock):
            os.chown(p, pw.pw_uid, pw.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    port = _free_port()

    def run(*args: str) -> None:
        out = subprocess.run(prefix + list(args), capture_output=True, text=True)
        assert out.returncode == 0, f"{args[0]} failed: {out.stdout[-1500:]} {out.stderr[-1500:]}"

    run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "server.log"), "-w", "-t", "60", "-o",
        f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(prefix + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_server():
    """A throw-away S3 server (moto) on a free loopback port; the AWS_* variables point at it
    while it runs. Yields its endpoint URL. Never a real bucket."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        require("moto's S3 server", "pip install 'moto[server]' (in the dev extra)")
    import logging
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in (*env, "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN",
                                            "AWS_DEFAULT_REGION")}
    for k in ("AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        os.environ.pop(k, None)
    os.environ.update(env)
    try:
        yield endpoint
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray instance with 2 CPUs for one test module; yields its address (for a second
    driver process) and shuts it down at the end."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        require("Ray Data", "pip install 'reels-emotion[ray]' (in the dev extra)")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=512 * 1024 ** 2,
             logging_level="WARNING")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
