"""Rendering camera paths to videos and frames."""
