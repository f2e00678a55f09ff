"""GCN texture refinement, the stage after coarse fitting (paper_spec §1 steps 5-15).

`inputs` collects T, T_p, the lit coarse colours and masks from the coarse stage;
`step` is the generator objective shared by training and per-image refinement;
`losses` the paper's (and the official code's) loss terms; `generator_spec` the
generator's hyper-parameters, builder and saved form; `per_image` refines one photo by
optimising the generator on it. `facegcn_tf.training` imports from here, never the reverse.
"""
