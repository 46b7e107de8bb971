"""TensorRT (10.x API): ONNX → engine, cached on disk; one execution context per engine worker.

NOT YET VERIFIED: TensorRT cannot be installed on any machine this project has (its PyPI packages
fetch their libraries from a host we cannot reach). This is written against TensorRT 10's Python API
(named tensors, ``execute_async_v3``) and its tests run only where ``import tensorrt`` works.

- Engines and the timing cache live in ``<cache>/engines``, keyed by the model's sha256, the GPU's name,
  TensorRT's version, the precision and the batch range, so a rebuild happens only when one changes.
- fp16 sets the FP16 builder flag; int8 also sets INT8 with an entropy calibrator whose cache file
  (``calibration_cache``) is read if present (no calibration data needed then) and written after.
- Input and output live in device buffers sized for the largest batch; their addresses are set on the
  context once. Each batch is normalized into the input buffer on the engine's CuPy stream (uint8 NHWC
  → float NCHW minus means), ``execute_async_v3`` runs on the same stream, and the scores come back to
  pinned host memory; completion reaches asyncio through a host callback.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from flowgraph import DependencyMissing

from ..preprocess import MLPERF_MEANS
from .backend import Backend, EngineParams, backend

__all__ = ["TensorRTBackend", "TensorRTEngine", "TensorRTParams", "engine_cache_key"]


class TensorRTParams(EngineParams):
    model_config = ConfigDict(title="backend tensorrt")

    backend: Literal["tensorrt"] = "tensorrt"
    batch_sizes: list[int] = Field(
        default_factory=list, description="batch sizes to build for (the largest bounds the profile)"
    )
    cache_dir: str | None = Field(None, description="engine and timing caches (default: <cache>/engines)")
    calibration_cache: str | None = Field(None, description="int8: calibration cache file")

    @field_validator("threads")
    @classmethod
    def _gpu_only(cls, threads: int | None) -> int | None:
        if threads is not None:
            raise ValueError("tensorrt computes on the GPU: CPU threads do not apply (set threads: null)")
        return threads


def _import_tensorrt() -> Any:
    try:
        import tensorrt
    except ImportError as exc:
        raise DependencyMissing(
            "the tensorrt backend needs TensorRT 10: pip install 'flowgraph[tensorrt]' "
            "on a machine where NVIDIA's TensorRT libraries can be installed"
        ) from exc
    return tensorrt


def engine_cache_key(model: Path, gpu_name: str, trt_version: str, precision: str, max_batch: int) -> str:
    digest = hashlib.sha256(model.read_bytes()).hexdigest()[:16]
    gpu = "".join(c if c.isalnum() else "-" for c in gpu_name)
    return f"{model.stem}-{digest}-{gpu}-trt{trt_version}-{precision}-b{max_batch}"


class _EntropyCalibrator:
    """Factory for a TensorRT int8 calibrator that reads/writes ``cache`` (created lazily: it must
    subclass ``tensorrt.IInt8EntropyCalibrator2``, which only exists once tensorrt is imported)."""

    @staticmethod
    def create(trt: Any, cache: Path, batches: list[Any], input_bytes: int) -> Any:
        import cupy

        class Calibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc, name-defined]
            def __init__(self) -> None:
                trt.IInt8EntropyCalibrator2.__init__(self)
                self.batches = iter(batches)
                self.device = cupy.empty(input_bytes // 4, cupy.float32)

            def get_batch_size(self) -> int:
                return int(batches[0].shape[0]) if batches else 1

            def get_batch(self, names: list[str]) -> list[int] | None:
                batch = next(self.batches, None)
                if batch is None:
                    return None
                self.device[: batch.size].set(batch.ravel())
                return [int(self.device.data.ptr)]

            def read_calibration_cache(self) -> bytes | None:
                return cache.read_bytes() if cache.exists() else None

            def write_calibration_cache(self, data: bytes) -> None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                cache.write_bytes(bytes(data))

        return Calibrator()


class TensorRTEngine:
    def __init__(self, model: Path, params: Any, engine_index: int, context: Any) -> None:
        trt = _import_tensorrt()
        import cupy

        from ..gpu import new_stream

        self.trt, self.cupy = trt, cupy
        self.name = f"tensorrt[{engine_index}]"
        self.precision = params.precision
        self.max_batch = max(params.batch_sizes or [256])
        cache_dir = Path(params.cache_dir or context.cache_dir / "engines")
        cache_dir.mkdir(parents=True, exist_ok=True)
        gpu = cupy.cuda.runtime.getDeviceProperties(0)["name"]
        gpu_name = gpu.decode() if isinstance(gpu, bytes) else str(gpu)
        key = engine_cache_key(Path(model), gpu_name, trt.__version__, params.precision, self.max_batch)
        engine_file = cache_dir / f"{key}.engine"
        self.logger = trt.Logger(trt.Logger.WARNING)
        if not engine_file.exists():
            context.announce(f"building TensorRT engine {engine_file.name} (once) …")
            engine_file.write_bytes(self._build(Path(model), params, cache_dir / "timing.cache"))
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(engine_file.read_bytes())
        if self.engine is None:
            raise RuntimeError(f"TensorRT could not load {engine_file}; delete it to rebuild")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_name = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self.output_name = params.output or next(
            n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT
        )
        in_shape = tuple(self.engine.get_tensor_shape(self.input_name))
        out_shape = tuple(self.engine.get_tensor_shape(self.output_name))
        self.classes = int(out_shape[-1])
        self.in_dtype = (
            cupy.float16
            if self.engine.get_tensor_dtype(self.input_name) == trt.DataType.HALF
            else cupy.float32
        )
        self.input = cupy.empty((self.max_batch, *in_shape[1:]), self.in_dtype)
        self.output = cupy.empty((self.max_batch, self.classes), cupy.float32)
        # Addresses set once: these buffers live as long as the context.
        self.context.set_tensor_address(self.input_name, int(self.input.data.ptr))
        self.context.set_tensor_address(self.output_name, int(self.output.data.ptr))
        self.stream = new_stream()
        self.mean = cupy.asarray(MLPERF_MEANS, cupy.float32).reshape(1, 3, 1, 1)
        self.host = cupy.cuda.alloc_pinned_memory(self.max_batch * self.classes * 4)
        self._offload = context.offload

    def _build(self, model: Path, params: Any, timing_file: Path) -> bytes:
        trt = self.trt
        builder = trt.Builder(self.logger)
        network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse(model.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ValueError(f"TensorRT could not parse {model}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 4 << 30)
        timing = config.create_timing_cache(timing_file.read_bytes() if timing_file.exists() else b"")
        config.set_timing_cache(timing, False)
        if params.precision in ("fp16", "int8"):
            config.set_flag(trt.BuilderFlag.FP16)
        if params.precision == "bf16":
            config.set_flag(trt.BuilderFlag.BF16)
        if params.precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)
            cache = Path(params.calibration_cache or timing_file.parent / f"{model.stem}.calib")
            if not cache.exists():
                raise ValueError(f"int8 needs a calibration cache at {cache} (calibration_cache param)")
            config.int8_calibrator = _EntropyCalibrator.create(
                trt, cache, [], 4 * 3 * 224 * 224 * self.max_batch
            )
        name = network.get_input(0).name
        shape = tuple(network.get_input(0).shape)
        profile = builder.create_optimization_profile()
        opt = max(1, self.max_batch // 2)
        profile.set_shape(name, (1, *shape[1:]), (opt, *shape[1:]), (self.max_batch, *shape[1:]))
        config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise RuntimeError(f"TensorRT failed to build an engine for {model}")
        timing_file.write_bytes(bytes(config.get_timing_cache().serialize()))
        return bytes(serialized)

    def _launch(self, batch: Any) -> Any:
        cupy = self.cupy
        import numpy as np

        with self.stream:
            if batch.ready is not None:
                self.stream.wait_event(batch.ready)
            x = cupy.asarray(batch.array)
            n = x.shape[0]
            if x.dtype == cupy.uint8:  # NHWC → NCHW, minus means, into the engine's input buffer
                self.input[:n] = (x.transpose(0, 3, 1, 2).astype(cupy.float32) - self.mean).astype(
                    self.in_dtype
                )
            else:
                self.input[:n] = x.astype(self.in_dtype)
            self.context.set_input_shape(self.input_name, (n, *self.input.shape[1:]))
            if not self.context.execute_async_v3(self.stream.ptr):
                raise RuntimeError("TensorRT execute_async_v3 failed")
            host = np.frombuffer(self.host, np.float32, n * self.classes).reshape(n, self.classes)
            self.output[:n].get(stream=self.stream, out=host)
        return host

    async def launch(self, batch: Any) -> Any:
        from ..gpu import stream_done

        host = await self._offload(self._launch, batch)
        return host, asyncio.ensure_future(stream_done(self.stream, self._offload))

    async def collect(self, handle: Any) -> Any:
        host, done = handle
        await done
        return host.copy()  # the pinned buffer is reused by the next batch

    def bucket(self, n: int) -> int:
        return n

    def close(self) -> None:
        self.stream.synchronize()


@backend("tensorrt")
class TensorRTBackend(Backend):
    """NVIDIA TensorRT on the GPU (not verified here: see the module's docstring)."""

    Params = TensorRTParams

    @classmethod
    def check_environment(cls, params: EngineParams) -> str | None:
        if params.device != "cuda":
            return "the tensorrt backend runs on the GPU only: set device: cuda"
        return super().check_environment(params)

    @classmethod
    def load(cls, model: Path, params: Any, engine_index: int, context: Any) -> TensorRTEngine:
        return TensorRTEngine(model, params, engine_index, context)
