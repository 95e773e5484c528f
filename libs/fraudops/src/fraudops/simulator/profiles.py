"""Customer and terminal profiles, and each customer's terminals within the radius (Handbook 3.2.1–3.2.3)."""

from __future__ import annotations

import math

import numpy as np

from fraudops.simulator.config import SimulatorConfig
from fraudops.simulator.model import Floats, Ints, World


def build_world(config: SimulatorConfig, customer_rng: np.random.Generator, terminal_rng: np.random.Generator) -> World:
    """Draw the profiles: positions on the grid, spending habits, available terminals."""
    hb = config.handbook
    n = config.n_customers
    customer_x = customer_rng.uniform(0, hb.grid_size, n)
    customer_y = customer_rng.uniform(0, hb.grid_size, n)
    mean_amount = customer_rng.uniform(*hb.mean_amount_range, n)
    mean_nb_tx_per_day = customer_rng.uniform(*hb.mean_nb_tx_per_day_range, n)
    terminal_x = terminal_rng.uniform(0, hb.grid_size, config.n_terminals)
    terminal_y = terminal_rng.uniform(0, hb.grid_size, config.n_terminals)
    indptr, indices = terminals_within_radius(
        customer_x, customer_y, terminal_x, terminal_y, config.radius, hb.grid_size
    )
    return World(
        config=config,
        customer_x=customer_x,
        customer_y=customer_y,
        mean_amount=mean_amount,
        std_amount=mean_amount / 2,
        mean_nb_tx_per_day=mean_nb_tx_per_day,
        terminal_x=terminal_x,
        terminal_y=terminal_y,
        available_indptr=indptr,
        available_indices=indices,
    )


def _expand_ranges(starts: Ints, lengths: Ints) -> Ints:
    """Concatenation of `arange(s, s + n)` for each start `s` and length `n`, without a Python loop."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.cumsum(lengths) - lengths
    return np.arange(total, dtype=np.int64) - np.repeat(offsets - starts, lengths)


def terminals_within_radius(
    customer_x: Floats,
    customer_y: Floats,
    terminal_x: Floats,
    terminal_y: Floats,
    radius: float,
    grid_size: float,
) -> tuple[Ints, Ints]:
    """Terminals strictly closer than `radius` to each customer, as CSR (indptr, indices sorted per customer).

    Terminals are bucketed in square cells of side `radius`, so only the 3 x 3 cells around a customer are
    compared: linear in the number of customers and terminals, not their product.
    """
    n_customers = customer_x.shape[0]
    cells = max(1, math.ceil(grid_size / radius))

    def cell_of(v: Floats) -> Ints:
        return np.clip(np.floor(v / radius).astype(np.int64), 0, cells - 1)

    t_cell = cell_of(terminal_x) * cells + cell_of(terminal_y)
    by_cell = np.argsort(t_cell, kind="stable").astype(np.int64)
    cell_end = np.cumsum(np.bincount(t_cell, minlength=cells * cells)).astype(np.int64)
    cell_start = cell_end - np.bincount(t_cell, minlength=cells * cells)

    c_cx, c_cy = cell_of(customer_x), cell_of(customer_y)
    customer_ids = np.arange(n_customers, dtype=np.int64)
    pair_customers: list[Ints] = []
    pair_terminals: list[Ints] = []
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            nx, ny = c_cx + dx, c_cy + dy
            inside = (nx >= 0) & (nx < cells) & (ny >= 0) & (ny < cells)
            cell = nx[inside] * cells + ny[inside]
            starts, lengths = cell_start[cell], cell_end[cell] - cell_start[cell]
            customers = np.repeat(customer_ids[inside], lengths)
            terminals = by_cell[_expand_ranges(starts, lengths)]
            ddx = customer_x[customers] - terminal_x[terminals]
            ddy = customer_y[customers] - terminal_y[terminals]
            near = ddx * ddx + ddy * ddy < radius * radius
            pair_customers.append(customers[near])
            pair_terminals.append(terminals[near])
    customers = np.concatenate(pair_customers)
    terminals = np.concatenate(pair_terminals)
    order = np.lexsort((terminals, customers))
    indptr = np.zeros(n_customers + 1, dtype=np.int64)
    np.cumsum(np.bincount(customers, minlength=n_customers), out=indptr[1:])
    return indptr, terminals[order].astype(np.int64)
