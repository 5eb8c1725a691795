"""The model: the GCDance denoiser, the Gaussian diffusion it is trained in, and differentiable
forward kinematics (PyTorch)."""
