"""Mesh hierarchy (CoMA-style) and spectral graph convolutions."""
