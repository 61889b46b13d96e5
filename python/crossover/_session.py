"""The ONNX Runtime-compatible session around the extension's ``Session``.

Kept thin: ``run`` goes straight to Rust; this layer only translates names and options.
"""

from __future__ import annotations

import enum
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import _crossover

# ONNX Runtime provider name -> crossover device kind.
_PROVIDER_DEVICE = {
    "CPUExecutionProvider": "cpu",
    "CUDAExecutionProvider": "cuda",
    "TensorrtExecutionProvider": "cuda",
}
_DEVICE_PROVIDER = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def get_all_providers() -> List[str]:
    """The ONNX Runtime provider names crossover understands."""
    return list(_PROVIDER_DEVICE)


def get_available_providers() -> List[str]:
    """The providers this build can run: the CPU."""
    return ["CPUExecutionProvider"]


def get_device() -> str:
    """As ``onnxruntime.get_device()``: the kind of device this build runs on."""
    return "CPU"


class GraphOptimizationLevel(enum.IntEnum):
    """Accepted for compatibility; crossover always applies all its graph optimisations."""

    ORT_DISABLE_ALL = 0
    ORT_ENABLE_BASIC = 1
    ORT_ENABLE_EXTENDED = 2
    ORT_ENABLE_ALL = 99


class ExecutionMode(enum.IntEnum):
    """Accepted for compatibility; nodes run in order, each using all its threads."""

    ORT_SEQUENTIAL = 0
    ORT_PARALLEL = 1


_ALLOW_SPINNING = "session.intra_op.allow_spinning"


def _allow_spinning(sess_options: Any) -> bool:
    """The ``session.intra_op.allow_spinning`` entry of ours or of an onnxruntime
    ``SessionOptions``: on unless set to ``"0"``."""
    get = getattr(sess_options, "get_session_config_entry", None)
    if get is None:
        return True
    try:
        return get(_ALLOW_SPINNING) != "0"
    except (_crossover.Error, RuntimeError):
        # Never added: the default.
        return True


class SessionOptions:
    """The subset of ``onnxruntime.SessionOptions`` crossover acts on.

    ``intra_op_num_threads`` (0 = all cores) sets the CPU worker threads. Of the session
    config entries, ``session.intra_op.allow_spinning`` (``"1"``, the default, or
    ``"0"``) says whether the CPU workers spin between close runs or sleep at once; other
    keys are kept and ignored, as are the other attributes, so that ONNX Runtime scripts
    run.
    """

    def __init__(self) -> None:
        self.intra_op_num_threads: int = 0
        self.inter_op_num_threads: int = 0
        self.graph_optimization_level: GraphOptimizationLevel = (
            GraphOptimizationLevel.ORT_ENABLE_ALL
        )
        self.execution_mode: ExecutionMode = ExecutionMode.ORT_SEQUENTIAL
        self.log_severity_level: int = 2
        self.log_verbosity_level: int = 0
        self.enable_profiling: bool = False
        self.enable_mem_pattern: bool = True
        self.enable_cpu_mem_arena: bool = True
        self.optimized_model_filepath: str = ""
        self._config: Dict[str, str] = {}

    def add_session_config_entry(self, key: str, value: str) -> None:
        if not isinstance(key, str) or not isinstance(value, str):
            raise _crossover.InvalidArgument(
                f"a session config entry is two strings, got {type(key).__name__} "
                f"and {type(value).__name__}"
            )
        if key == _ALLOW_SPINNING and value not in ("0", "1"):
            raise _crossover.InvalidArgument(
                f'{_ALLOW_SPINNING} must be "0" or "1", got {value!r}'
            )
        self._config[key] = value

    def get_session_config_entry(self, key: str) -> str:
        try:
            return self._config[key]
        except KeyError:
            raise _crossover.InvalidArgument(
                f"no session config entry {key!r} was added"
            ) from None


class RunOptions:
    """Accepted by ``run`` for compatibility; crossover has no per-run options yet."""

    def __init__(self) -> None:
        self.log_severity_level: int = 2
        self.run_tag: str = ""


class NodeArg:
    """An input or output of the model, as ``onnxruntime.NodeArg``.

    ``shape`` holds an int per fixed dimension, the name of a symbolic one (``"batch"``)
    and None for an unknown one; it is None when the rank is unknown.
    """

    __slots__ = ("name", "shape", "type")

    def __init__(
        self, name: str, type: Optional[str], shape: Optional[List[Union[int, str, None]]]
    ) -> None:
        self.name = name
        self.type = type
        self.shape = shape

    def __repr__(self) -> str:
        return f"NodeArg(name={self.name!r}, type={self.type!r}, shape={self.shape!r})"


@dataclass(frozen=True)
class ModelMetadata:
    """As ``onnxruntime.ModelMetadata``."""

    producer_name: str
    graph_name: str
    domain: str
    description: str
    graph_description: str
    version: int
    custom_metadata_map: Dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StageTimings:
    """Where a run's time went, in seconds."""

    queue: float
    upload: float
    compute: float
    download: float

    @property
    def total(self) -> float:
        return self.queue + self.upload + self.compute + self.download


@dataclass(frozen=True)
class RunInfo:
    """The outputs of a run, the device that ran it and its stage timings."""

    outputs: List[np.ndarray]
    device: str
    timings: StageTimings
    peak_bytes: int


@dataclass(frozen=True)
class MemoryUsage:
    """Bytes a session holds on one device."""

    weights: int
    workspace: int
    peak: int


class ProfileTable(list):  # type: ignore[type-arg]
    """Records of ``InferenceSession.profile``: one dict per (device, batch size)."""

    def plot(self, ax: Any = None) -> Any:
        """Latency and throughput against batch size per device, with matplotlib."""
        try:
            import matplotlib.pyplot as plt
        except ImportError as e:
            raise ImportError("ProfileTable.plot needs matplotlib: pip install matplotlib") from e
        if ax is None:
            _, ax = plt.subplots(1, 2, figsize=(10, 4))
        devices = sorted({r["device"] for r in self})
        for d in devices:
            rows = sorted((r for r in self if r["device"] == d), key=lambda r: r["batch"])
            batches = [r["batch"] for r in rows]
            ax[0].plot(batches, [r["latency_s"] * 1e3 for r in rows], marker="o", label=d)
            ax[1].plot(batches, [r["throughput"] for r in rows], marker="o", label=d)
        for a, title in zip(ax, ("latency (ms)", "throughput (samples/s)")):
            a.set_xscale("log", base=2)
            a.set_xlabel("batch size")
            a.set_title(title)
            a.legend()
        return ax


def devices() -> List[Dict[str, Any]]:
    """Every device on this machine, usable or not, and why not."""
    return _crossover.devices()


def _devices_from_providers(providers: Sequence[Any]) -> List[str]:
    """ONNX Runtime's provider list as crossover devices, in order of preference.

    As in ONNX Runtime, a known provider this build cannot run is skipped with a warning
    and the CPU is always there as the last resort.
    """
    devices: List[str] = []
    for p in providers:
        name, opts = (p[0], p[1]) if isinstance(p, (tuple, list)) else (p, {})
        if not isinstance(name, str) or name not in _PROVIDER_DEVICE:
            raise _crossover.InvalidArgument(
                f"unknown provider {name!r}; crossover understands {get_all_providers()}"
            )
        if name not in get_available_providers():
            warnings.warn(
                f"{name} is not available in this build of crossover; using the CPU",
                RuntimeWarning,
                stacklevel=3,
            )
            continue
        kind = _PROVIDER_DEVICE[name]
        device = kind if kind == "cpu" else f"{kind}:{int(opts.get('device_id', 0))}"
        if device not in devices:
            devices.append(device)
    return devices or ["cpu"]


class InferenceSession:
    """A model compiled for its devices, with ONNX Runtime's interface.

    ``path_or_bytes``: a path (str or ``os.PathLike``) to an ``.onnx`` file, or its bytes.
    ``sess_options``, ``providers``, ``provider_options``: as in ONNX Runtime;
    ``providers`` is an alternative to ``devices``, which names crossover devices:
    ``"auto"`` (every device this build can use), ``"cpu"``, or a list such as ``["cpu"]``.
    ``policy`` picks the device per request: ``"latency"``, ``"throughput"``,
    ``"cost"`` (with ``prices={"cpu": 0.10, "cuda:0": 2.50}`` in dollars per hour and a
    ``p99_ms`` target), ``"round-robin"`` or ``"pinned:<device>"``.
    ``threads``: CPU worker threads (default: all cores, or
    ``sess_options.intra_op_num_threads`` when set).
    """

    def __init__(
        self,
        path_or_bytes: Union[str, bytes, "os.PathLike[str]"],
        sess_options: Optional[SessionOptions] = None,
        providers: Optional[Sequence[Any]] = None,
        provider_options: Optional[Sequence[Dict[str, Any]]] = None,
        *,
        devices: Union[str, Sequence[str]] = "auto",
        policy: str = "latency",
        threads: Optional[int] = None,
        prices: Optional[Mapping[str, float]] = None,
        p99_ms: Optional[float] = None,
    ) -> None:
        if providers is not None:
            if devices != "auto":
                raise _crossover.InvalidArgument(
                    "give either providers (ONNX Runtime names) or devices, not both"
                )
            if provider_options is not None:
                if len(provider_options) != len(providers):
                    raise _crossover.InvalidArgument(
                        "provider_options must have one entry per provider"
                    )
                providers = [(p, o) for p, o in zip(providers, provider_options)]
            devices = _devices_from_providers(providers)
        if threads is None and sess_options is not None:
            n = getattr(sess_options, "intra_op_num_threads", 0)
            threads = n if n and n > 0 else None
        allow_spinning = _allow_spinning(sess_options)
        if isinstance(path_or_bytes, (bytearray, memoryview)):
            path_or_bytes = bytes(path_or_bytes)
        self._sess = _crossover.Session(
            path_or_bytes,
            devices=devices,
            policy=policy,
            threads=threads,
            prices=dict(prices) if prices is not None else None,
            p99_ms=p99_ms,
            allow_spinning=allow_spinning,
        )
        self._sess_options = sess_options if sess_options is not None else SessionOptions()
        self._model_path = None if isinstance(path_or_bytes, bytes) else os.fspath(path_or_bytes)
        self._inputs = [NodeArg(*v) for v in self._sess.inputs()]
        self._outputs = [NodeArg(*v) for v in self._sess.outputs()]

    # ONNX Runtime's interface.

    def run(
        self,
        output_names: Optional[Sequence[str]],
        input_feed: Mapping[str, np.ndarray],
        run_options: Optional[RunOptions] = None,
    ) -> List[np.ndarray]:
        """Runs the model; ``output_names`` None returns every output in model order."""
        return self._sess.run(output_names, input_feed)

    def get_inputs(self) -> List[NodeArg]:
        return list(self._inputs)

    def get_outputs(self) -> List[NodeArg]:
        return list(self._outputs)

    def get_overridable_initializers(self) -> List[NodeArg]:
        """crossover does not let inputs override initializers: always empty."""
        return []

    def get_modelmeta(self) -> ModelMetadata:
        return ModelMetadata(**self._sess.modelmeta())

    def get_providers(self) -> List[str]:
        """The devices as ONNX Runtime provider names, in order of preference."""
        return [_DEVICE_PROVIDER[d.split(":")[0]] for d in self._sess.devices]

    def get_provider_options(self) -> Dict[str, Dict[str, str]]:
        return {p: {} for p in self.get_providers()}

    def get_session_options(self) -> SessionOptions:
        return self._sess_options

    # crossover's additions.

    @property
    def devices(self) -> List[str]:
        """The crossover devices this session may run on (``"cpu"``, ``"cuda:0"``...)."""
        return self._sess.devices

    @property
    def policy(self) -> str:
        return self._sess.policy

    @property
    def model_path(self) -> Optional[str]:
        return self._model_path

    def run_with_info(
        self,
        output_names: Optional[Sequence[str]],
        input_feed: Mapping[str, np.ndarray],
    ) -> RunInfo:
        """Like ``run``, plus the device that ran the request and its stage timings."""
        outputs, device, (queue, upload, compute, download), peak = self._sess.run_with_info(
            output_names, input_feed
        )
        return RunInfo(outputs, device, StageTimings(queue, upload, compute, download), peak)

    def memory(self) -> Dict[str, MemoryUsage]:
        """Bytes held per device: weights, per-run workspace and the peak seen so far."""
        return {d: MemoryUsage(*m) for d, m in self._sess.memory().items()}

    def stats(self) -> List[Dict[str, Any]]:
        """Per-device counters since the session started: requests, samples, runs,
        errors, faults, busy and queued seconds, p50/p95/p99 latency, mean batch."""
        return self._sess.stats()

    def profile(self, max_batch: int = 32, time_budget_s: float = 30.0) -> "ProfileTable":
        """Measures every device at batch sizes 1, 2, 4, ... up to ``max_batch``.

        Returns one record per (device, batch): ``pandas.DataFrame(session.profile())``
        takes it directly, and ``.plot()`` draws latency and throughput against batch size.
        """
        return ProfileTable(self._sess.profile(max_batch=max_batch, time_budget_s=time_budget_s))

    def __repr__(self) -> str:
        inputs = ", ".join(f"{i.name}: {i.type}{i.shape}" for i in self._inputs)
        return f"InferenceSession(devices={self.devices}, policy={self.policy!r}, inputs=[{inputs}])"


__all__: Tuple[str, ...] = (
    "ExecutionMode",
    "GraphOptimizationLevel",
    "InferenceSession",
    "MemoryUsage",
    "ModelMetadata",
    "NodeArg",
    "ProfileTable",
    "RunInfo",
    "RunOptions",
    "SessionOptions",
    "StageTimings",
    "devices",
    "get_all_providers",
    "get_available_providers",
    "get_device",
)
