"""Sampling helpers shared by the engine, the exporter and the PyTorch reference: the diffusion
schedule tables, the window plan and its stitching, training windows."""
