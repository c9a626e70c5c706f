"""phasediag: early-training phase diagrams of deep networks (Kalra & Barkeshli, NeurIPS 2023)."""

__version__ = "0.1.0"
