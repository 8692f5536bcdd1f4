"""Import the reference ``nsgt`` package (0.18) with a numpy-2 fix.

nsgt 0.18 calls ``np.clip(int_array, min_win, np.inf, out=int_array)``, which numpy >= 2 rejects
(float output into an int array). We route that one call through ``np.clip(..., None)``; nothing
else of the package is changed, so its coefficients stay the reference.
"""
from __future__ import annotations

import warnings

import numpy as np

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import nsgt  # noqa: F401
    import nsgt.nsgfwin_sl as _sl


class _NumpyShim:
    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def clip(a, lo, hi, out=None):
        return np.clip(a, lo, None if hi == np.inf else hi, out=out)


_sl.np = _NumpyShim()

from nsgt import NSGT, NSGT_sliced, LinScale, LogScale, MelScale, OctScale  # noqa: E402

__all__ = ["NSGT", "NSGT_sliced", "LinScale", "LogScale", "MelScale", "OctScale"]
