"""Finding the critical constants: the ledger of brackets (pure), the Optuna study of one search, and sweeps."""
