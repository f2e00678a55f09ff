"""Training loops (R-Net, GCN texture refinement), losses and schedules."""
