"""Differentiable rendering: the tf_mesh_renderer rasterizer op, camera, lighting."""
