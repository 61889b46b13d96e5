"""crossover: an ONNX inference runtime that measures the CPU/GPU tradeoff.

The API follows ONNX Runtime's, so ``import crossover as onnxruntime`` runs most
ONNX Runtime scripts unchanged::

    import crossover
    session = crossover.InferenceSession("model.onnx")
    outputs = session.run(None, {"x": x})
"""

from ._crossover import (
    DeviceError,
    Error,
    InvalidArgument,
    InvalidModel,
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
    RunInfo,
    RunOptions,
    SessionOptions,
    StageTimings,
    get_all_providers,
    get_available_providers,
    get_device,
)

__all__ = [
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
    "RunInfo",
    "RunOptions",
    "SessionOptions",
    "StageTimings",
    "Unsupported",
    "__version__",
    "get_all_providers",
    "get_available_providers",
    "get_device",
]
