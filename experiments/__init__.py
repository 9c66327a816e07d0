"""Ablation studies: a sweep runner (``experiments.runner``) and one folder per study."""
