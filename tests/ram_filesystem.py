"""An object store for the tests: Beam's file-system interface over TensorFlow's ``ram://``.

The pipelines write ``gs://`` outputs through two clients: Beam's own IO (`WriteToTFRecord`,
`WriteToText`, `ReadAllFromTFRecord`: Beam's file systems) and the library (`tf.io.gfile`,
via `facegcn_tf.storage`). No bucket is reachable here, so the tests give both clients one
store that is not the local disk: TensorFlow's in-memory ``ram://`` file system, which
`tf.io.gfile` has built in, and which this module registers with Beam (Beam finds a
`FileSystem` subclass by its scheme as soon as the class exists). A path that slips through
to the local disk (``open("ram://...")``) finds nothing there, so the tests see it.

Only the test process can see ``ram://`` files, so they run on the in-process DirectRunner.
"""

import posixpath

import tensorflow as tf
from apache_beam.io.filesystem import CompressedFile, CompressionTypes, FileMetadata, FileSystem

SCHEME = "ram"


class RamFileSystem(FileSystem):
  """``ram://`` paths for Beam, stored by `tf.io.gfile`."""

  @classmethod
  def scheme(cls):
    return SCHEME

  def join(self, basepath, *paths):
    return posixpath.join(basepath, *paths)

  def split(self, path):
    return posixpath.split(path)

  def has_dirs(self):
    return True

  def mkdirs(self, path):
    tf.io.gfile.makedirs(path)

  def _list(self, dir_or_prefix):
    if not tf.io.gfile.exists(dir_or_prefix):
      return
    for root, _, files in tf.io.gfile.walk(dir_or_prefix):
      for name in files:
        yield self.metadata(posixpath.join(root, name))

  def create(self, path, mime_type="application/octet-stream",
             compression_type=CompressionTypes.AUTO):
    tf.io.gfile.makedirs(posixpath.dirname(path))
    handle = tf.io.gfile.GFile(path, "wb")
    handle.write(b"")   # GFile makes the file at its first write; an object store at close
    compression_type = FileSystem._get_compression_type(path, compression_type)
    if compression_type == CompressionTypes.UNCOMPRESSED:
      return handle
    return CompressedFile(handle, compression_type=compression_type)

  def open(self, path, mime_type="application/octet-stream",
           compression_type=CompressionTypes.AUTO):
    handle = tf.io.gfile.GFile(path, "rb")
    compression_type = FileSystem._get_compression_type(path, compression_type)
    if compression_type == CompressionTypes.UNCOMPRESSED:
      return handle
    return CompressedFile(handle, compression_type=compression_type)

  def copy(self, source_file_names, destination_file_names):
    for source, destination in zip(source_file_names, destination_file_names):
      tf.io.gfile.copy(source, destination, overwrite=True)

  def rename(self, source_file_names, destination_file_names):
    for source, destination in zip(source_file_names, destination_file_names):
      tf.io.gfile.makedirs(posixpath.dirname(destination))
      tf.io.gfile.rename(source, destination, overwrite=True)

  def exists(self, path):
    return tf.io.gfile.exists(path)

  def size(self, path):
    return tf.io.gfile.stat(path).length

  def last_updated(self, path):
    return tf.io.gfile.stat(path).mtime_nsec / 1e9

  def checksum(self, path):
    return str(self.size(path))

  def metadata(self, path):
    stat = tf.io.gfile.stat(path)
    return FileMetadata(path, stat.length, stat.mtime_nsec / 1e9)

  def delete(self, paths):
    for path in paths:
      if tf.io.gfile.isdir(path):
        tf.io.gfile.rmtree(path)
      elif tf.io.gfile.exists(path):
        tf.io.gfile.remove(path)


def upload_tree(local_dir, url):
  """Copies every file below a local folder to ``url`` (same relative paths)."""
  local_dir = str(local_dir)
  for root, _, files in tf.io.gfile.walk(local_dir):
    rel = posixpath.relpath(root, local_dir)
    for name in files:
      destination = "/".join([url.rstrip("/")] + ([] if rel == "." else [rel]) + [name])
      tf.io.gfile.makedirs(posixpath.dirname(destination))
      tf.io.gfile.copy(posixpath.join(root, name), destination, overwrite=True)
