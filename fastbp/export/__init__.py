"""Export trained networks for inference without fastbp.

* :func:`to_onnx` -- an ONNX graph (``Gemm`` + activations), run by
  onnxruntime or any ONNX runtime; needs ``pip install fastbp[onnx]``.
* :func:`to_c` -- one self-contained C99 header: weights as ``static const``
  arrays and a ``<name>_predict(x, y, n)`` function, no allocation, only
  ``exp``/``tanh``/``log`` from libm.

Both accept a :class:`fastbp.MLP` or a fitted
:class:`fastbp.sklearn.MLPClassifier` (exports ``predict_proba``) /
:class:`fastbp.sklearn.MLPRegressor`, and compute what ``predict`` computes
in inference mode, batch norm folded into the weights.
"""

from .c_header import to_c
from .onnx_graph import to_onnx

__all__ = ["to_onnx", "to_c"]
