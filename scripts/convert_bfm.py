"""Builds BFM_model_front.mat (Deep3DFace's BFM 2009 front model) for --model=bfm.

Inputs, all in --bfm_dir (or the last five in --aux_dir):
  01_MorphableModel.mat  BFM 2009, University of Basel (registration required)
  Exp_Pca.bin            Guo et al.'s expression basis
                         (Coarse_Dataset.zip, github.com/Juyong/3DFace)
  std_exp.txt, BFM_exp_idx.mat, BFM_front_idx.mat, facemodel_info.mat
                         Deep3DFaceReconstruction's BFM/ folder

Usage:
  python scripts/convert_bfm.py --bfm_dir=DIR [--aux_dir=DIR] [--output=FILE]

The default output is assets/bfm/BFM_model_front.mat ($FACEGCN_ASSETS/bfm/ if set),
where facegcn_tf.morphable.load_model("bfm") looks.
"""

import sys

from absl import app
from absl import flags

from facegcn_tf.errors import FaceGCNError  # noqa: E402
from facegcn_tf.morphable import bfm_convert  # noqa: E402

_BFM_DIR = flags.DEFINE_string(
    "bfm_dir", None, "Folder holding 01_MorphableModel.mat.", required=True)
_AUX_DIR = flags.DEFINE_string(
    "aux_dir", None, "Folder holding Exp_Pca.bin and Deep3DFace's BFM/ files (default: --bfm_dir).")
_OUTPUT = flags.DEFINE_string(
    "output", None, "Output .mat (default: <assets>/bfm/BFM_model_front.mat).")


def main(argv):
  del argv
  try:
    out = bfm_convert.convert(_BFM_DIR.value, output=_OUTPUT.value, aux_dir=_AUX_DIR.value)
  except (FaceGCNError, ValueError, OSError) as err:
    print(f"error: {err}", file=sys.stderr)
    return 1
  print(f"wrote {out}")
  return 0


if __name__ == "__main__":
  app.run(main)
