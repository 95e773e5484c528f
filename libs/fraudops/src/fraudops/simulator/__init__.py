"""Transaction simulator: the Fraud Detection Handbook's generator, drift scenarios, late labels, real data.

    from fraudops.simulator import DriftSpec, SimulatorConfig, derive_labels, simulate

    result = simulate(SimulatorConfig(drifts=(DriftSpec("card_testing", 120),)))
    result.transactions   # one row per transaction, labels in is_fraud / fraud_scenario
    labels = derive_labels(result.transactions)   # when each verdict becomes known

fraud_scenario codes: 0 genuine; 1 amount above 220; 2 compromised terminal; 3 compromised customer
(amount x5); 4 card testing (drift). The package imports pandas; import it lazily from light modules.
"""

from fraudops.simulator.config import DriftSpec, HandbookParameters, SimulatorConfig
from fraudops.simulator.drift import CARD_TESTING, DRIFT_SCENARIOS, DriftScenario, drift_scenario
from fraudops.simulator.generator import (
    COLUMNS,
    LABEL_COLUMNS,
    PUBLISHED_STATISTICS,
    ProgressCallback,
    SimulationResult,
    simulate,
)
from fraudops.simulator.labels import LabelDelayConfig, TriangularDelay, derive_labels
from fraudops.simulator.real_data import (
    ULB_CREDITCARD,
    ColumnMapping,
    ConstantId,
    HashedId,
    apply_mapping,
    load_real_dataset,
)

__all__ = [
    "CARD_TESTING",
    "COLUMNS",
    "DRIFT_SCENARIOS",
    "LABEL_COLUMNS",
    "PUBLISHED_STATISTICS",
    "ULB_CREDITCARD",
    "ColumnMapping",
    "ConstantId",
    "DriftScenario",
    "DriftSpec",
    "HandbookParameters",
    "HashedId",
    "LabelDelayConfig",
    "ProgressCallback",
    "SimulationResult",
    "SimulatorConfig",
    "TriangularDelay",
    "apply_mapping",
    "derive_labels",
    "drift_scenario",
    "load_real_dataset",
    "simulate",
]
