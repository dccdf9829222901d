"""Discrete-event runtime: event kernel, fabric transport, drivers, RNG streams, trace."""
