"""The Spark session the spark engine runs on, and the checks made before it starts.

``start_session`` checks what would otherwise fail late or with the JVM's own words (Java
missing or too old for this pyspark, a ``spark://`` master that does not answer, a
standalone master whose Spark version is not pyspark's) and starts a client-mode session
with pipeform's code shipped to the executors. ``Progress`` prints Spark's stage progress
while jobs run and notices a cluster that lost every executor; ``translate`` turns a
failed job into one error. ``check_location`` refuses object-store inputs this pyspark
cannot read (no hadoop-aws jars).
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from providers.base import JSON, PermanentError
from providers.local.data.features import FeatureError

#: the standalone master's REST server (spark.master.rest.port), which reports its version
REST_PORT = 6066
#: the Java a pyspark major version needs at least
JAVA_FOR_SPARK = {3: 8, 4: 17}


class SparkEngineError(PermanentError):
    """Spark cannot run the work: engine missing, cluster unreachable, a job failed."""


@dataclass(frozen=True)
class SparkSettings:
    """``providers.local.engine`` of the Workspace when its type is spark (camelCase JSON)."""

    master: str
    driver_host: str | None = None
    executor_wait_seconds: float = 120.0  # give up when no executor is alive this long
    conf: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_config(cls, config: JSON) -> SparkSettings:
        return cls(
            master=str(config["master"]),
            driver_host=config.get("driverHost"),
            executor_wait_seconds=float(config.get("executorWaitSeconds") or 120.0),
            conf=tuple(sorted((str(k), str(v)) for k, v in (config.get("conf") or {}).items())),
        )


# --- the session ---------------------------------------------------------------------


def check_master(master: str) -> None:
    """A spark:// master must accept connections; else one clear error (not a 60 s hang)."""
    if not master.startswith("spark://"):
        return
    for hostport in master.removeprefix("spark://").split(","):
        parsed = urlparse(f"spark://{hostport}")
        try:
            with socket.create_connection((parsed.hostname or "", parsed.port or 7077), 5):
                return
        except OSError as exc:
            last = exc
    raise SparkEngineError(
        f"the Spark master {master} does not answer ({last.strerror or last}); start it, or "
        "fix providers.local.engine.master in the Workspace"
    )


def _minor(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:2])


def master_version(settings: SparkSettings) -> str | None:
    """The Spark version a standalone master runs, from its REST server
    (``spark.master.rest.port``, 6066 by default); None when none answers."""
    if not settings.master.startswith("spark://"):
        return None
    port = int(dict(settings.conf).get("spark.master.rest.port", REST_PORT))
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    for hostport in settings.master.removeprefix("spark://").split(","):
        host = urlparse(f"spark://{hostport}").hostname or ""
        url = f"http://{host}:{port}/v1/submissions/status/pipeform-version-check"
        try:
            with direct.open(url, timeout=3) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:  # an error status still carries the version
            try:
                body = json.loads(exc.read())
            except ValueError:
                continue
        except (OSError, ValueError):
            continue
        version = body.get("serverSparkVersion") if isinstance(body, dict) else None
        if isinstance(version, str):
            return version
    return None


def check_version(settings: SparkSettings) -> None:
    """A standalone master must run pyspark's Spark version (major.minor). A master without
    the REST server is not checked here (a mismatch then shows Spark's own error)."""
    import pyspark

    version = master_version(settings)
    if version is not None and _minor(version) != _minor(pyspark.__version__):
        raise SparkEngineError(
            f"the Spark master {settings.master} runs Spark {version}, but this machine's "
            f"pyspark is {pyspark.__version__}; driver and cluster must run the same Spark "
            f"version: pip install 'pyspark=={version}' here, or point "
            "providers.local.engine.master at a cluster of pyspark's version"
        )


def _java() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home:
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


def check_java() -> None:
    """Java is there and new enough for this pyspark (Spark 4 needs Java 17)."""
    import pyspark

    java = _java()
    if java is None or not Path(java).exists():
        raise SparkEngineError(
            "the spark engine needs Java 17 or newer on this machine (java not found); install "
            "it (Debian: openjdk-17-jre-headless) or set JAVA_HOME"
        )
    try:
        shown = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        ).stderr
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SparkEngineError(f"{java} -version did not run ({exc})") from None
    found = re.search(r'version "(\d+)(?:\.(\d+))?', shown)
    if found is None:
        return  # an unusual java: let Spark judge it
    major = int(found.group(1))
    major = int(found.group(2) or 0) if major == 1 else major  # 1.8 is Java 8
    needed = JAVA_FOR_SPARK.get(_minor(pyspark.__version__)[0], 17)
    if major < needed:
        raise SparkEngineError(
            f"pyspark {pyspark.__version__} needs Java {needed} or newer, but {java} is Java "
            f"{major}; install Java {needed} (Debian: openjdk-{needed}-jre-headless) and point "
            "JAVA_HOME at it"
        )


def _jars() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "jars"


OBJECT_STORE = re.compile(r"^(s3[an]?):/+", re.IGNORECASE)


def check_location(location: str, settings: SparkSettings) -> str:
    """The URI Spark reads ``location`` at; an s3:// one only when Hadoop's S3A connector
    (hadoop-aws) is there: bundled jars or ``spark.jars.packages``/``spark.jars``."""
    found = OBJECT_STORE.match(location)
    if found is None:
        return location
    conf = dict(settings.conf)
    added = " ".join(conf.get(k, "") for k in ("spark.jars.packages", "spark.jars"))
    jars = _jars()
    if "hadoop-aws" not in added and not any(jars.glob("hadoop-aws-*.jar")):
        hadoop = next(iter(sorted(jars.glob("hadoop-client-api-*.jar"))), None)
        version = hadoop.stem.removeprefix("hadoop-client-api-") if hadoop else "<hadoop version>"
        raise SparkEngineError(
            f"{location}: the spark engine reads s3:// through Hadoop's S3A connector, and "
            f"this pyspark has no hadoop-aws jar ({jars}); add it to the Workspace: "
            "providers.local.engine.conf: {spark.jars.packages: "
            f"org.apache.hadoop:hadoop-aws:{version}}} (fetched from Maven Central when the "
            "session starts), or put hadoop-aws and the AWS SDK bundle jars in spark.jars"
        )
    return "s3a://" + location[found.end() :]


def _code_zip(directory: Path) -> Path:
    """This package (providers, reconciler) as a zip the executors import the transforms from."""
    import providers

    root = Path(providers.__file__).parent.parent
    target = directory / "pipeform-code.zip"
    with zipfile.ZipFile(target, "w") as archive:
        for package in ("providers", "reconciler"):
            for path in sorted((root / package).rglob("*.py")):
                archive.write(path, path.relative_to(root).as_posix())
    return target


def start_session(settings: SparkSettings, scratch: Path) -> Any:
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise SparkEngineError(
            "the spark engine needs pyspark: pip install 'pipeform[spark]' (the same pyspark "
            "version as the cluster's Spark)"
        ) from None
    check_java()
    check_master(settings.master)
    check_version(settings)
    from pyspark import SparkConf, SparkContext

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # executors use this interpreter
    # pyspark's notice about the pandas version, every job: pipeform hands it Arrow batches
    warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)
    conf = (
        SparkConf()
        .setMaster(settings.master)
        .setAppName("pipeform-features")
        .set("spark.sql.session.timeZone", "UTC")
        .set("spark.sql.execution.arrow.maxRecordsPerBatch", "131072")
        .set("spark.ui.showConsoleProgress", "false")
        .set("spark.pyspark.python", sys.executable)
    )
    if settings.driver_host:
        conf = conf.set("spark.driver.host", settings.driver_host)
        conf = conf.set("spark.driver.bindAddress", settings.driver_host)
    for key, value in settings.conf:
        conf = conf.set(key, value)
    try:
        context = SparkContext(conf=conf, gateway=_gateway(conf))
        session = SparkSession(context)
    except Exception as exc:  # the JVM's errors arrive as many types
        said = _log_tail()
        raise SparkEngineError(
            f"Spark did not start: {_first_line(exc)}"
            + (f"; the driver said: {said}" if said else "")
        ) from None
    session.sparkContext.setLogLevel("ERROR")
    session.sparkContext.addPyFile(str(_code_zip(scratch)))
    return session


#: the driver JVM's console (its start-up notes, log4j's own lines, and a stack trace Spark
#: sometimes prints while it stops): a file, so that an apply's output shows pipeform's
#: lines and one clear error, never the JVM's
DRIVER_LOG = Path(tempfile.gettempdir()) / f"pipeform-spark-driver-{os.getpid()}.log"


def _gateway(conf: Any) -> Any:
    """pyspark's JVM, started once per process with its console in DRIVER_LOG (None when
    pyspark already runs one: it keeps using it)."""
    from pyspark import SparkContext
    from pyspark.java_gateway import launch_gateway

    if SparkContext._gateway is not None:  # pyspark's own record of its JVM
        return None
    with DRIVER_LOG.open("ab") as log:  # the JVM holds its own copy of the descriptor
        gateway = launch_gateway(conf, popen_kwargs={"stdout": log, "stderr": log})  # type: ignore[no-untyped-call]
    atexit.register(DRIVER_LOG.unlink, missing_ok=True)
    return gateway


def _log_tail(lines: int = 5) -> str:
    """The driver's last lines that are not a stack frame, joined (empty without a log)."""
    try:
        text = DRIVER_LOG.read_text(errors="replace")
    except OSError:
        return ""
    kept = [line.strip() for line in text.splitlines() if line.strip()]
    kept = [line for line in kept if not line.startswith("at ")]
    return " | ".join(kept[-lines:])


class Progress(threading.Thread):
    """Prints Spark's stage progress (from the status tracker) while jobs run; cancels the
    jobs when no executor has been alive for ``wait`` seconds (a lost worker)."""

    def __init__(self, context: Any, wait: float) -> None:
        super().__init__(daemon=True, name="spark-progress")
        self.context, self.wait = context, wait
        self.done = threading.Event()
        self.lost = False  # cancelled: no executor for `wait` seconds
        self.seen = self.gone = False  # had executors; then had none

    def run(self) -> None:
        tracker, shown, alone_since = self.context.statusTracker(), "", None
        while not self.done.wait(1.0):
            try:
                line = "; ".join(
                    f"stage {info.stageId} {info.numCompletedTasks}/{info.numTasks} tasks"
                    for info in map(tracker.getStageInfo, sorted(tracker.getActiveStageIds()))
                    if info is not None
                )
                executors = len(tracker.getExecutorInfos()) - 1  # the driver is listed too
            except Exception:  # the context is stopping
                return
            if line and line != shown:
                print(f"  spark: {line}", file=sys.stderr, flush=True)
                shown = line
            self.seen = self.seen or executors > 0
            self.gone = self.gone or (self.seen and executors <= 0)
            local = self.context.master.startswith("local")
            alone_since = None if executors > 0 or local else (alone_since or time.monotonic())
            if alone_since is not None and time.monotonic() - alone_since > self.wait:
                self.lost = True
                self.context.cancelAllJobs()
                alone_since = None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def translate(exc: Exception, progress: Progress, master: str) -> PermanentError:
    """One clear error for a failed Spark job: the FeatureError an executor raised, a lost
    cluster, or the job's first line."""
    text = str(exc)
    found = re.search(r"FeatureError: (.+)", text)
    if found:
        return FeatureError(found.group(1).strip())
    if progress.lost or progress.gone:
        return SparkEngineError(
            f"the Spark cluster at {master} lost every executor (a worker stopped) "
            f"mid-materialisation; nothing was written and the previous tables stay current; "
            "start the workers and apply again"
        )
    python = re.search(r"^(\w+(?:Error|Exception): .+)$", text, re.MULTILINE)
    return SparkEngineError(
        f"the Spark job failed: {python.group(1) if python else _first_line(exc)}"
    )


@contextmanager
def spark_job(settings: SparkSettings) -> Iterator[Any]:
    """A session for one piece of work, its progress shown; a failed job is one error
    (``translate``); the session stopped and its scratch files removed afterwards."""

    scratch = Path(tempfile.mkdtemp(prefix="pipeform-spark-"))
    try:
        session = start_session(settings, scratch)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    progress = Progress(session.sparkContext, settings.executor_wait_seconds)
    progress.start()
    try:
        try:
            yield session
        except PermanentError:  # already one clear error (FeatureError, SparkEngineError)
            raise
        except Exception as exc:
            raise translate(exc, progress, settings.master) from None
    finally:
        progress.done.set()
        session.stop()
        shutil.rmtree(scratch, ignore_errors=True)
