"""Index tables for MediaPipe's 468-point face mesh and the iBUG 68 points.

Facts, not code, gathered from public sources:

* Region loops (face oval, eyes, eyebrows, lips) are the ordered contours of
  MediaPipe's ``face_mesh_connections`` (``FACEMESH_FACE_OVAL``,
  ``FACEMESH_LIPS``, ``FACEMESH_{LEFT,RIGHT}_{EYE,EYEBROW}``), Apache-2.0.
  MediaPipe's "right" is the subject's right, i.e. the image-left side of a
  frontal photo.
* :data:`IBUG68_FROM_MEDIAPIPE` is based on the published correspondence of
  Peizhi Yan, "Mediapipe_2_Dlib_Landmarks" (GitHub PeizhiYan/
  Mediapipe_2_Dlib_Landmarks, 2024; also used by flame-head-tracker), where
  a dlib point that falls between two mesh vertices is their mean. Changes
  made here, each checked on the astronaut and Grace Hopper photos:
  nostril wings 31/35 use 98/327 (the symmetric pair under the alar crease,
  as in later revisions of that table) instead of 75/305; the nose tip 30 is
  the mean of 4 and 1 (mesh vertex 1 is the pronasale; the published table
  uses 4, which sits slightly above it); the inner-lip points 61, 63, 65,
  67 use 81, 311, 402, 178, which lie a quarter of the way along the inner
  contours as iBUG's do (the published 82, 312, 317, 87 sit at about 37 %).
* :data:`IBUG68_FLIP` is the standard iBUG-68 left/right mirror permutation.
"""

# Ordered closed loops (first point not repeated).
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365,
             379, 378, 400, 377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93,
             234, 127, 162, 21, 54, 103, 67, 109)
LIPS_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314,
              17, 84, 181, 91, 146)
LIPS_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317,
              14, 87, 178, 88, 95)
# Subject's right eye / brow = image-left.
RIGHT_EYE = (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144,
             163, 7)
LEFT_EYE = (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373,
            390, 249)
# Upper contour outer -> inner, then lower contour inner -> outer.
RIGHT_EYEBROW = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46)
LEFT_EYEBROW = (300, 293, 334, 296, 336, 285, 295, 282, 283, 276)

FEATURE_LOOPS = {
    "right_eyebrow": RIGHT_EYEBROW,
    "left_eyebrow": LEFT_EYEBROW,
    "right_eye": RIGHT_EYE,
    "left_eye": LEFT_EYE,
    "lips": LIPS_OUTER,
}

# iBUG-68 point i (0-based) = mean of these MediaPipe vertices.
IBUG68_FROM_MEDIAPIPE = (
    # 0-16 jaw line, image-left (subject's right) ear -> chin (8) -> image-right.
    (127,), (234,), (93,), (132, 58), (58, 172), (136,), (150,), (176,), (152,),
    (400,), (379,), (365,), (397, 288), (361,), (323,), (454,), (356,),
    # 17-21 image-left eyebrow, outer -> inner (upper contour).
    (70,), (63,), (105,), (66,), (107,),
    # 22-26 image-right eyebrow, inner -> outer.
    (336,), (296,), (334,), (293,), (300,),
    # 27-30 nose bridge, top -> tip.
    (168, 6), (197, 195), (5,), (4, 1),
    # 31-35 nostrils / base, image-left -> image-right.
    (98,), (97,), (2,), (326,), (327,),
    # 36-41 image-left eye: outer corner, upper outer, upper inner, inner
    # corner, lower inner, lower outer.
    (33,), (160,), (158,), (133,), (153,), (144,),
    # 42-47 image-right eye: inner corner, upper inner, upper outer, outer
    # corner, lower outer, lower inner.
    (362,), (385,), (387,), (263,), (373,), (380,),
    # 48-59 outer lip: image-left corner, along the upper lip, image-right
    # corner (54), back along the lower lip.
    (61,), (39,), (37,), (0,), (267,), (269,), (291,),
    (321,), (314,), (17,), (84,), (91,),
    # 60-67 inner lip: image-left corner, upper, image-right corner (64), lower.
    (78,), (81,), (13,), (311,), (308,), (402,), (14,), (178,),
)

IBUG68_FLIP = (
    16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,
    26, 25, 24, 23, 22, 21, 20, 19, 18, 17,
    27, 28, 29, 30,
    35, 34, 33, 32, 31,
    45, 44, 43, 42, 47, 46,
    39, 38, 37, 36, 41, 40,
    54, 53, 52, 51, 50, 49, 48,
    59, 58, 57, 56, 55,
    64, 63, 62, 61, 60,
    67, 66, 65,
)

# Mirror permutation of the detector's 5 points.
POINTS5_FLIP = (1, 0, 2, 4, 3)
