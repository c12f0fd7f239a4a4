"""The synthetic retro-illumination generator: geometry, spoke sampling, rendering, dataset writer."""
