"""Backend-neutral hardware plan: folding, stream lanes and the FIFO policy, memory budget,
performance model, part data, and ``prepare``. Both hardware backends build from it."""
