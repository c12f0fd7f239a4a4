"""The viewer wing: the photograph, its heat-map layer, zoom, and where the next image comes from."""
