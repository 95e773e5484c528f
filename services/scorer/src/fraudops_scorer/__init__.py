"""Kafka consumer that scores every transaction, plus a synchronous scoring endpoint."""

import os

# XGBoost's OpenMP threads spin while they wait for work by default. The scorer shares its cores with the
# Kafka client, the event loop and often the broker: spinning threads take CPU from them and wait to be
# scheduled themselves. Sleeping waits measured better on a 2-core machine (`fraudops bench scorer --quick`,
# interleaved runs: 29.9k against 27.5k payments/s, p99 at 5,000/s 48 against 59 ms). libgomp reads this
# once, when XGBoost is first imported: so here, before any module of the scorer imports it. An operator's
# own value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
