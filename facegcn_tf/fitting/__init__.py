"""Per-image analysis-by-synthesis fitting of the coarse 3DMM."""
