"""Blender side of scripts/render_blender.py: imports an exported head with Blender's own
OBJ or glTF importer and renders it from the front and at the given yaws (Cycles, soft
light, neutral grey background).

Run by Blender, not by the project's Python:

  blender -b --factory-startup --python tools/blender/render_head.py -- \
      --mesh out/x_head.glb --out renders/x_glb --yaws=-30,0,30 [--size 512 --samples 24]

Writes OUT_yaw{+30,+0,-30}.png. Blender 3.4's glTF importer predates NumPy 1.24 and uses
``numpy.bool``; it is aliased to ``bool`` first.
"""

import argparse
import math
import sys

import numpy

numpy.bool = bool  # Blender 3.4's glTF importer (io_import_scene_gltf2) uses numpy.bool

import bpy  # noqa: E402  (only inside Blender)
from mathutils import Vector  # noqa: E402


def _args():
  argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
  parser = argparse.ArgumentParser()
  parser.add_argument("--mesh", required=True)
  parser.add_argument("--out", required=True)
  parser.add_argument("--yaws", default="-30,0,30")
  parser.add_argument("--size", type=int, default=512)
  parser.add_argument("--samples", type=int, default=24)
  parser.add_argument("--obj_scale", type=float, default=0.01, help="OBJ unit -> metres")
  return parser.parse_args(argv)


def _import(path: str, obj_scale: float):
  before = set(bpy.data.objects)
  if path.lower().endswith((".glb", ".gltf")):
    bpy.ops.import_scene.gltf(filepath=path)
  else:
    bpy.ops.wm.obj_import(filepath=path, global_scale=obj_scale, forward_axis="NEGATIVE_Z",
                          up_axis="Y")
  meshes = [o for o in set(bpy.data.objects) - before if o.type == "MESH"]
  if not meshes:
    raise SystemExit(f"{path}: the importer made no mesh")
  return meshes


def _bounds(objects):
  corners = [o.matrix_world @ Vector(c) for o in objects for c in o.bound_box]
  lo = Vector([min(c[i] for c in corners) for i in range(3)])
  hi = Vector([max(c[i] for c in corners) for i in range(3)])
  return lo, hi


def _area_light(name, location, energy, size):
  data = bpy.data.lights.new(name, "AREA")
  data.energy = energy
  data.size = size
  light = bpy.data.objects.new(name, data)
  light.location = location
  bpy.context.scene.collection.objects.link(light)
  direction = Vector((0, 0, 0.0)) - Vector(location)
  light.rotation_euler = direction.to_track_quat("-Z", "Y").to_euler()
  return light


def main():
  args = _args()
  bpy.ops.wm.read_factory_settings(use_empty=True)
  scene = bpy.context.scene
  meshes = _import(args.mesh, args.obj_scale)
  pivot = bpy.data.objects.new("pivot", None)
  scene.collection.objects.link(pivot)
  lo, hi = _bounds(meshes)
  # The face: the upper front of the head (the neck and shoulders stay below the frame).
  centre = Vector(((lo.x + hi.x) / 2, (lo.y + hi.y) / 2, lo.z + 0.62 * (hi.z - lo.z)))
  for o in meshes:
    o.parent = pivot
    o.matrix_parent_inverse = pivot.matrix_world.inverted()
  pivot.location = -centre
  bpy.context.view_layer.update()
  height = hi.z - lo.z

  camera_data = bpy.data.cameras.new("camera")
  camera_data.lens = 85
  camera = bpy.data.objects.new("camera", camera_data)
  scene.collection.objects.link(camera)
  distance = 2.0 * height
  camera.location = (0.0, -distance, 0.0)  # glTF/OBJ +Z front -> Blender -Y
  camera.rotation_euler = (math.pi / 2, 0.0, 0.0)
  scene.camera = camera
  camera_data.clip_end = 100 * distance

  _area_light("key", (-0.8 * distance, -distance, 0.6 * distance), 25 * distance ** 2, distance)
  _area_light("fill", (0.9 * distance, -0.8 * distance, 0.1 * distance), 10 * distance ** 2,
              distance)
  world = bpy.data.worlds.new("world")
  world.use_nodes = True
  world.node_tree.nodes["Background"].inputs[0].default_value = (0.55, 0.55, 0.55, 1.0)
  world.node_tree.nodes["Background"].inputs[1].default_value = 0.45
  scene.world = world

  scene.render.engine = "CYCLES"
  scene.cycles.device = "CPU"
  scene.cycles.samples = args.samples
  scene.cycles.use_denoising = False  # Debian builds have no OpenImageDenoise
  scene.render.resolution_x = scene.render.resolution_y = args.size
  scene.render.film_transparent = False
  scene.view_settings.view_transform = "Standard"
  for yaw in [float(y) for y in args.yaws.split(",")]:
    pivot.rotation_euler = (0.0, 0.0, math.radians(yaw))
    bpy.context.view_layer.update()
    scene.render.filepath = f"{args.out}_yaw{int(round(yaw)):+d}.png"
    bpy.ops.render.render(write_still=True)
    print(f"wrote {scene.render.filepath}")


if __name__ == "__main__":
  main()
