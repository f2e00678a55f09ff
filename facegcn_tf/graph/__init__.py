"""Mesh hierarchy (CoMA-style) and spectral graph convolutions.

Modules (inputs are plain arrays: vertices `[V, 3]` float, faces `[F, 3]` int):
  mesh_validation  check_mesh: canonical dtypes, one-line ValueErrors.
  mesh_decimation  decimate: quadric edge-collapse subsampling -> kept, faces, D.
  upsampling       upsampling_matrix: U from closest points + barycentric weights.
  laplacian        adjacency_matrix, normalized_laplacian, rescale_laplacian,
                   to_sparse_tensor.
  hierarchy        MeshHierarchy, build_hierarchy (disk-cached .npz per mesh).
  layers           ChebConv, GraphResample (Keras 3).
"""
