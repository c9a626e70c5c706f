"""Results read back from the tracking store: phase diagrams, saturation (c_crit), the claims, and the uv model's job."""
