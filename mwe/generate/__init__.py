"""Generating a set: the pipeline's stages, its templates and the quality figures."""
