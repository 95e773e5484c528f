"""XGBoost's C prediction functions called straight, for every matrix the scorer sends.

XGBoost's Python wrapper costs more than the trees for a few rows, and ~110 µs on a batch of 1,000: input
type dispatch, a DMatrix object with feature names and types, and output conversion that defines a class per
call (garbage only the cycle collector frees). These classes call the same C functions with the arguments the wrapper passes for a
float32 numpy array and copy the same output. They rely on XGBoost internals (`_LIB`, the JSON
arguments), so each `make` checks the fast path against the public call on probe rows and gives None when
anything differs: the public call then serves.
"""

from __future__ import annotations

import ctypes
import json
import math
from collections.abc import Callable

import numpy as np
import xgboost
from numpy.typing import NDArray

Floats32 = NDArray[np.float32]

# XGBoost's prediction types (PredictionType in its C API): plain values, and Saabas contributions.
_VALUE = 0
_APPROX_CONTRIBUTIONS = 3


def _interface(values: Floats32) -> bytes:
    rows, width = values.shape
    return (
        f'{{"data": [{values.ctypes.data}, false], "strides": null, "typestr": "<f4", '
        f'"shape": [{rows}, {width}], "version": 3}}'
    ).encode()


def _probe(rows: int, width: int) -> Floats32:
    """Rows that reach many leaves: zeros, ones, missing values and large negatives, interleaved."""
    probe = np.zeros((rows, width), dtype=np.float32)
    probe[1::3] = 1.0
    probe[2::3] = np.nan
    probe[3::5] = -7.5e3
    return probe


class _Output:
    """The out-parameters of XGBoost's prediction functions, and a copy of what they point at."""

    def __init__(self) -> None:
        self.shape = ctypes.POINTER(ctypes.c_uint64)()
        self.dims = ctypes.c_uint64()
        self.values = ctypes.POINTER(ctypes.c_float)()

    def pointers(self) -> tuple[object, object, object]:
        return ctypes.byref(self.shape), ctypes.byref(self.dims), ctypes.byref(self.values)

    def copy(self, rows: int) -> Floats32:
        """The answer as (rows, columns); it lives in the booster's per-thread buffer until its next call."""
        dims = self.dims.value
        if dims not in (1, 2) or self.shape[0] != rows:
            raise ValueError(f"XGBoost answered a shape of {dims} dimensions for {rows} rows")
        columns = int(self.shape[1]) if dims == 2 else 1
        out = np.empty((rows, columns), dtype=np.float32)
        ctypes.memmove(out.ctypes.data, self.values, out.nbytes)
        return out


class _DirectCall:
    """What both fast paths share: the booster (which keeps its handle alive), XGBoost's library, the input
    check, and `_verified`, which keeps a fast path only if it answers probe rows as the public call does."""

    def __init__(self, booster: xgboost.Booster) -> None:
        from xgboost.core import _LIB, _check_call

        self._booster = booster
        self._lib = _LIB
        self._check = _check_call
        self._width = booster.num_features()

    def __call__(self, values: Floats32) -> Floats32:
        raise NotImplementedError

    def _require_dense(self, values: Floats32) -> int:
        """The number of rows, once `values` is known to be what the C functions are told it is."""
        dense = values.ndim == 2 and values.flags.c_contiguous and values.dtype == np.float32
        if not dense or values.shape[1] != self._width:
            raise ValueError(f"expected a C-contiguous float32 matrix of {self._width} columns")
        return int(values.shape[0])

    def _verified(self, public: Callable[[Floats32], Floats32], sizes: tuple[int, ...]) -> bool:
        try:
            probe = _probe(max(sizes), self._width)
            for rows in sizes:
                expected = np.asarray(public(probe[:rows]), dtype=np.float32)
                if not np.array_equal(self(probe[:rows]).reshape(expected.shape), expected, equal_nan=True):
                    return False
        except Exception:  # another XGBoost: the public call serves
            return False
        return True


class DensePredictor(_DirectCall):
    """`inplace_predict` (probabilities) of a C-contiguous float32 matrix."""

    def __init__(self, booster: xgboost.Booster) -> None:
        super().__init__(booster)
        # As Booster.inplace_predict builds them for predict_type="value" and no iteration range.
        self._arguments = json.dumps(
            {
                "type": _VALUE,
                "training": False,
                "iteration_begin": 0,
                "iteration_end": 0,
                "missing": math.nan,
                "strict_shape": False,
                "cache_id": 0,
            }
        ).encode()

    @classmethod
    def make(cls, booster: xgboost.Booster, largest: int) -> DensePredictor | None:
        """Checked on 1, 2 and `largest` rows against `inplace_predict`."""
        try:
            predictor = cls(booster)
        except Exception:  # another XGBoost, without these internals: the public call serves
            return None

        def public(values: Floats32) -> Floats32:
            return np.asarray(booster.inplace_predict(values, validate_features=False))

        return predictor if predictor._verified(public, (1, 2, largest)) else None

    def __call__(self, values: Floats32) -> Floats32:
        """One probability per row."""
        rows = self._require_dense(values)
        output = _Output()
        function = self._lib.XGBoosterPredictFromDense
        self._check(function(self._booster.handle, _interface(values), self._arguments, None, *output.pointers()))
        return output.copy(rows).reshape(rows)


class DenseContributions(_DirectCall):
    """`Booster.predict(DMatrix(values), pred_contribs=True, approx_contribs=True)`: Saabas contributions.

    The wrapper's DMatrix and predict cost ~150 µs a call beside XGBoost's own ~160 µs for a few rows.
    Here the DMatrix is made from the dense array by the C function the wrapper uses for numpy input, with
    `threads` threads (-1: all), predicted on and freed at once.
    """

    def __init__(self, booster: xgboost.Booster, threads: int) -> None:
        super().__init__(booster)
        # As DMatrix(numpy float32, missing=NaN, nthread=threads) and Booster.predict build them.
        self._matrix_arguments = json.dumps({"missing": math.nan, "nthread": threads, "data_split_mode": 0}).encode()
        self._arguments = json.dumps(
            {
                "type": _APPROX_CONTRIBUTIONS,
                "training": False,
                "iteration_begin": 0,
                "iteration_end": 0,
                "strict_shape": False,
            }
        ).encode()

    @classmethod
    def make(cls, booster: xgboost.Booster, threads: int) -> DenseContributions | None:
        """Checked on 1, 2 and 64 rows against the public call."""
        try:
            contributions = cls(booster, threads)
        except Exception:  # another XGBoost, without these internals: the public call serves
            return None

        def public(values: Floats32) -> Floats32:
            matrix = xgboost.DMatrix(values, nthread=threads)
            return np.asarray(
                booster.predict(matrix, pred_contribs=True, approx_contribs=True, validate_features=False)
            )

        return contributions if contributions._verified(public, (1, 2, 64)) else None

    def __call__(self, values: Floats32) -> Floats32:
        """Per row, each feature's contribution to the log-odds, then the bias."""
        rows = self._require_dense(values)
        matrix = ctypes.c_void_p()
        create = self._lib.XGDMatrixCreateFromDense
        self._check(create(_interface(values), self._matrix_arguments, ctypes.byref(matrix)))
        try:
            output = _Output()
            predict = self._lib.XGBoosterPredictFromDMatrix
            self._check(predict(self._booster.handle, matrix, self._arguments, *output.pointers()))
            return output.copy(rows)
        finally:
            self._check(self._lib.XGDMatrixFree(matrix))
