"""Networks: identity (dlib / FaceNet), R-Net regressor, GCN decoder/refiner/combiner, critic."""
