"""facegcn_tf: a TensorFlow 2 reproduction of Lin et al., CVPR 2020.

"Towards High-Fidelity 3D Face Reconstruction from In-the-Wild Images Using
Graph Convolutional Networks".

Sub-packages follow the paper's pipeline; imports run one way only:

    data, morphable  ->  render  ->  graph  ->  networks  ->  fitting / training  ->  export

`errors` and `assets` are leaf modules every stage may use.
"""

__version__ = "0.1.0"
