"""Local mode: `plait up DIR` runs a whole mesh on one machine with real processes."""
