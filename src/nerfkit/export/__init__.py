"""Things a trained scene is turned into: snapshots, meshes, point clouds."""
