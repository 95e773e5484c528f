import numpy as np
from numpy.typing import NDArray

def search_right(haystack: NDArray[np.int64], needles: NDArray[np.int64], out: NDArray[np.int64], /) -> None: ...
