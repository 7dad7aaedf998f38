"""Runs a function's deployed code the way Lambda does, on this machine.

Each execution environment is a process started from the zip moto stored
(unpacked, so what runs is exactly what the operator deployed), chosen by
the function's `Runtime`:

- `provided.al2023`, `provided.al2`: the zip's `bootstrap`;
- `python3.12`, `python3.13`: AWS's runtime interface client
  (`python -m awslambdaric <Handler>`, awslambdaric from PyPI, with boto3 as
  Lambda's Python runtime ships it) from the virtualenv
  `$SLUICE_HARNESS_PYTHON_RUNTIME` names;
- `nodejs22.x`: AWS's runtime interface client for Node (aws-lambda-ric from
  npm, its `index.mjs`) from the directory `$SLUICE_HARNESS_NODE_RIC` names,
  run by the machine's `node`.

The interpreters are the machine's (Python 3.11, Node 20 here), whatever
minor version the function declares. Any other runtime, a runtime whose
client is not installed, and container images (`PackageType: Image`) fail
their invocation with `InvalidRuntimeException` and a message saying why,
at once.

Every process gets the function's environment, `_HANDLER`, the variables
Lambda sets, and credentials of its execution role assumed as
lambda.amazonaws.com, and talks to a Lambda Runtime API served here (GET
.../invocation/next, POST .../response and .../error, POST
.../init/error). Environments stay warm, one invocation at a time each, and
are replaced when the code or configuration changes. An invocation that
outlives the function's timeout kills its environment and fails with
Lambda's `Sandbox.Timedout`; a runtime that exits fails with
`Runtime.ExitError`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import queue
import shutil
import socket
import subprocess
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .context import Emulator, log
from .roles import RoleError, assume

API = "/2018-06-01/runtime"
PROVIDED_RUNTIMES = ("provided.al2023", "provided.al2")
PYTHON_RUNTIMES = ("python3.12", "python3.13")
NODE_RUNTIMES = ("nodejs22.x",)
# At most this many environments per function, like a reserved concurrency.
MAX_ENVIRONMENTS = int(os.environ.get("SLUICE_HARNESS_MAX_ENVIRONMENTS", "4"))


@dataclass
class Result:
    """One invocation's outcome, as Lambda reports it."""

    payload: bytes
    # None on success; else the error type (FunctionError is "Unhandled").
    error_type: str | None = None
    logs: str = ""
    duration_ms: float = 0.0
    max_memory_mib: int = 0
    request_id: str = ""
    # The first invocation of its environment (the process started for it).
    cold: bool = False

    @property
    def failed(self) -> bool:
        return self.error_type is not None

    def json(self):  # type: ignore[no-untyped-def]
        try:
            return json.loads(self.payload or b"null")
        except ValueError:
            return self.payload.decode(errors="replace")


@dataclass
class _Invocation:
    request_id: str
    payload: bytes
    deadline_ms: int
    done: threading.Event = field(default_factory=threading.Event)
    response: bytes = b""
    error_type: str | None = None


class Unrunnable(Exception):
    """A function the harness cannot run: the invocation fails at once with
    `error_type` and this message, as Lambda fails one it cannot start."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def _runtime_command(fn, code_dir: str) -> list[str]:  # type: ignore[no-untyped-def]
    """The process of one execution environment of `fn`, by its Runtime."""
    runtime = fn.run_time or ""
    if runtime in PROVIDED_RUNTIMES:
        return [os.path.join(code_dir, "bootstrap")]
    if runtime in PYTHON_RUNTIMES:
        python = os.environ.get("SLUICE_HARNESS_PYTHON_RUNTIME", "")
        if not os.access(python, os.X_OK):
            raise Unrunnable(
                "InvalidRuntimeException",
                f"the local harness runs {runtime} with awslambdaric, which is not installed "
                f"(SLUICE_HARNESS_PYTHON_RUNTIME={python!r}; run `make tools-runtimes`)",
            )
        return [python, "-m", "awslambdaric", fn.handler or ""]
    if runtime in NODE_RUNTIMES:
        ric = os.path.join(os.environ.get("SLUICE_HARNESS_NODE_RIC", ""), "index.mjs")
        node = shutil.which("node")
        if node is None or not os.path.isfile(ric):
            raise Unrunnable(
                "InvalidRuntimeException",
                f"the local harness runs {runtime} with node and aws-lambda-ric, which are not installed "
                f"(node: {node}, SLUICE_HARNESS_NODE_RIC index.mjs: {ric!r}; run `make tools-runtimes`)",
            )
        return [node, ric, fn.handler or ""]
    raise Unrunnable(
        "InvalidRuntimeException",
        f"the local harness cannot run runtime {runtime!r}: it runs "
        + ", ".join(PROVIDED_RUNTIMES + PYTHON_RUNTIMES + NODE_RUNTIMES),
    )


class Environment:
    """One warm execution environment: a process and its Runtime API."""

    def __init__(self, fn, key: str, code_dir: str) -> None:  # type: ignore[no-untyped-def]
        command = _runtime_command(fn, code_dir)
        self.key = key
        self.invocations = 0
        self.function_name = fn.function_name
        self.function_arn = fn.function_arn
        self.timeout = float(fn.timeout)
        self.memory = int(fn.memory_size)
        self._pending: queue.Queue[_Invocation] = queue.Queue()
        self._current: _Invocation | None = None
        self._init_error: str | None = None
        self._lines: list[str] = []
        self._lines_lock = threading.Lock()
        self.exited = threading.Event()
        self.log_stream = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"

        handler = self._handler_class()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        port = self._server.server_address[1]

        creds = assume(fn.role, "lambda.amazonaws.com", fn.region)
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
            "LAMBDA_TASK_ROOT": code_dir,
            "LAMBDA_RUNTIME_DIR": code_dir,
            "_HANDLER": fn.handler or "",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{fn.run_time}",
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
            "AWS_LAMBDA_FUNCTION_NAME": fn.function_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": fn.logs_group_name,
            "AWS_LAMBDA_LOG_STREAM_NAME": self.log_stream,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_REGION": fn.region,
            "AWS_DEFAULT_REGION": fn.region,
            "AWS_ENDPOINT_URL": Emulator.endpoint,
        }
        if fn.run_time in PYTHON_RUNTIMES:
            # Lambda's Python runtime imports the handler from /var/task.
            env["PYTHONPATH"] = code_dir
            env["PYTHONUNBUFFERED"] = "1"
        if fn.run_time in NODE_RUNTIMES:
            env["NODE_PATH"] = os.path.join(code_dir, "node_modules")
        env.update(fn.environment_vars or {})
        env.update(creds.env())
        # Lambda reserves these; a function's own values never replace them.
        env["AWS_ENDPOINT_URL"] = Emulator.endpoint
        self._process = subprocess.Popen(
            command,
            cwd=code_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        threading.Thread(target=self._read_output, daemon=True).start()
        threading.Thread(target=self._watch_exit, daemon=True).start()

    # -- the Runtime API ------------------------------------------------------

    def _handler_class(self):  # type: ignore[no-untyped-def]
        environment = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # A reply's header and body go out in two writes; on the
                # runtime's kept-alive connection Nagle's algorithm held the
                # body until the runtime's delayed ACK: 40 ms added to every
                # warm invocation, whatever the runtime.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, *_args) -> None:  # type: ignore[no-untyped-def]
                return

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _reply(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                if self.path != f"{API}/invocation/next":
                    return self._reply(404)
                invocation = environment._pending.get()
                environment._current = invocation
                self._reply(
                    200,
                    invocation.payload,
                    {
                        "Content-Type": "application/json",
                        "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                        "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
                        "Lambda-Runtime-Invoked-Function-Arn": environment.function_arn,
                        "Lambda-Runtime-Trace-Id": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0",
                    },
                )

            def do_POST(self) -> None:  # noqa: N802
                body = self._body()
                if self.path == f"{API}/init/error":
                    environment._init_error = _error_type(body, self.headers) or "Runtime.InitError"
                    with environment._lines_lock:
                        environment._lines.append(body.decode(errors="replace"))
                    return self._reply(202)
                parts = self.path[len(f"{API}/invocation/") :].split("/")
                current = environment._current
                if len(parts) != 2 or current is None or parts[0] != current.request_id:
                    return self._reply(400, b'{"errorType":"InvalidRequestID"}')
                if parts[1] == "response":
                    current.response = body
                elif parts[1] == "error":
                    current.response = body
                    current.error_type = _error_type(body, self.headers) or "Unhandled"
                else:
                    return self._reply(404)
                environment._current = None
                self._reply(202)
                current.done.set()

        return Handler

    # -- the process ----------------------------------------------------------

    def _read_output(self) -> None:
        assert self._process.stdout is not None
        path = os.path.join(Emulator.state_dir, f"lambda-{self.function_name}.log")
        with open(path, "a", encoding="utf-8") as sink:
            for raw in self._process.stdout:
                line = raw.decode(errors="replace").rstrip("\n")
                with self._lines_lock:
                    self._lines.append(line)
                sink.write(line + "\n")
                sink.flush()

    def _watch_exit(self) -> None:
        code = self._process.wait()
        self.exited.set()
        current = self._current
        if current is None:
            # Exited before asking for its invocation (an init failure).
            try:
                current = self._pending.get_nowait()
            except queue.Empty:
                current = None
        if current is not None and not current.done.is_set():
            current.error_type = "Runtime.ExitError"
            current.response = json.dumps(
                {
                    "errorType": "Runtime.ExitError",
                    "errorMessage": f"RequestId: {current.request_id} Error: Runtime exited with error: exit status {code}",
                }
            ).encode()
            current.done.set()
        self._server.shutdown()

    def _max_memory_mib(self) -> int:
        try:
            with open(f"/proc/{self._process.pid}/status", encoding="ascii") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) // 1024
        except OSError:
            pass
        return 0

    def _logs_since(self, mark: int) -> str:
        with self._lines_lock:
            return "\n".join(self._lines[mark:])

    def invoke(self, payload: bytes) -> Result:
        cold = self.invocations == 0
        self.invocations += 1
        request_id = str(uuid.uuid4())
        started = time.monotonic()
        deadline_ms = int((time.time() + self.timeout) * 1000)
        invocation = _Invocation(request_id, payload, deadline_ms)
        with self._lines_lock:
            mark = len(self._lines)
            self._lines.append(f"START RequestId: {request_id} Version: $LATEST")
        self._pending.put(invocation)
        if self.exited.is_set():
            # The process died before this was queued: nobody will take it.
            try:
                self._pending.get_nowait()
                invocation.error_type = "Runtime.ExitError"
                invocation.response = b'{"errorType":"Runtime.ExitError","errorMessage":"Runtime exited"}'
                invocation.done.set()
            except queue.Empty:
                pass
        finished = invocation.done.wait(self.timeout)
        duration = (time.monotonic() - started) * 1000
        if not finished:
            self.kill()
            error = {
                "errorType": "Sandbox.Timedout",
                "errorMessage": f"RequestId: {request_id} Error: Task timed out after {self.timeout:.2f} seconds",
            }
            invocation.error_type = "Sandbox.Timedout"
            invocation.response = json.dumps(error).encode()
        elif self._init_error and invocation.error_type == "Runtime.ExitError":
            invocation.error_type = self._init_error
        memory = self._max_memory_mib()
        with self._lines_lock:
            self._lines.append(f"END RequestId: {request_id}")
            self._lines.append(
                f"REPORT RequestId: {request_id}\tDuration: {duration:.2f} ms\t"
                f"Billed Duration: {int(duration) + 1} ms\tMemory Size: {self.memory} MB\t"
                f"Max Memory Used: {memory} MB"
            )
        return Result(
            payload=invocation.response,
            error_type=invocation.error_type,
            logs=self._logs_since(mark),
            duration_ms=duration,
            max_memory_mib=memory,
            request_id=request_id,
            cold=cold,
        )

    def kill(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self.exited.wait(5)

    @property
    def alive(self) -> bool:
        return not self.exited.is_set()


def _error_type(body: bytes, headers) -> str | None:  # type: ignore[no-untyped-def]
    kind = headers.get("Lambda-Runtime-Function-Error-Type")
    if kind:
        return kind
    try:
        return json.loads(body).get("errorType")
    except (ValueError, AttributeError):
        return None


def _key(fn) -> str:  # type: ignore[no-untyped-def]
    """What a warm environment depends on: code, configuration and role."""
    config = json.dumps(
        [
            fn.code_sha_256,
            fn.run_time,
            fn.handler,
            fn.role,
            int(fn.memory_size),
            float(fn.timeout),
            sorted((fn.environment_vars or {}).items()),
        ]
    )
    return hashlib.sha256(config.encode()).hexdigest()[:16]


class LogShipper:
    """Writes each invocation's output to CloudWatch Logs as Lambda does:
    with the execution role, creating the function's log group and stream
    when the role may; a role that may not loses its logs, as on AWS."""

    _queue: queue.Queue = queue.Queue()
    _started = False
    _streams: set[tuple[str, str]] = set()

    @classmethod
    def ship(cls, fn, stream: str, text: str) -> None:  # type: ignore[no-untyped-def]
        if not cls._started:
            cls._started = True
            threading.Thread(target=cls._run, name="log-shipper", daemon=True).start()
        cls._queue.put((fn.role, fn.region, fn.logs_group_name, stream, text, int(time.time() * 1000)))

    @classmethod
    def _run(cls) -> None:
        while True:
            role, region, group, stream, text, at = cls._queue.get()
            try:
                logs = Emulator.client("logs", region, assume(role, "lambda.amazonaws.com", region))
                if (group, stream) not in cls._streams:
                    for call, args in (
                        (logs.create_log_group, {"logGroupName": group}),
                        (logs.create_log_stream, {"logGroupName": group, "logStreamName": stream}),
                    ):
                        try:
                            call(**args)
                        except logs.exceptions.ResourceAlreadyExistsException:
                            pass
                    cls._streams.add((group, stream))
                events = [{"timestamp": at, "message": line} for line in text.splitlines() if line]
                if events:
                    logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)
            except Exception as e:  # AccessDenied, a deleted group: the lines are lost, as on AWS
                cls._streams.discard((group, stream))
                log.info("logs of %s not written: %s", group, e)


class History:
    """The last invocations, for tests that count attempts."""

    _entries: list[dict] = []
    _lock = threading.Lock()
    _limit = 2000

    @classmethod
    def add(cls, function_name: str, result: Result) -> None:
        with cls._lock:
            cls._entries.append(
                {
                    "function": function_name,
                    "requestId": result.request_id,
                    "error": result.error_type,
                    "durationMs": round(result.duration_ms, 3),
                    "maxMemoryMiB": result.max_memory_mib,
                    "coldStart": result.cold,
                    "at": time.time(),
                }
            )
            del cls._entries[: -cls._limit]

    @classmethod
    def of(cls, function_name: str | None) -> list[dict]:
        with cls._lock:
            return [e for e in cls._entries if function_name is None or e["function"] == function_name]


class Runtimes:
    """Warm environments per function; the only way the harness runs code."""

    _idle: dict[str, list[Environment]] = {}
    _busy: dict[str, int] = {}
    _lock = threading.Condition()

    @classmethod
    def _code_dir(cls, fn) -> str:  # type: ignore[no-untyped-def]
        if fn.package_type == "Image":
            raise Unrunnable(
                "InvalidRuntimeException",
                f"images are converged but not run locally: {fn.code.get('ImageUri')} "
                "(the local harness runs zip functions only; see e2e/moto/README.md)",
            )
        digest = hashlib.sha256(fn.code_bytes).hexdigest()[:16]
        path = os.path.join(Emulator.state_dir, "code", digest)
        if not os.path.exists(os.path.join(path, ".unpacked")):
            staging = f"{path}.{uuid.uuid4().hex}"
            with zipfile.ZipFile(io.BytesIO(fn.code_bytes)) as archive:
                archive.extractall(staging)
            bootstrap = os.path.join(staging, "bootstrap")
            if fn.run_time in PROVIDED_RUNTIMES and not os.path.exists(bootstrap):
                shutil.rmtree(staging, ignore_errors=True)
                raise FileNotFoundError("the deployment package holds no bootstrap")
            if os.path.exists(bootstrap):
                os.chmod(bootstrap, 0o755)
            open(os.path.join(staging, ".unpacked"), "w").close()
            try:
                os.rename(staging, path)
            except OSError:  # another thread unpacked it first
                shutil.rmtree(staging, ignore_errors=True)
        return path

    @classmethod
    def invoke(cls, fn, payload: bytes) -> Result:  # type: ignore[no-untyped-def]
        """Runs one invocation of `fn` (moto's LambdaFunction) synchronously."""
        key = _key(fn)
        arn = fn.function_arn
        try:
            environment = cls._acquire(fn, key)
        except RoleError as e:
            return _failure("AccessDeniedException", f"Lambda was unable to assume the execution role: {e}")
        except Unrunnable as e:
            result = _failure(e.error_type, str(e))
            History.add(fn.function_name, result)
            log.info("invoke %s: %s", fn.function_name, e)
            return result
        except (OSError, zipfile.BadZipFile) as e:
            return _failure("Runtime.InvalidEntrypoint", f"cannot start the function's code: {e}")
        try:
            result = environment.invoke(payload)
        finally:
            cls._release(arn, environment)
        LogShipper.ship(fn, environment.log_stream, result.logs)
        History.add(fn.function_name, result)
        log.info(
            "invoke %s: %s in %.1f ms (max %d MB)",
            fn.function_name,
            result.error_type or "ok",
            result.duration_ms,
            result.max_memory_mib,
        )
        return result

    @classmethod
    def _acquire(cls, fn, key: str) -> Environment:  # type: ignore[no-untyped-def]
        arn = fn.function_arn
        with cls._lock:
            while True:
                idle = cls._idle.setdefault(arn, [])
                # Drop environments of older code or configuration, or dead ones.
                for stale in [e for e in idle if e.key != key or not e.alive]:
                    idle.remove(stale)
                    threading.Thread(target=stale.kill, daemon=True).start()
                if idle:
                    cls._busy[arn] = cls._busy.get(arn, 0) + 1
                    return idle.pop()
                if cls._busy.get(arn, 0) < MAX_ENVIRONMENTS:
                    cls._busy[arn] = cls._busy.get(arn, 0) + 1
                    break
                cls._lock.wait()
        try:
            return Environment(fn, key, cls._code_dir(fn))
        except BaseException:
            with cls._lock:
                cls._busy[arn] -= 1
                cls._lock.notify_all()
            raise

    @classmethod
    def _release(cls, arn: str, environment: Environment) -> None:
        with cls._lock:
            cls._busy[arn] -= 1
            if environment.alive:
                cls._idle.setdefault(arn, []).append(environment)
            cls._lock.notify_all()

    @classmethod
    def shutdown(cls) -> None:
        with cls._lock:
            environments = [e for idle in cls._idle.values() for e in idle]
            cls._idle.clear()
        for environment in environments:
            environment.kill()


def _failure(error_type: str, message: str) -> Result:
    body = json.dumps({"errorType": error_type, "errorMessage": message}).encode()
    return Result(payload=body, error_type=error_type, logs=message)
