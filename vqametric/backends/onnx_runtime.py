"""ONNX export of the fast head and an onnxruntime runner.

``export_onnx(head, path)`` writes one self-contained ``.onnx`` file (weights embedded, dynamic
batch ``N``) with the head/sampling metadata in ``metadata_props``. :class:`OnnxHead` runs it with
the CUDA execution provider when onnxruntime-gpu and a GPU are present (inputs on the GPU are bound
in place through IO binding, no host copy), else on the CPU.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from ..errors import BackendUnavailable
from ..weightfile import FORMAT_KEY, encode_head_metadata, read_head_metadata
from .head import FastHead, HeadConfig, head_vocabulary

INPUT_NAMES = ("fragments", "global_view")


def _import_ort():
    try:
        import onnxruntime as ort  # optional: the onnx / onnx-gpu extra
    except ImportError as e:
        raise BackendUnavailable("onnxruntime is not installed; `pip install vqametric[onnx]` (CPU) or "
                                 "`pip install vqametric[onnx-gpu]` (CUDA), or use runtime='torch'") from e
    return ort


def export_onnx(head: FastHead, path: str | os.PathLike, sampling=None, name: str = "custom-head",
                version: str = "0", opset: int = 18) -> str:
    """Export ``head`` (eval mode, float32) to a single ONNX file; returns the path."""
    try:
        import onnx  # optional: ONNX export (the onnx extra)
    except ImportError as e:
        raise BackendUnavailable("exporting needs the onnx and onnxscript packages; "
                                 "`pip install vqametric[onnx]`") from e
    path = os.fspath(path)
    head = head.eval().float().cpu()
    sampling = sampling or head.sampling_config()
    output_names = head_vocabulary(head.config.arch)[0]
    export_graph(_OnnxWrapper(head, output_names), head.example_inputs(2), output_names, path, opset)
    model = onnx.load(path)
    _strip_trace_metadata(model)
    meta = encode_head_metadata(asdict(head.config), sampling.to_dict(), name, version)
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = FORMAT_KEY, meta
    onnx.save(model, path)
    return path


def export_graph(module: torch.nn.Module, example_inputs: tuple[torch.Tensor, ...], output_names, path: str,
                 opset: int = 18) -> str:
    """Export ``module(fragments, global_view) -> tuple`` to one ONNX file (weights embedded,
    dynamic batch ``N``, inputs named :data:`INPUT_NAMES`, outputs ``output_names``), quietly."""
    n = torch.export.Dim("n", min=1, max=4096)
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the exporter logs one line per optional torchvision op it skips
    with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module, example_inputs, dynamo=True, external_data=False, input_names=list(INPUT_NAMES),
            output_names=list(output_names), opset_version=opset, dynamic_shapes=({0: n}, {0: n}), verbose=False)
    quiet.setLevel(level)
    program.save(path, external_data=False)
    return path


def _strip_trace_metadata(model) -> None:
    """Remove what the exporter records per node (Python stack traces with the exporting
    machine's source paths, module names): the file describes the graph, not its author's disk."""
    import onnx  # optional: ONNX export (the onnx extra)

    graphs = [model.graph, *model.functions]
    while graphs:
        g = graphs.pop()
        del g.metadata_props[:]
        if isinstance(g, onnx.GraphProto):   # a function's inputs and outputs are plain names
            for value in (*g.value_info, *g.input, *g.output):
                del value.metadata_props[:]
        for node in g.node:
            del node.metadata_props[:]
            node.doc_string = ""
            for a in node.attribute:
                graphs.extend([a.g] if a.HasField("g") else [])
                graphs.extend(a.graphs)


class _OnnxWrapper(torch.nn.Module):
    """Returns the head's outputs as a tuple in ``output_names`` order."""

    def __init__(self, head: FastHead, output_names: tuple[str, ...]):
        super().__init__()
        self.head = head
        self.output_names = output_names

    def forward(self, fragments, global_view):
        out = self.head(fragments, global_view)
        return tuple(out[k] for k in self.output_names)


class OnnxHead:
    """Run an exported head with onnxruntime. Call with the same tensors as :class:`FastHead`."""

    def __init__(self, path: str | os.PathLike, device: str | torch.device = "cpu", threads: int | None = None):
        ort = _import_ort()
        self.path = os.fspath(path)
        self.metadata: dict[str, Any] = read_head_metadata(self.path)
        self.device = torch.device(device)
        providers = ["CPUExecutionProvider"]
        if self.device.type == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise BackendUnavailable("device='cuda' needs onnxruntime-gpu (`pip install vqametric[onnx-gpu]`, "
                                         "after `pip uninstall onnxruntime`), or use runtime='torch'")
            providers = [("CUDAExecutionProvider", {"device_id": self.device.index or 0}), "CPUExecutionProvider"]
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(self.path, sess_options=opts, providers=providers)
        config = HeadConfig.from_dict(self.metadata["head"])
        self.output_names, self.distortions, self.attribution_classes = head_vocabulary(config.arch)
        # second dimension of each output (absent: one value per segment), for IO binding
        self._widths = {"attribution": len(self.attribution_classes), "severity": len(self.distortions),
                        "motion_steps": max(config.frames_per_segment - 1, 1)}

    def __call__(self, fragments: torch.Tensor, global_view: torch.Tensor) -> dict[str, torch.Tensor]:
        inputs = {"fragments": fragments, "global_view": global_view}
        if self.device.type == "cuda" and fragments.is_cuda:
            return self._run_bound(inputs)
        feed = {k: v.detach().float().cpu().numpy() for k, v in inputs.items()}
        outs = self.session.run(list(self.output_names), feed)
        return {k: torch.from_numpy(np.asarray(v)).to(self.device) for k, v in zip(self.output_names, outs)}

    def _run_bound(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """IO binding: GPU input and output buffers are handed to onnxruntime in place."""
        binding = self.session.io_binding()
        dev_id = self.device.index or 0
        keep = []
        for name, t in inputs.items():
            t = t.detach().float().contiguous()
            keep.append(t)
            binding.bind_input(name, "cuda", dev_id, np.float32, list(t.shape), t.data_ptr())
        n = keep[0].shape[0]
        outs = {name: torch.empty((n, self._widths[name]) if name in self._widths else (n,), device=self.device)
                for name in self.output_names}
        for name, t in outs.items():
            binding.bind_output(name, "cuda", dev_id, np.float32, list(t.shape), t.data_ptr())
        self.session.run_with_iobinding(binding)
        return outs

