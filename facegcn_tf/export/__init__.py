"""Export of textured meshes, UV textures, overlays and reports."""
