"""crossover as an ``onnx.backend.base.Backend``, for ONNX's backend test suite and for
tools written against that interface::

    import crossover.onnx_backend as backend
    rep = backend.prepare(model)          # an onnx.ModelProto
    outputs = rep.run([x])

Needs the ``onnx`` package (``pip install crossover[onnx]``).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import onnx
from onnx import helper
from onnx.backend.base import Backend, BackendRep, Device, DeviceType, namedtupledict

from ._session import InferenceSession

# onnx's device names -> crossover devices this build can run on.
_DEVICES = {DeviceType.CPU: "cpu"}


def _device(device: str) -> str:
    kind = Device(device).type
    if kind not in _DEVICES:
        raise ValueError(f"crossover cannot run on device {device!r} in this build")
    return _DEVICES[kind]


class CrossoverRep(BackendRep):
    """A prepared model: an ``InferenceSession`` that takes inputs in graph order."""

    def __init__(self, session: InferenceSession) -> None:
        self.session = session
        self._input_names = [i.name for i in session.get_inputs()]
        self._output_names = [o.name for o in session.get_outputs()]

    def run(self, inputs: Union[Sequence[Any], Dict[str, Any], Any], **kwargs: Any) -> Tuple[Any, ...]:
        if isinstance(inputs, dict):
            feed = dict(inputs)
        else:
            if isinstance(inputs, np.ndarray):
                inputs = [inputs]
            if len(inputs) > len(self._input_names):
                raise ValueError(
                    f"the model takes {len(self._input_names)} inputs, got {len(inputs)}"
                )
            feed = dict(zip(self._input_names, inputs))
        # Scalars from the test data arrive as numpy scalars.
        feed = {k: v if isinstance(v, np.ndarray) else np.asarray(v) for k, v in feed.items()}
        outputs = self.session.run(None, feed)
        return namedtupledict("Outputs", self._output_names)(*outputs)


class CrossoverBackend(Backend):
    @classmethod
    def is_compatible(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> bool:
        return cls.supports_device(device)

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> CrossoverRep:
        super().prepare(model, device, **kwargs)
        session = InferenceSession(model.SerializeToString(), devices=_device(device))
        return CrossoverRep(session)

    @classmethod
    def run_model(
        cls, model: onnx.ModelProto, inputs: Any, device: str = "CPU", **kwargs: Any
    ) -> Tuple[Any, ...]:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(
        cls,
        node: onnx.NodeProto,
        inputs: Any,
        device: str = "CPU",
        outputs_info: Optional[Sequence[Tuple[np.dtype, Tuple[int, ...]]]] = None,
        **kwargs: Any,
    ) -> Tuple[Any, ...]:
        """Runs one node: wraps it in a model whose inputs are typed from ``inputs``."""
        super().run_node(node, inputs, device=device, outputs_info=outputs_info)
        arrays = [np.asarray(x) for x in inputs]
        names = [n for n in node.input if n]
        if len(names) != len(arrays):
            raise ValueError(f"node {node.name!r} has {len(names)} inputs, got {len(arrays)}")
        graph_inputs = [
            helper.make_tensor_value_info(
                n, helper.np_dtype_to_tensor_dtype(a.dtype), list(a.shape)
            )
            for n, a in zip(names, arrays)
        ]
        out_names = [n for n in node.output if n]
        opset = kwargs.get("opset_version", onnx.defs.onnx_opset_version())
        opsets = [helper.make_opsetid(node.domain or "", opset)]
        if outputs_info is not None:
            graph_outputs = [
                helper.make_tensor_value_info(
                    n, helper.np_dtype_to_tensor_dtype(np.dtype(dt)), list(shape)
                )
                for n, (dt, shape) in zip(out_names, outputs_info)
            ]
        else:
            # ONNX requires typed graph outputs: take them from shape inference.
            probe = helper.make_model(
                helper.make_graph([node], "run_node", graph_inputs, []), opset_imports=opsets
            )
            inferred = {
                v.name: v for v in onnx.shape_inference.infer_shapes(probe).graph.value_info
            }
            missing = [n for n in out_names if n not in inferred]
            if missing:
                raise ValueError(
                    f"cannot infer the types of outputs {missing} of node {node.op_type}; "
                    "pass outputs_info"
                )
            graph_outputs = [inferred[n] for n in out_names]
        graph = helper.make_graph([node], "run_node", graph_inputs, graph_outputs)
        model = helper.make_model(graph, opset_imports=opsets)
        return cls.run_model(model, dict(zip(names, arrays)), device)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        try:
            return Device(device).type in _DEVICES
        except Exception:
            return False


prepare = CrossoverBackend.prepare
run_model = CrossoverBackend.run_model
run_node = CrossoverBackend.run_node
supports_device = CrossoverBackend.supports_device
is_compatible = CrossoverBackend.is_compatible
