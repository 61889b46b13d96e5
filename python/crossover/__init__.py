"""crossover: an ONNX inference runtime that measures the CPU/GPU tradeoff.

The API follows ONNX Runtime's, so ``import crossover as onnxruntime`` runs most
ONNX Runtime scripts unchanged::

    import crossover
    session = crossover.InferenceSession("model.onnx")
    outputs = session.run(None, {"x": x})
"""

from ._crossover import (
    DeadlineExceeded,
    DeviceError,
    Error,
    InvalidArgument,
    InvalidModel,
    Overloaded,
    Unsupported,
    __version__,
)
from ._session import (
    ExecutionMode,
    GraphOptimizationLevel,
    InferenceSession,
    MemoryUsage,
    ModelMetadata,
    NodeArg,
    ProfileTable,
    RunInfo,
    RunOptions,
    SessionOptions,
    StageTimings,
    devices,
    get_all_providers,
    get_available_providers,
    get_device,
)

__all__ = [
    "DeadlineExceeded",
    "DeviceError",
    "Error",
    "ExecutionMode",
    "GraphOptimizationLevel",
    "InferenceSession",
    "InvalidArgument",
    "InvalidModel",
    "MemoryUsage",
    "ModelMetadata",
    "NodeArg",
    "Overloaded",
    "ProfileTable",
    "RunInfo",
    "RunOptions",
    "SessionOptions",
    "StageTimings",
    "Unsupported",
    "__version__",
    "devices",
    "get_all_providers",
    "get_available_providers",
    "get_device",
]
