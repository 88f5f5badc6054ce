"""Sub-commands beyond simulate/info (system matrices, reconstruction, demo, ...)."""
