"""A binary glTF 2.0 (GLB) with morph targets, written directly (trimesh has no morphs).

One mesh, one node, one primitive per textured surface. Every primitive has the same K
morph targets (POSITION deltas, and NORMAL deltas where given), named in
``mesh.extras.targetNames`` (the convention of three.js, Blender's importer and Unity's
glTFast) and weighted by ``mesh.weights``. Morph deltas are **sparse accessors** (only the
vertices a blendshape moves are stored), which keeps a 53-shape head with position and
normal deltas at about 20 MB (~70 MB dense). Positions are metres, +Y up, front +Z (glTF's
axes); textures are embedded PNGs; UVs are flipped to glTF's top-left origin here.
"""

import dataclasses
import io
import json
import struct
from typing import List, Mapping, Optional, Sequence, Tuple

import numpy as np
import PIL.Image

FLOAT, UINT16, UINT32 = 5126, 5123, 5125
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963
DEFAULT_EPSILON = 1e-5  # metres (0.01 mm): smaller morph deltas are not stored
NORMAL_EPSILON = 1e-2  # unit normals (0.6 degree): smaller normal deltas are not stored


@dataclasses.dataclass
class Primitive:
  """One textured surface (vertices already split at UV seams).

  positions: [N, 3] metres (base shape); normals: [N, 3] unit; uv: [N, 2] (v up, as OBJ);
  triangles: [F, 3] int; texture: [H, W, 3] uint8; targets: [K, N, 3] position deltas
  (metres); name: material name; normal_targets: optional [K, N, 3] normal deltas (the
  normals of the base moved by one whole blendshape, minus ``normals``).
  """
  positions: np.ndarray
  normals: np.ndarray
  uv: np.ndarray
  triangles: np.ndarray
  texture: np.ndarray
  targets: np.ndarray
  name: str
  normal_targets: Optional[np.ndarray] = None


class _Builder:
  """Appends aligned binary chunks and their bufferViews/accessors."""

  def __init__(self):
    self.chunks: List[bytes] = []
    self.length = 0
    self.views: list = []
    self.accessors: list = []

  def view(self, data: bytes, target: Optional[int] = None) -> int:
    pad = (-self.length) % 4
    if pad:
      self.chunks.append(b"\0" * pad)
      self.length += pad
    entry = {"buffer": 0, "byteOffset": self.length, "byteLength": len(data)}
    if target is not None:
      entry["target"] = target
    self.chunks.append(data)
    self.length += len(data)
    self.views.append(entry)
    return len(self.views) - 1

  def accessor(self, entry: dict) -> int:
    self.accessors.append(entry)
    return len(self.accessors) - 1

  def dense(self, array: np.ndarray, kind: str, target: Optional[int], minmax=False) -> int:
    component = {np.float32: FLOAT, np.uint16: UINT16, np.uint32: UINT32}[array.dtype.type]
    entry = {"bufferView": self.view(array.tobytes(), target), "componentType": component,
             "count": int(array.shape[0] if kind != "SCALAR" else array.size), "type": kind}
    if minmax:
      entry["min"] = array.min(axis=0).tolist()
      entry["max"] = array.max(axis=0).tolist()
    return self.accessor(entry)

  def sparse_vec3(self, deltas: np.ndarray, epsilon: float) -> int:
    """A VEC3 float accessor of N zeros with the rows that move stored sparsely."""
    deltas = deltas.astype(np.float32)
    rows = np.flatnonzero(np.abs(deltas).max(axis=1) > epsilon)
    if len(rows) == 0:
      rows = np.array([0])
    dense = np.zeros_like(deltas)
    dense[rows] = deltas[rows]
    index_type = np.uint16 if len(deltas) <= 65535 else np.uint32
    sparse = {
        "count": int(len(rows)),
        "indices": {"bufferView": self.view(rows.astype(index_type).tobytes()),
                    "componentType": UINT16 if index_type is np.uint16 else UINT32},
        "values": {"bufferView": self.view(dense[rows].tobytes())},
    }
    return self.accessor({"componentType": FLOAT, "count": int(len(deltas)), "type": "VEC3",
                          "min": dense.min(axis=0).tolist(), "max": dense.max(axis=0).tolist(),
                          "sparse": sparse})


def _png(texture: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  PIL.Image.fromarray(np.asarray(texture, np.uint8)).save(buffer, format="PNG", optimize=False)
  return buffer.getvalue()


def _animations(builder: _Builder, clips: Mapping[str, Sequence[Tuple[float, Sequence[float]]]],
                num_targets: int) -> list:
  """glTF animations of the node's morph weights: name -> [(seconds, [K] weights), ...]."""
  out = []
  for name, keys in clips.items():
    times = np.array([t for t, _ in keys], np.float32)
    values = np.array([w for _, w in keys], np.float32)
    if values.shape != (len(times), num_targets) or np.any(np.diff(times) <= 0):
      raise ValueError(f"animation {name!r}: keys must be increasing times with {num_targets} "
                       "weights each")
    inputs = builder.dense(times[:, None], "SCALAR", None, minmax=True)
    outputs = builder.dense(values.reshape(-1), "SCALAR", None)
    out.append({"name": name, "samplers": [{"input": inputs, "output": outputs,
                                             "interpolation": "LINEAR"}],
                "channels": [{"sampler": 0, "target": {"node": 0, "path": "weights"}}]})
  return out


def rigged_glb_bytes(primitives: Sequence[Primitive], target_names: Sequence[str],
                     weights: Sequence[float], mesh_name: str = "head",
                     epsilon: float = DEFAULT_EPSILON,
                     animations: Optional[Mapping[str, Sequence[Tuple[float, Sequence[float]]]]] = None
                     ) -> bytes:
  """Encodes ``primitives`` as one morphable mesh (see the module docstring).

  Args:
    primitives: the surfaces, each with K targets.
    target_names: the K morph target names.
    weights: the K default weights.
    mesh_name: the mesh's and node's name.
    epsilon: deltas no larger than this (metres, per coordinate) are not stored.
    animations: optional clips of the morph weights, name -> [(seconds, [K] weights)].
  """
  names = [str(n) for n in target_names]
  weights = [float(w) for w in weights]
  if len(names) != len(weights):
    raise ValueError(f"{len(names)} target names but {len(weights)} weights")
  builder = _Builder()
  gltf_primitives, materials, textures, images = [], [], [], []
  for i, prim in enumerate(primitives):
    n = len(prim.positions)
    targets = np.asarray(prim.targets, np.float32)
    if targets.shape != (len(names), n, 3):
      raise ValueError(f"primitive {prim.name}: targets {targets.shape}, expected "
                       f"{(len(names), n, 3)}")
    positions = np.asarray(prim.positions, np.float32)
    uv = np.asarray(prim.uv, np.float32).copy()
    uv[:, 1] = 1.0 - uv[:, 1]
    normals = np.asarray(prim.normals, np.float32)
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    triangles = np.asarray(prim.triangles)
    index_type = np.uint16 if n <= 65535 else np.uint32
    attributes = {
        "POSITION": builder.dense(positions, "VEC3", ARRAY_BUFFER, minmax=True),
        "NORMAL": builder.dense(normals, "VEC3", ARRAY_BUFFER),
        "TEXCOORD_0": builder.dense(uv, "VEC2", ARRAY_BUFFER),
    }
    indices = builder.dense(triangles.astype(index_type).reshape(-1), "SCALAR",
                            ELEMENT_ARRAY_BUFFER)
    morphs = [{"POSITION": builder.sparse_vec3(t, epsilon)} for t in targets]
    if prim.normal_targets is not None:
      normal_targets = np.asarray(prim.normal_targets, np.float32)
      if normal_targets.shape != targets.shape:
        raise ValueError(f"primitive {prim.name}: normal targets {normal_targets.shape}, "
                         f"expected {targets.shape}")
      for morph, delta in zip(morphs, normal_targets):
        morph["NORMAL"] = builder.sparse_vec3(delta, NORMAL_EPSILON)
    images.append({"bufferView": builder.view(_png(prim.texture)), "mimeType": "image/png"})
    textures.append({"sampler": 0, "source": i})
    materials.append({"name": prim.name, "doubleSided": True, "pbrMetallicRoughness": {
        "baseColorTexture": {"index": i}, "metallicFactor": 0.0, "roughnessFactor": 0.7}})
    gltf_primitives.append({"attributes": attributes, "indices": indices, "material": i,
                            "mode": 4, "targets": morphs})
  clips = _animations(builder, animations or {}, len(names))
  document = {
      "asset": {"version": "2.0", "generator": "facegcn_tf"},
      "scene": 0,
      "scenes": [{"nodes": [0]}],
      "nodes": [{"name": mesh_name, "mesh": 0}],
      "meshes": [{"name": mesh_name, "primitives": gltf_primitives, "weights": weights,
                  "extras": {"targetNames": names}}],
      "materials": materials,
      "textures": textures,
      "images": images,
      "samplers": [{"magFilter": 9729, "minFilter": 9987, "wrapS": 33071, "wrapT": 33071}],
      "accessors": builder.accessors,
      "bufferViews": builder.views,
      "buffers": [{"byteLength": 0}],
  }
  if clips:
    document["animations"] = clips
  pad = (-builder.length) % 4
  binary = b"".join(builder.chunks) + b"\0" * pad
  document["buffers"][0]["byteLength"] = len(binary)
  text = json.dumps(document, separators=(",", ":")).encode("utf-8")
  text += b" " * ((-len(text)) % 4)
  total = 12 + 8 + len(text) + 8 + len(binary)
  return b"".join([struct.pack("<III", 0x46546C67, 2, total),
                   struct.pack("<II", len(text), 0x4E4F534A), text,
                   struct.pack("<II", len(binary), 0x004E4942), binary])


__all__ = ["Primitive", "rigged_glb_bytes"]
