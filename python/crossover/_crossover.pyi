"""The extension module; ``crossover`` wraps it with ONNX Runtime's names."""

import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

__version__: str

class Error(Exception):
    """Base class of every error crossover raises."""

class InvalidArgument(Error):
    """The caller's inputs are wrong: names, dtypes, shapes, values, options."""

class InvalidModel(Error):
    """The model file is missing, unreadable, malformed or inconsistent."""

class Unsupported(Error):
    """Valid ONNX, or a valid option, that crossover does not implement."""

class DeviceError(Error):
    """A device failed."""

_Shape = Optional[List[Union[int, str, None]]]

class Overloaded(Error):
    """Every device queue that could take the request is full; retry later."""

class DeadlineExceeded(Error):
    """The request waited in a queue past its deadline."""

def devices() -> List[Dict[str, object]]: ...

class Session:
    def __init__(
        self,
        model: Union[str, bytes, "os.PathLike[str]"],
        devices: Union[str, Sequence[str], None] = None,
        policy: str = "latency",
        threads: Optional[int] = None,
        prices: Optional[Dict[str, float]] = None,
        p99_ms: Optional[float] = None,
        allow_spinning: bool = True,
    ) -> None: ...
    def inputs(self) -> List[Tuple[str, Optional[str], _Shape]]: ...
    def outputs(self) -> List[Tuple[str, Optional[str], _Shape]]: ...
    def run(
        self, output_names: Optional[Sequence[str]], input_feed: Mapping[str, np.ndarray]
    ) -> List[np.ndarray]: ...
    def run_with_info(
        self, output_names: Optional[Sequence[str]], input_feed: Mapping[str, np.ndarray]
    ) -> Tuple[List[np.ndarray], str, Tuple[float, float, float, float], int]: ...
    def memory(self) -> Dict[str, Tuple[int, int, int]]: ...
    def stats(self) -> List[Dict[str, object]]: ...
    def profile(self, max_batch: int = 32, time_budget_s: float = 30.0) -> List[Dict[str, object]]: ...
    def modelmeta(self) -> Dict[str, object]: ...
    @property
    def devices(self) -> List[str]: ...
    @property
    def policy(self) -> str: ...
    @property
    def model_hash(self) -> str: ...

def _time_rust_runs(session: Session, input_feed: Mapping[str, np.ndarray], n: int) -> List[float]:
    """Seconds per call of `n` Rust-side runs of `session` (for `python/bench/overhead.py`)."""
