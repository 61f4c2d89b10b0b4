"""The run: planning, the runner, the writer, limits, history, sweeps."""
