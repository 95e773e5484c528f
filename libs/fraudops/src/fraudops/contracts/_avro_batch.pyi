from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

def read_transactions(
    payloads: Sequence[bytes | None],
    header: bytes,
    max_bytes: int,
    earliest_ms: int,
    latest_ms: int,
    max_amount: float,
    /,
) -> tuple[list[int], list[str], list[str], list[str], list[int], list[float], list[int]]: ...
def write_score_results(
    header: bytes,
    transaction_ids: Sequence[str],
    customer_ids: Sequence[str],
    scores: NDArray[np.float64],
    decisions: NDArray[np.uint8],
    event_ms: NDArray[np.int64],
    reasons: Sequence[Sequence[tuple[str, float]]],
    model_part: bytes,
    times_tail: bytes,
    /,
) -> list[bytes]: ...
