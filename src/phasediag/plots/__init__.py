"""matplotlib figures: phase diagrams and trajectories, saturation, the uv model."""
