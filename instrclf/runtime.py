"""TensorFlow, imported once and quietly: start-up noise out of the logs, real errors kept.

On a machine without a GPU driver TensorFlow prints, at every start, an ``E ... failed
call to cuInit`` line and a handful of informational ones, which read as failures in a
stage's log. Importing TensorFlow through this module (``from .runtime import tf``, as the
project's models and training do) runs the import and the device discovery with the
process's stderr captured, then replays every captured line except the known notices
listed in :data:`NOISE`; training runs inside :func:`filtered_stderr` too, and so does the
first LiteRT interpreter, which the classifier runs without TensorFlow: importing this
module alone imports no TensorFlow.
"""

import contextlib
import os
import re
import sys
import tempfile

#: Start-up notices that say nothing is wrong (no GPU driver on a CPU machine, CPU features).
NOISE = re.compile(
    r"cudart_stub\.cc|failed call to cuInit|cuda_platform\.cc|cpu_feature_guard\.cc|"
    r"To enable the following instructions|oneDNN custom operations are on|"
    r"Unable to register cu(DNN|FFT|BLAS) factory|computation placer already registered|"
    r"All log messages before absl::InitializeLog|TF-TRT Warning|port\.cc:\d+\] oneDNN|"
    r"NodeDef mentions attribute use_unbounded_threadpool|"  # tf.data, harmless: "unknown attributes will be ignored"
    r"INFO: Created TensorFlow Lite XNNPACK delegate"  # LiteRT's first interpreter, with or without TensorFlow
)


@contextlib.contextmanager
def filtered_stderr(noise=NOISE):
    """Capture file descriptor 2 (native and Python writes) and replay it without ``noise`` lines."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode("utf-8", "replace").splitlines():
                if not noise.search(line):
                    print(line, file=sys.stderr)


def _import():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # INFO lines off; warnings and errors stay
    with filtered_stderr():
        import tensorflow

        tensorflow.config.list_physical_devices()  # device discovery (cuInit) happens here, inside the filter
    return tensorflow


def __getattr__(name):
    """``tf``: TensorFlow, imported on first use (``from .runtime import tf``), so :func:`filtered_stderr` costs no import."""
    if name == "tf":
        globals()["tf"] = _import()
        return globals()["tf"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
