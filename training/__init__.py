"""GCDance training side (PyTorch): denoiser, diffusion, reference sampler, losses, training."""
