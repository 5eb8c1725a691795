"""Training objectives: the five dance losses and the multi-task weighting of their gradients
(fixed, Nash-MTL, Aligned-MTL)."""
