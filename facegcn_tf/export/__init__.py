"""Export of textured meshes, UV textures, overlays and reports (the last pipeline stage).

Modules:
  atomic          atomic file writes (temp file in the same folder, fsync, os.replace)
  seams           splitting a mesh at its UV seams
  uv_texture      baking per-vertex colours into the UV layout with the rasterizer op
  invisible_fill  colours for the vertices the photo did not show (mirror / coarse albedo)
  mesh_io         OBJ + MTL, binary PLY, GLB writers (units: OBJ/PLY cm, GLB m)
  overlay         paste-back onto the original photo, comparison strip, shape render
  report          the per-face JSON report
  head_mesh       the whole head: the textured face joined to scalp, eyes, mouth, teeth
  eye_colors      iris colour/size and teeth colour read from the aligned photo
  gltf_rig        GLB with morph targets (sparse accessors, ARKit names, animation clips)
  head_export     the head's files: rigged GLB, posed + neutral OBJ, PLY, atlas
  results_page    index.html of an output folder (model-viewer, embedded GLBs, offline)
  writer          ``export_face`` (all files of one face) and ``outputs_complete``
"""
